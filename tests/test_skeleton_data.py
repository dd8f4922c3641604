"""Skeleton data: NTU RGB+D readers on files written here in the published formats, the mocap
windows and their time split, the committed FK array, the CML augmentations."""

import importlib.util
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from representations.data import DataError, SkeletonAugment, SkeletonData, load_ntu, read_labels, read_skeleton
from representations.data.mocap import MOCAP_PATH, clip_windows, load_mocap_clips, mocap_windows
from representations.data.ntu import resize_valid
from representations.encoders import HUMANOID_BONES

ROOT = Path(__file__).resolve().parents[1]

# NTU RGB+D 60 benchmark definitions, transcribed from Shahroudy et al. (CVPR 2016), section 4.
PAPER_XSUB_TRAIN = [1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38]
PAPER_XVIEW_TRAIN_CAMERAS = [2, 3]


def write_skeleton(path: Path, frames: list[list[np.ndarray]]) -> None:
    """A .skeleton file in the dataset's layout: frames, each a list of (25, 3) bodies."""
    lines = [str(len(frames))]
    for bodies in frames:
        lines.append(str(len(bodies)))
        for b, xyz in enumerate(bodies):
            lines.append(f"7205759403793{b:04d} 0 1 1 1 1 0 0.0219 -0.2439 2")
            lines.append("25")
            for j in range(25):
                x, y, z = xyz[j]
                lines.append(f"{x:.7f} {y:.7f} {z:.7f} 270.8 197.3 1029.4 516.2 -0.2 0.1 0.97 -0.04 2")
    path.write_text("\r\n".join(lines) + "\r\n")


def test_read_skeleton_matches_the_written_coordinates(tmp_path):
    rng = np.random.default_rng(0)
    bodies = [rng.normal(size=(25, 3)).round(6) for _ in range(7)]
    frames = [[bodies[0]], [bodies[1], bodies[2]], [], [bodies[3], bodies[4], bodies[5]], [bodies[6]]]
    path = tmp_path / "S001C002P003R002A013.skeleton"
    write_skeleton(path, frames)
    out = read_skeleton(path, max_frames=6, max_bodies=2)
    expected = np.zeros((3, 6, 25, 2), dtype=np.float32)  # naive fill, the ST-GCN reading rule
    for t, bs in enumerate(frames):
        for m, xyz in enumerate(bs[:2]):
            expected[:, t, :, m] = xyz.T
    assert out.shape == (3, 6, 25, 2)
    np.testing.assert_allclose(out, expected, atol=1e-6)
    short = read_skeleton(path, max_frames=2, max_bodies=1)
    np.testing.assert_allclose(short, expected[:, :2, :, :1], atol=1e-6)


def test_read_skeleton_rejects_broken_files(tmp_path):
    path = tmp_path / "S001C001P001R001A001.skeleton"
    write_skeleton(path, [[np.zeros((25, 3))], [np.zeros((25, 3))]])
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:20]))
    with pytest.raises(DataError, match="ends early"):
        read_skeleton(path)
    path.write_text("\n".join(lines[:4] + ["1 2 3"] + lines[5:]))
    with pytest.raises(DataError, match="expected 12"):
        read_skeleton(path)


def test_ntu_folder_splits_by_benchmark(tmp_path):
    rng = np.random.default_rng(1)
    names = sorted(f"S001C{c:03d}P{p:03d}R001A{a:03d}" for c, p, a in
                   [(1, 1, 1), (2, 3, 2), (3, 4, 3), (1, 38, 60), (2, 40, 5), (3, 2, 7)])  # files load sorted
    lengths = [5, 8, 6, 4, 7, 5]
    for name, length in zip(names, lengths):
        write_skeleton(tmp_path / f"{name}.skeleton", [[rng.normal(size=(25, 3)) + 1] for _ in range(length)])
    for benchmark in ("xsub", "xview"):
        train, test = load_ntu(tmp_path, benchmark=benchmark, frames=None, max_frames=10)
        if benchmark == "xsub":
            want = [int(n[9:12]) in PAPER_XSUB_TRAIN for n in names]
        else:
            want = [int(n[5:8]) in PAPER_XVIEW_TRAIN_CAMERAS for n in names]
        actions = [int(n[-3:]) - 1 for n in names]
        assert train.labels.tolist() == [a for a, w in zip(actions, want) if w]
        assert test.labels.tolist() == [a for a, w in zip(actions, want) if not w]
        assert train.sequences.shape[1:] == (3, 10, 25, 2) and train.layout == "ntu" and train.num_classes == 60
    train, _ = load_ntu(tmp_path, benchmark="xview", frames=16)
    assert train.sequences.shape[2] == 16
    with pytest.raises(DataError, match="benchmark"):
        load_ntu(tmp_path, benchmark="xset")


