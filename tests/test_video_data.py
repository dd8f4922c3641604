"""Video decoding, Endo-FM style layouts, the bundled DeepMimic set and the multi-view clip sampler."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from representations.data import DataError
from representations.data.video import (
    VideoData,
    bundled_set_dir,
    decode_video,
    load_clips,
    load_video_splits,
    parse_clip_list,
    read_frame_folder,
    resize_clip,
    sample_frames,
    scan_video_folder,
    source_ids,
    write_video,
)
from representations.data.video_views import MultiViewConfig, MultiViewSampler, frame_positions

ROOT = Path(__file__).resolve().parents[1]


def moving_square(frames: int = 6, h: int = 32, w: int = 48, colour=(255, 0, 0)) -> np.ndarray:
    """A coloured 8x8 square moving right by 4 px per frame on black: easy to check after lossy coding."""
    video = np.zeros((frames, h, w, 3), np.uint8)
    for t in range(frames):
        video[t, 12:20, 4 * t:4 * t + 8] = colour
    return video


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_decode_written_video(tmp_path, suffix):
    video = moving_square()
    decoded = decode_video(write_video(tmp_path / f"clip{suffix}", video))
    assert decoded.shape == video.shape and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - video).mean() < 3.0  # lossy codec, but the same picture
    for t in range(video.shape[0]):  # the square is where it was written, in red
        patch = decoded[t, 13:19, 4 * t + 1:4 * t + 7].astype(int)
        assert patch[..., 0].mean() > 200 and patch[..., 1:].mean() < 60


def test_decode_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        decode_video(tmp_path / "missing.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 10)
    with pytest.raises(DataError, match="cannot decode"):
        decode_video(bad)


def test_frame_folder_is_exact(tmp_path):
    video = moving_square(frames=3)
    folder = tmp_path / "frames"
    folder.mkdir()
    for t, frame in enumerate(video):  # names sort in frame order
        Image.fromarray(frame).save(folder / f"img_{t:05d}.png")
    np.testing.assert_array_equal(read_frame_folder(folder), video)


def test_sample_frames_and_resize_by_hand():
    frames = np.arange(5)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    # linspace(0, 4, 3) = [0, 2, 4]; linspace(0, 4, 8) rounds to [0, 1, 1, 2, 2, 3, 3, 4]
    assert sample_frames(frames, 3)[:, 0, 0, 0].tolist() == [0, 2, 4]
    assert sample_frames(frames, 8)[:, 0, 0, 0].tolist() == [0, 1, 1, 2, 2, 3, 3, 4]
    # 32x48 -> short side 16 (width 24), centre crop columns 4..20 of the resized frame
    image = np.zeros((1, 32, 48, 3), np.uint8)
    image[:, :, 24:] = 200  # right half bright
    out = resize_clip(image, 16)
    assert out.shape == (3, 1, 16, 16)
    assert out[0, 0, :, :7].max() == 0 and out[0, 0, :, 9:].min() == 200  # the edge sits at column 8


def write_layout(root: Path) -> None:
    """Endo-FM style: videos and a frame folder, a csv with header and a space-separated txt."""
    (root / "videos").mkdir(parents=True)
    write_video(root / "videos" / "a.mp4", moving_square(colour=(255, 0, 0)))
    write_video(root / "videos" / "b.avi", moving_square(colour=(0, 255, 0)))
    frames = root / "videos" / "c_frames"
    frames.mkdir()
    for t, frame in enumerate(moving_square(frames=4, colour=(0, 0, 255))):
        Image.fromarray(frame).save(frames / f"{t:03d}.jpg")
    (root / "train.csv").write_text("path,label\nvideos/a.mp4,0\nvideos/b.avi,1\nvideos/c_frames,2\n")
    (root / "test.txt").write_text("# comment\nvideos/b.avi 1\nvideos/a.mp4\n")


def test_list_layouts(tmp_path):
    write_layout(tmp_path)
    train, no_sources = parse_clip_list(tmp_path / "train.csv")
    assert no_sources is None
    assert [(p.name, label) for p, label in train] == [("a.mp4", 0), ("b.avi", 1), ("c_frames", 2)]
    test, _ = parse_clip_list(tmp_path / "test.txt")
    assert [(p.name, label) for p, label in test] == [("b.avi", 1), ("a.mp4", -1)]  # no label = unlabelled
    tr, te = load_video_splits("video_list", path=str(tmp_path / "train.csv"), test_path=str(tmp_path / "test.txt"),
                               frames=4, size=16)
    assert tr.clips.shape == (3, 3, 4, 16, 16) and tr.labels.tolist() == [0, 1, 2]
    assert te.labels.tolist() == [1, -1]
    # the dominant colour of each clip survives decoding, sampling and resizing
    dominant = tr.clips.float().mean(dim=(2, 3, 4)).argmax(dim=1)
    assert dominant.tolist() == [0, 1, 2]
    (tmp_path / "bad.csv").write_text("videos/a.mp4,zero\nvideos/b.avi,one\n")
    with pytest.raises(DataError, match="not an integer"):
        parse_clip_list(tmp_path / "bad.csv")
    (tmp_path / "missing.csv").write_text("videos/nope.mp4,0\nvideos/nope2.mp4,1\n")
    with pytest.raises(DataError, match="not found"):
        load_video_splits("video_list", path=str(tmp_path / "missing.csv"), frames=2, size=8)


def test_unlabelled_data_trains_on_all_of_it(tmp_path):
    """Without a test list, labelled clips lose a seeded test fraction; unlabelled clips are never
    evaluated, so all of them train and the test split is empty (nothing is thrown away)."""
    from representations.data import split_holdout

    for i in range(5):
        write_video(tmp_path / f"{i}.mp4", moving_square(4, 16, 16))
    (tmp_path / "labelled.csv").write_text("".join(f"{i}.mp4,{i % 2}\n" for i in range(5)))
    (tmp_path / "unlabelled.csv").write_text("".join(f"{i}.mp4\n" for i in range(5)))
    train, test = load_video_splits("video_list", path=str(tmp_path / "labelled.csv"), frames=2, size=8,
                                    test_fraction=0.4, seed=0)
    assert (len(train), len(test)) == (3, 2)
    train, test = load_video_splits("video_list", path=str(tmp_path / "unlabelled.csv"), frames=2, size=8,
                                    test_fraction=0.4, seed=0)
    assert (len(train), len(test)) == (5, 0) and test.clips.shape == (0, 3, 2, 8, 8)
    with pytest.raises(DataError, match="test fraction"):  # a bad fraction is still an error
        split_holdout(train, 1.5)


def distinct_clips(root: Path, count: int) -> Path:
    """``count`` 4-frame clips told apart by their colour, labelled i % 3, listed in ``root/all.csv``."""
    for i in range(count):
        write_video(root / f"{i}.mp4", moving_square(4, 16, 16, colour=(20 * i, 255 - 20 * i, 128)))
    (root / "all.csv").write_text("".join(f"{i}.mp4,{i % 3}\n" for i in range(count)))
    return root / "all.csv"


def test_split_and_limits_decode_only_the_kept_clips(tmp_path, monkeypatch):
    """The held-out split and both limits pick the same clips as when every clip is decoded first and
    then split and limited (the reference below), and only those clips are read."""
    from representations.data import split_holdout, video

    listing = distinct_clips(tmp_path, 10)
    every = load_clips(parse_clip_list(listing)[0], 2, 8, name="all.csv")
    ref_train, ref_test = split_holdout(every, 0.3, seed=5)
    ref_train, ref_test = ref_train.limit(4, 5), ref_test.limit(2, 6)
    reads = []
    monkeypatch.setattr(video, "read_clip", lambda path, read=video.read_clip: reads.append(path) or read(path))
    train, test = load_video_splits("video_list", path=str(listing), frames=2, size=8, test_fraction=0.3, seed=5,
                                    train_limit=4, test_limit=2)
    assert torch.equal(train.clips, ref_train.clips) and torch.equal(test.clips, ref_test.clips)
    assert train.labels.tolist() == ref_train.labels.tolist() and test.labels.tolist() == ref_test.labels.tolist()
    assert len(reads) == 6 and len(set(reads)) == 6


def test_a_set_that_cannot_fit_in_memory_is_refused_before_decoding(tmp_path, monkeypatch):
    """10 clips x 3 x 2 frames x 8 x 8 = 3840 bytes against 1000 available: one sentence, nothing read."""
    from representations.data import video

    listing = distinct_clips(tmp_path, 10)
    reads = []
    monkeypatch.setattr(video, "read_clip", lambda path: reads.append(path))
    monkeypatch.setattr(video, "available_bytes", lambda device: 1000)
    with pytest.raises(DataError, match=r"^10 clips of 2 frames at 8 px need 0.0 GiB in memory but only 0.0 GiB is "
                                        r"available; lower data.frames or data.image_size, or set data.train_limit$"):
        load_video_splits("video_list", path=str(listing), frames=2, size=8, test_fraction=0.3)
    assert reads == []
    monkeypatch.undo()  # the real decoder; a 10% margin of the memory stays free
    monkeypatch.setattr(video, "available_bytes", lambda device: 4200)  # 3840 > 0.9 * 4200 = 3780
    with pytest.raises(DataError, match="need 0.0 GiB"):
        load_video_splits("video_list", path=str(listing), frames=2, size=8, test_fraction=0.3)
    monkeypatch.setattr(video, "available_bytes", lambda device: 4300)  # 3840 <= 0.9 * 4300 = 3870
    train, test = load_video_splits("video_list", path=str(listing), frames=2, size=8, test_fraction=0.3)
    assert (len(train), len(test)) == (7, 3)


def test_class_folder_layout(tmp_path):
    for cls, colour in (("polyp", (255, 0, 0)), ("normal", (0, 255, 0))):
        (tmp_path / cls).mkdir()
        for i in range(2):
            write_video(tmp_path / cls / f"{i}.mp4", moving_square(colour=colour))
    entries, classes = scan_video_folder(tmp_path)
    assert classes == ["normal", "polyp"] and [label for _, label in entries] == [0, 0, 1, 1]
    data = load_clips(entries, 2, 8, classes)
    assert isinstance(data, VideoData) and data.clips.shape == (4, 3, 2, 8, 8) and data.num_classes == 2
    assert data.batch(torch.tensor([3, 0]))["clips"].shape == (2, 3, 2, 8, 8)


def test_bundled_set_split_by_time():
    folder = bundled_set_dir()
    classes = (folder / "classes.txt").read_text().split()
    assert len(classes) == 15 and "backflip" in classes and "walk" in classes
    starts: dict[tuple[str, str], dict[str, list[int]]] = {}
    for split in ("train", "test"):
        entries, sources = parse_clip_list(folder / f"{split}.csv")
        for (path, label), source in zip(entries, sources, strict=True):
            name, cam, file_split, start = path.stem.rsplit("_", 3)
            assert file_split == split and classes[label] == name and path.is_file()
            assert source == f"{name}_{cam}"  # the source column: motion x camera
            starts.setdefault((name, cam), {"train": [], "test": []})[split].append(int(start))
    assert len(starts) == 60  # 15 motions x 4 cameras, each with train and test clips
    for key, s in starts.items():
        assert s["train"] and s["test"], key
        assert max(s["train"]) + 8 <= min(s["test"]), key  # 8-frame train windows end before any test window
        assert s["train"] == sorted(s["train"]), key  # a source's windows in time order (the latest holdout)
    total = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    assert total < 2_500_000


def test_converter_windows_by_hand():
    spec = importlib.util.spec_from_file_location("convert_video", ROOT / "scripts" / "convert_video.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.windows(0, 17, 8, 3) == [(0, 8), (3, 11), (6, 14), (9, 17)]
    assert module.windows(17, 24, 8, 3) == [(17, 24)]  # a short test span gives one shorter window
    assert module.windows(5, 5, 8, 3) == []


def test_real_footage_set_is_unlabelled_and_names_its_sources():
    folder = ROOT / "representations" / "data" / "real_footage"
    entries, _ = parse_clip_list(folder / "train.csv")
    assert len(entries) == 1005 and all(label == -1 for _, label in entries)
    counts: dict[str, int] = {}
    for path, _ in entries:
        assert path.is_file(), path
        counts[path.stem.rsplit("_", 2)[0]] = counts.get(path.stem.rsplit("_", 2)[0], 0) + 1
    # windows of 8 at stride 4, 3 crops each, over 795 / 68 / 250 / 120 / 132 source frames
    assert counts == {"vtest": 591, "tree": 48, "bikes": 183, "carphone": 87, "bigbuckbunny": 96}
    readme = (folder / "README.md").read_text()
    assert all(name in readme for name in counts) and "CC-BY" in readme and "Apache-2.0" in readme
    data = load_clips(entries[::200], 8, 32)
    assert data.clips.shape == (6, 3, 8, 32, 32) and (data.labels == -1).all()
    assert sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) < 2_500_000


def test_footage_crop_is_one_square_for_all_frames():
    spec = importlib.util.spec_from_file_location("convert_footage", ROOT / "scripts" / "convert_footage.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # frame t = a ramp (value = column) + 10 t: one crop for all frames keeps clip[t] - clip[0] = 10 t, and
    # the last minus the first output column tells the crop's side (side * 15 / 16)
    ramp = np.arange(80, dtype=np.uint8)[None, None, :, None] + 10 * np.arange(8, dtype=np.uint8)[:, None, None, None]
    frames = np.broadcast_to(ramp, (8, 60, 80, 3)).copy()
    rng = np.random.default_rng(0)
    sides = []
    for _ in range(200):
        clip = module.crop_clip(frames, rng, 16)
        assert clip.shape == (8, 16, 16, 3) and clip.dtype == np.uint8
        step = clip.astype(int) - clip[:1].astype(int)
        assert (step == 10 * np.arange(8)[:, None, None, None]).all()
        sides.append((float(clip[0, 0, -1, 0]) - float(clip[0, 0, 0, 0])) * 16 / 15)
    assert 30 - 1.5 <= min(sides) < 36 and 54 < max(sides) <= 60 + 1.5  # side U(0.5, 1) x the short side (60)


def test_frame_positions_by_hand():
    # torch.linspace(start, stop, n).long(), as the official temporal_sampling
    idx = frame_positions(torch.tensor([0.0, 0.7]), torch.tensor([6.3, 7.0]), 4)
    assert idx.tolist() == [[0, 2, 4, 6], [0, 2, 4, 7]]


def test_views_shapes_and_frames():
    # frame t of every clip has the constant value 10 * t, so a view's pixels tell which frames it took
    clips = (torch.arange(8) * 10).to(torch.uint8).view(1, 1, 8, 1, 1).expand(3, 3, 8, 16, 16).contiguous()
    cfg = MultiViewConfig(global_size=16, local_size=8, global_frames=(4, 4), local_frames=(2, 2, 4),
                          global_offset=0.1, local_span=0.5, global_scale=(1.0, 1.0), local_scale=(0.3, 0.3),
                          flip_p=0.0, jitter_p=0.0, grey_p=0.0)
    views = MultiViewSampler(cfg)(clips, torch.Generator().manual_seed(0))
    assert [tuple(v.shape) for v in views.globals] == [(3, 3, 4, 16, 16)] * 2
    assert [tuple(v.shape) for v in views.locals] == [(3, 3, 2, 8, 8), (3, 3, 2, 8, 8), (3, 3, 4, 8, 8)]
    frames = lambda v: (v[:, 0, :, 0, 0] * 255 / 10).round().long()  # noqa: E731
    assert frames(views.globals[0]).tolist() == [[0, 2, 4, 6]] * 3  # [0, 6.3]
    assert frames(views.globals[1]).tolist() == [[0, 2, 4, 7]] * 3  # [0.7, 7]
    for v in views.locals:  # a window of half the clip (3.5 frames), evenly sampled
        f = frames(v)
        assert ((f[:, -1] - f[:, 0]) <= 4).all() and ((f[:, -1] - f[:, 0]) >= 3).all()
        assert (f.diff(dim=1) >= 0).all() and (f >= 0).all() and (f <= 7).all()


def test_views_share_one_augmentation_over_frames():
    gen = torch.Generator().manual_seed(1)
    frame = torch.randint(0, 256, (4, 3, 1, 24, 24), generator=gen, dtype=torch.uint8)
    clips = frame.expand(4, 3, 6, 24, 24).contiguous()  # a still clip
    cfg = MultiViewConfig(global_size=16, local_size=8, global_frames=(3, 3), local_frames=(2,),
                          jitter_p=1.0, grey_p=0.5, flip_p=0.5)
    views = MultiViewSampler(cfg)(clips, torch.Generator().manual_seed(2))
    for v in views.globals + views.locals:  # one crop / flip / jitter for every frame of a view
        assert torch.allclose(v, v[:, :, :1].expand_as(v))
    assert not torch.allclose(views.globals[0], views.globals[1])  # the two views differ
    again = MultiViewSampler(cfg)(clips, torch.Generator().manual_seed(2))  # same seed, same views
    assert all(torch.equal(a, b) for a, b in zip(views.globals + views.locals, again.globals + again.locals))


def test_streamed_clips_are_the_decoded_clips(tmp_path):
    """data.stream: the same split and limits, and every batch, subset and the evaluation tensor hold
    exactly the clips the in-memory set holds; only the test split is decoded up front."""
    from representations.data.video import StreamedClips

    listing = distinct_clips(tmp_path, 10)
    kwargs = dict(path=str(listing), frames=2, size=8, test_fraction=0.3, seed=5, train_limit=6)
    held, held_test = load_video_splits("video_list", **kwargs)
    streamed, streamed_test = load_video_splits("video_list", **kwargs, stream=True, workers=2)
    assert isinstance(streamed, StreamedClips) and isinstance(streamed_test, VideoData)
    assert torch.equal(streamed_test.clips, held_test.clips)
    assert len(streamed) == len(held) == 6 and streamed.labels.tolist() == held.labels.tolist()
    assert streamed.sample_shape == held.sample_shape == (3, 2, 8, 8) and streamed.channels == 3
    rows = torch.tensor([3, 0, 5, 3])
    batch = streamed.to("cpu").batch(rows)
    assert torch.equal(batch["clips"], held.clips[rows]) and batch["labels"].tolist() == held.labels[rows].tolist()
    assert torch.equal(streamed.limit(4, 1).clips, held.limit(4, 1).clips)  # what evaluation feeds the encoder
    assert torch.equal(streamed.subset([]).clips, held.subset([]).clips)


def test_prefetch_decodes_the_next_batch_once(tmp_path, monkeypatch):
    from representations.data import video

    listing = distinct_clips(tmp_path, 6)
    streamed, _ = load_video_splits("video_list", path=str(listing), test_path=str(listing), frames=2, size=8,
                                    stream=True, workers=2)
    reads = []
    monkeypatch.setattr(video, "read_clip", lambda path, read=video.read_clip: reads.append(path.name) or read(path))
    first, second = torch.tensor([0, 1]), torch.tensor([2, 3, 4])
    streamed.prefetch(first)
    streamed.batch(first)
    assert sorted(reads) == ["0.mp4", "1.mp4"]  # decoded once, by the prefetch
    streamed.prefetch(second)
    streamed.prefetch(first)  # one batch ahead only: the pending decode of `second` is dropped
    streamed.batch(first)
    streamed.batch(second)
    assert sorted(reads) == ["0.mp4", "0.mp4", "1.mp4", "1.mp4", "2.mp4", "2.mp4", "3.mp4", "3.mp4", "4.mp4",
                             "4.mp4"]


def sourced_clips(root: Path, sources: int, windows: int) -> Path:
    """``sources`` x ``windows`` distinct 4-frame clips listed as ``path,label,source`` (label = source % 3)."""
    lines = ["path,label,source"]
    for s in range(sources):
        for w in range(windows):
            i = s * windows + w
            write_video(root / f"{i}.mp4", moving_square(4, 16, 16, colour=(9 * i % 256, 255 - 9 * i % 256, 128)))
            lines.append(f"{i}.mp4,{s % 3},video_{s}")
    (root / "sourced.csv").write_text("\n".join(lines) + "\n")
    return root / "sourced.csv"


def test_clip_list_source_column(tmp_path):
    """A third csv field names each clip's source: ids in order of first appearance; a list that names
    some sources but not all, or has a fourth field, is refused with one line."""
    (tmp_path / "a.csv").write_text("path,label,source\nx.mp4,0,left\ny.mp4,1,right\nz.mp4,,left\n")
    entries, sources = parse_clip_list(tmp_path / "a.csv")
    assert [(p.name, label) for p, label in entries] == [("x.mp4", 0), ("y.mp4", 1), ("z.mp4", -1)]
    assert sources == ["left", "right", "left"]
    assert source_ids(sources).tolist() == [0, 1, 0]
    for text, message in (("x.mp4,0,left\ny.mp4,1\n", "no source where the lines before have one"),
                          ("x.mp4,0\ny.mp4,1,right\n", "a source where the lines before have none"),
                          ("x.mp4,0,left,extra\n", "path,label,source")):
        (tmp_path / "bad.csv").write_text(text)
        with pytest.raises(DataError, match=message):
            parse_clip_list(tmp_path / "bad.csv")


@pytest.mark.parametrize("stream", [False, True])
def test_sources_survive_splits_limits_and_streaming(tmp_path, stream):
    """Without a test list, a sourced list holds out whole sources (no source on both sides); limits,
    decoding and streaming keep each clip's source id next to its clip."""
    listing = sourced_clips(tmp_path, 6, 4)
    train, test = load_video_splits("video_list", path=str(listing), frames=2, size=8, test_fraction=0.3, seed=1,
                                    train_limit=15, stream=stream)
    assert train.sources is not None and test.sources is not None
    assert not set(train.sources.tolist()) & set(test.sources.tolist())
    assert len(test) == 8  # whole sources until 30% of 24 clips is reached: two sources of 4
    every = load_clips(parse_clip_list(listing)[0], 2, 8)
    for part in (train, test):  # row i's clip is the clip of its entry, and its source that entry's source
        clips = part.clips
        for row in range(len(part)):
            match = [i for i in range(24) if torch.equal(every.clips[i], clips[row])]
            assert match and part.sources[row] == match[0] // 4
    sub = train.subset([2, 0])
    assert sub.sources.tolist() == [train.sources[2].item(), train.sources[0].item()]
    assert train.to("cpu").sources is train.sources