def test_ntu_arrays_with_stgcn_label_pickle(tmp_path):
    rng = np.random.default_rng(2)
    names = ["S001C001P001R001A001.skeleton", "S002C002P002R002A002.skeleton", "S003C003P003R001A010.skeleton",
             "S004C001P004R002A011.skeleton"]
    data = rng.normal(size=(4, 3, 12, 25, 2)).astype(np.float32)
    np.save(tmp_path / "train_data.npy", data)
    with (tmp_path / "train_label.pkl").open("wb") as fh:  # ST-GCN's ntu_gendata.py writes exactly this
        pickle.dump((names, [0, 1, 9, 10]), fh)
    read_names, labels = read_labels(tmp_path / "train_label.pkl")
    assert read_names == names and labels.tolist() == [0, 1, 9, 10]
    train, test = load_ntu(tmp_path / "train_data.npy", label_path=tmp_path / "train_label.pkl", frames=None)
    # xsub: performers 1, 2, 4 train; 3 test
    np.testing.assert_array_equal(train.sequences.numpy(), data[[0, 1, 3]])
    np.testing.assert_array_equal(test.sequences.numpy(), data[[2]])
    np.save(tmp_path / "val_data.npy", data[:2])
    np.savetxt(tmp_path / "val_label.txt", [3, 4], fmt="%d")
    train, test = load_ntu(tmp_path / "train_data.npy", label_path=tmp_path / "train_label.pkl",
                           test_path=tmp_path / "val_data.npy", test_label_path=tmp_path / "val_label.txt")
    assert len(train) == 4 and test.labels.tolist() == [3, 4] and train.sequences.shape[2] == 64


def test_ntu_label_pickle_refuses_objects(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    with (tmp_path / "bad.pkl").open("wb") as fh:
        pickle.dump((["S001C001P001R001A001"], [Evil()]), fh)
    with pytest.raises(DataError, match="only names and labels"):
        read_labels(tmp_path / "bad.pkl")
    np.save(tmp_path / "x.npy", np.zeros((2, 3, 5, 24, 2), dtype=np.float32))
    with pytest.raises(DataError, match=r"\(N, 3, T, 25, M\)"):
        load_ntu(tmp_path / "x.npy", label_path=tmp_path / "bad.pkl")


def test_resize_valid_keeps_only_the_real_frames():
    x = torch.zeros(2, 3, 30, 25, 2)
    x[0, :, :10] = torch.randn(3, 10, 25, 2)
    out = resize_valid(x, 10)
    torch.testing.assert_close(out[0], x[0, :, :10])  # 10 valid frames -> 10: unchanged
    assert out[1].abs().sum() == 0
    ramp = torch.zeros(1, 3, 8, 25, 2)
    ramp[0, :, :5] = torch.arange(1.0, 6.0)[None, :, None, None]  # frames 1..5 then zero padding
    torch.testing.assert_close(resize_valid(ramp, 9)[0, 0, :, 0, 0], torch.linspace(1.0, 5.0, 9))


# ------------------------------------------------------------------------------------------ mocap


def test_committed_mocap_array_has_rigid_bones():
    """FK output: every bone keeps its length over all frames of all clips (float32 rounding only)."""
    names, clips, fps = load_mocap_clips()
    assert len(names) == 15 and fps == 30.0 and {"walk", "backflip", "getup_faceup"} <= set(names)
    assert MOCAP_PATH.stat().st_size < 1_000_000
    for name, clip in zip(names, clips):
        assert clip.shape[1:] == (18, 3) and len(clip) >= 20, name
        for i, j in HUMANOID_BONES:
            length = np.linalg.norm(clip[:, i] - clip[:, j], axis=1)
            assert length.max() - length.min() < 1e-5, (name, i, j)
            assert 0.05 < length.mean() < 0.6, (name, i, j)  # metres: a human-sized figure
    # the head sits above the root in the first frame of a standing clip (y up)
    walk = clips[names.index("walk")]
    assert walk[0, 3, 1] - walk[0, 0, 1] > 0.4


def _script():
    spec = importlib.util.spec_from_file_location("convert_mocap", ROOT / "scripts" / "convert_mocap.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


URDF = """<robot name="toy">
  <link name="base"/><link name="root"/><link name="chest"/>
  <link name="knee_link"><collision><origin rpy="0 0 0" xyz="0 -2 0"/></collision></link>
  <joint name="root" type="fixed"><parent link="base"/><child link="root"/><origin rpy="0 0 0" xyz="0 0 0"/></joint>
  <joint name="chest" type="spherical"><parent link="root"/><child link="chest"/>
    <origin rpy="0 0 0" xyz="0 4 0"/></joint>
  <joint name="knee_link" type="revolute"><parent link="chest"/><child link="knee_link"/>
    <origin rpy="0 0 0" xyz="4 0 0"/><axis xyz="0 0 1"/></joint>
</robot>"""


def test_forward_kinematics_by_hand(tmp_path):
    """Root at p, root turned 90 deg about y, chest turned 90 deg about z, knee bent 90 deg about z."""
    conv = _script()
    path = tmp_path / "toy.urdf"
    path.write_text(URDF)
    joints, collisions = conv.read_urdf(path)
    assert joints["chest"][0] == "root" and np.allclose(joints["chest"][1], [0, 1, 0])  # x 0.25 scale
    s = np.sqrt(0.5)
    rot_y, rot_z = [s, 0, s, 0], [s, 0, 0, s]
    n = 1
    position = {"base": np.array([[1.0, 2.0, 3.0]])}
    rotation = {"base": np.array([rot_y])}
    local = {"chest": np.array([rot_z]), "knee_link": conv.axis_angle(np.array([0, 0, 1.0]), np.array([np.pi / 2]))}
    # chain by hand: chest = root + Ry(0, 1, 0) = (1, 3, 3); chest frame = Ry Rz;
    # knee = chest + Ry Rz (1, 0, 0) = chest + Ry (0, 1, 0) = (1, 4, 3);
    # knee frame = Ry Rz Rz: its collision point (0, -0.5, 0) -> Ry Rz Rz (0, -0.5, 0) = Ry (0, 0.5, 0)
    for child in ("root", "chest", "knee_link"):
        parent, offset, _ = joints[child]
        position[child] = position[parent] + conv.quat_rotate(rotation[parent], np.broadcast_to(offset, (n, 3)))
        rotation[child] = conv.quat_mul(rotation[parent], local.get(child, np.array([[1.0, 0, 0, 0]])))
    np.testing.assert_allclose(position["chest"][0], [1, 3, 3], atol=1e-12)
    np.testing.assert_allclose(position["knee_link"][0], [1, 4, 3], atol=1e-12)
    foot = position["knee_link"] + conv.quat_rotate(rotation["knee_link"], collisions["knee_link"][None])
    np.testing.assert_allclose(foot[0], [1, 4.5, 3], atol=1e-12)
    # slerp half way between identity and 90 deg about z is 45 deg about z
    half = conv.slerp(np.array([1.0, 0, 0, 0]), np.array(rot_z), np.array(0.5))
    np.testing.assert_allclose(half, [np.cos(np.pi / 8), 0, 0, np.sin(np.pi / 8)], atol=1e-12)


def test_script_fk_matches_pybullet():
    """The conversion's own FK against pybullet's (p.DIRECT) on real clip frames."""
    pytest.importorskip("pybullet")
    import json

    import pybullet_data

    conv = _script()
    data = Path(pybullet_data.getDataPath())
    urdf = data / "humanoid" / "humanoid.urdf"
    frames = np.array(json.loads((data / "data" / "motions" / "humanoid3d_cartwheel.txt").read_text())["Frames"])
    pose = conv.resample(frames)[::40]
    ours = conv.forward_kinematics(pose, urdf)
    ref = conv.pybullet_link_origins(pose, urdf)
    for i, name in enumerate(conv.OUTPUT):
        if isinstance(name, str):
            np.testing.assert_allclose(ours[:, i], ref[name], atol=1e-5)


def test_mocap_windows_split_by_time(tmp_path):
    """Joint y = frame index: train windows come from the first part of each clip, test from the rest."""
    lengths = [30, 12, 50]
    joints = np.concatenate([np.broadcast_to(np.arange(n, dtype=np.float32)[:, None, None] * [0, 1, 0], (n, 18, 3))
                             for n in lengths]).astype(np.float32)
    starts = np.cumsum([0, *lengths[:-1]])
    path = tmp_path / "m.npz"
    np.savez(path, joints=joints, clip_start=starts, clip_length=np.array(lengths), actions=np.array(["a", "b", "c"]),
             fps=np.array(30.0))
    train, test = mocap_windows(path, window=8, train_windows=5, test_windows=3, test_fraction=0.25)
    assert train.layout == "humanoid" and train.sequences.shape[1:] == (3, 8, 18, 1)
    for label, n in enumerate(lengths):
        cut = round(n * 0.75)
        tr = train.sequences[train.labels == label][:, 1, :, 0, 0]
        te = test.sequences[test.labels == label][:, 1, :, 0, 0]
        assert (len(tr), len(te)) == (5, 3)  # balanced: the same count from every clip
        assert tr.max() <= cut - 1 and te.min() >= cut  # no frame in both splits
        assert tr[0, 0] == 0 and tr[-1, -1] == cut - 1  # the windows span the whole train part
    # clip b: its 3 test frames become one window stretched to 8 frames
    b = test.sequences[test.labels == 1][0, 1, :, 0, 0]
    torch.testing.assert_close(b, torch.linspace(9.0, 11.0, 8))
    assert clip_windows(10, 4, 3) == [(0, 4), (3, 7), (6, 10)]
    assert clip_windows(3, 4, 2) == [(0, 3), (0, 3)]


def test_packaged_mocap_windows():
    train, test = mocap_windows()
    assert isinstance(train, SkeletonData) and train.num_classes == 15
    assert set(train.labels.tolist()) == set(test.labels.tolist()) == set(range(15))
    assert train.labels.bincount().tolist() == [20] * 15 and test.labels.bincount().tolist() == [6] * 15
    assert train.batch(torch.tensor([0, 2]))["sequences"].shape == (2, 3, 12, 18, 1)
    assert torch.equal(train.sources, train.labels) and torch.equal(test.sources, test.labels)  # one clip each
    assert torch.equal(train.subset(torch.tensor([3, 25])).sources, torch.tensor([0, 1]))
    with pytest.raises(DataError, match="300 rows but sources of shape"):
        SkeletonData(train.sequences, train.labels, layout="humanoid", sources=train.sources[:-1])


def test_mocap_probe_holdout_fits_no_window_that_shares_a_frame_with_a_held_out_one():
    """data=mocap's probe holdout (each clip's latest train windows, probe_gap purged): in every clip whose
    train part is long enough for it, no fitted window shares a frame with a held-out one. Frame spans
    are recomputed here from the clip lengths (starts evenly spread, rounded; data/mocap.yaml)."""
    from omegaconf import OmegaConf

    from representations.evaluation import PROBE_HOLDOUT, holdout_split
    from representations.pretrain.run import probe_holdout

    cfg = OmegaConf.to_container(OmegaConf.load(Path(__file__).parents[1] / "configs/data/mocap.yaml"))
    train, _ = mocap_windows(window=cfg["window"], train_windows=cfg["train_windows"],
                             test_windows=cfg["test_windows"], test_fraction=cfg["test_fraction"])
    kwargs, name = probe_holdout(cfg, train)
    assert name == f"latest (gap {cfg['probe_gap']})"
    held, fit = holdout_split(len(train), PROBE_HOLDOUT, 0, **kwargs)
    held_set, fit_set = set(held.tolist()), set(fit.tolist())
    _, clips, _ = load_mocap_clips()
    count, window, cleared = cfg["train_windows"], cfg["window"], 0
    for label, clip in enumerate(clips):
        part = round(len(clip) * (1 - cfg["test_fraction"]))
        starts = [round(i * (part - window) / (count - 1)) for i in range(count)]
        rows = (train.labels == label).nonzero().flatten().tolist()
        first_held = min(starts[i] for i, row in enumerate(rows) if row in held_set)
        fitted_ends = [starts[i] + window for i, row in enumerate(rows) if row in fit_set]
        assert fitted_ends  # every clip keeps windows to fit
        if part - window >= window * (count - 1) / (count - round(PROBE_HOLDOUT * count)):  # clearable
            assert max(fitted_ends) <= first_held, f"clip {label}: a fitted window overlaps the held-out ones"
            cleared += 1
    assert cleared == 12  # all but run, spinkick and walk, whose train parts are under 27 frames


# ------------------------------------------------------------------------------------ augmentations


def test_shear_and_temporal_crop_match_the_reference_formulas():
    x = torch.randn(4, 3, 12, 18, 1)
    aug = SkeletonAugment(shear=0.5, padding_ratio=6)
    out = aug(x, torch.arange(4), 4, torch.Generator().manual_seed(5))
    mats, starts = aug.draw(4, 12, torch.Generator().manual_seed(5))
    assert (mats - torch.eye(3)).abs().max() <= 0.5 and torch.equal(torch.diagonal(mats, dim1=1, dim2=2),
                                                                     torch.ones(4, 3))
    for b in range(4):
        # CrosSCLR / AimCLR: shear, then pad T//6 flipped frames at both ends and crop T frames
        sheared = np.einsum("ij,jtvm->itvm", mats[b].numpy(), x[b].numpy())
        pad = 12 // 6
        padded = np.concatenate([sheared[:, :pad][:, ::-1], sheared, sheared[:, -pad:][:, ::-1]], axis=1)
        ref = padded[:, int(starts[b]):int(starts[b]) + 12]
        np.testing.assert_allclose(out[b].numpy(), ref, rtol=1e-5, atol=1e-5)
    assert 0 <= starts.min() and starts.max() <= 4
    # rows pick the global batch's draws: process holding rows 1 and 3 sees rows 1 and 3 of the 1-process views
    part = aug(x[[1, 3]], torch.tensor([1, 3]), 4, torch.Generator().manual_seed(5))
    torch.testing.assert_close(part, out[[1, 3]])
    none = SkeletonAugment(shear=0.0, padding_ratio=0)
    torch.testing.assert_close(none(x, generator=torch.Generator().manual_seed(0)), x)


def test_mocap_windows_are_view_normalised():
    """Turning and moving a clip on the ground changes nothing: windows start at the origin, hips along x."""
    from representations.data.mocap import _canonical

    _, clips, _ = load_mocap_clips()
    clip = clips[0][:24]
    angle = 1.1
    rot = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    moved = (clip @ rot.T + np.array([3.0, 0.0, -2.0])).astype(np.float32)
    np.testing.assert_allclose(_canonical(moved), _canonical(clip), atol=1e-5)
    out = _canonical(clip)
    np.testing.assert_allclose(out[0, 0, [0, 2]], [0, 0], atol=1e-6)
    hips = out[0, 4] - out[0, 11]
    assert hips[0] > 0 and abs(hips[2]) < 1e-6
    np.testing.assert_allclose(out[..., 1], clip[..., 1])  # heights untouched
