"""Labelled video clips for pretraining: mp4/avi files (PyAV) or frame folders, in Endo-FM style layouts.

Layouts read here:

* a list file (``.csv`` or ``.txt``), one clip per line: ``path,label`` or ``path label`` (label
  optional = unlabelled; a ``path,label`` header line is skipped); paths are relative to the list
  file's folder unless ``root`` is given. A path is a video file or a folder of frame images. A csv
  line may name the clip's source as a third field, ``path,label,source`` (the video a window was
  cut from, lines in time order): evaluation then keeps overlapping windows of one source out of the
  rows that choose the linear probe's L2, and a test split drawn here holds out whole sources.
* a folder with one sub-folder per class holding videos or frame folders; a folder of videos with
  no class sub-folders is read as unlabelled clips.

Every clip becomes ``frames`` frames sampled uniformly over the whole video (Endo-FM's test-time
sampling), resized on the short side and centre-cropped to ``size``. Everything is held as one
uint8 tensor (N, C, T, H, W) in memory, like ``ImageData``: the view sampling and augmentation run
batched on the device, so small sets need no DataLoader workers. Held-out splits and limits are
chosen before decoding (only kept clips are decoded), and a set that cannot fit in memory is refused
before the first clip is read.
"""

from __future__ import annotations

import csv
import dataclasses
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from ..core.runtime import available_bytes
from .idx import DataError
from .images import IMAGE_SUFFIXES
from .protocol import LabelledRows, check_sources

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
BUNDLED_SET = "deepmimic_video"  # package data written once by scripts/convert_video.py
VIDEO_SOURCES = (BUNDLED_SET, "video_list", "video_folder")


@dataclass
class VideoData(LabelledRows):
    """uint8 clips (N, C, T, H, W) with int64 labels (N,) (-1 = unlabelled).

    Implements ``PretrainData`` (batches carry ``clips``); ``images`` is an alias of ``clips`` so
    the kNN / linear evaluation, which reads ``data.images``, takes video unchanged.
    """

    clips: torch.Tensor
    labels: torch.Tensor
    classes: list[str] = field(default_factory=list)
    name: str = "video"
    sources: torch.Tensor | None = None  # int id of each clip's source video (None: not known)
    input_key: ClassVar[str] = "clips"
    pixels: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if self.clips.dim() != 5 or self.clips.dtype != torch.uint8:
            raise DataError(f"{self.name}: clips must be uint8 (N, C, T, H, W), got {self.clips.dtype} "
                            f"{tuple(self.clips.shape)}")
        if self.labels.shape != (self.clips.shape[0],):
            raise DataError(f"{self.name}: {self.clips.shape[0]} clips but labels of shape {tuple(self.labels.shape)}")
        check_sources(self.sources, self.clips.shape[0], self.name)
        self.labels = self.labels.long()

    @property
    def images(self) -> torch.Tensor:
        return self.clips

    @property
    def num_frames(self) -> int:
        return int(self.clips.shape[2])

    @property
    def image_size(self) -> int:
        return int(self.clips.shape[-1])


def source_ids(names: list[str] | None) -> torch.Tensor | None:
    """Source names -> int ids in order of first appearance (None stays None)."""
    if names is None:
        return None
    ids = {name: i for i, name in enumerate(dict.fromkeys(names))}
    return torch.tensor([ids[name] for name in names], dtype=torch.long)


# ------------------------------------------------------------------------------------ decoding


def decode_video(path: str | Path) -> np.ndarray:
    """All frames of a video file as uint8 (T, H, W, 3) RGB, decoded with PyAV (FFmpeg)."""
    import av

    path = Path(path)
    if not path.is_file():
        raise DataError(f"video file not found: {path}")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError(f"{path} has no video stream")
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    except av.error.FFmpegError as err:
        raise DataError(f"cannot decode video {path}: {err}") from None
    if not frames:
        raise DataError(f"{path}: the video has no decodable frames")
    return np.stack(frames)


def read_frame_folder(path: str | Path) -> np.ndarray:
    """A folder of frame images (sorted by name) as uint8 (T, H, W, 3) RGB, read with Pillow."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"frame folder {path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    frames = []
    for file in files:
        try:
            with Image.open(file) as img:
                frames.append(np.asarray(img.convert("RGB"), dtype=np.uint8))
        except (UnidentifiedImageError, OSError) as err:
            raise DataError(f"cannot read frame {file}: {err}") from None
    if len({f.shape for f in frames}) > 1:
        raise DataError(f"frame folder {path}: frames have different sizes")
    return np.stack(frames)


def write_video(path: str | Path, frames: np.ndarray, fps: int = 25, codec: str | None = None,
                quality: int = 4) -> Path:
    """Write uint8 (T, H, W, 3) RGB frames with PyAV; codec from the suffix (mp4: MPEG-4 part 2,
    avi: MJPEG) unless given. Used by the converter and by tests that need real files."""
    import av

    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    codec = codec or ("mjpeg" if path.suffix.lower() == ".avi" else "mpeg4")
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        if codec in ("mpeg4", "mjpeg"):
            stream.codec_context.qmin = stream.codec_context.qmax = quality  # constant quantiser
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def read_clip(path: str | Path) -> np.ndarray:
    """(T, H, W, 3) uint8 of a video file or a frame folder."""
    path = Path(path)
    if path.is_dir():
        return read_frame_folder(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise DataError(f"{path}: not a video file ({', '.join(VIDEO_SUFFIXES)}) or a frame folder")
    return decode_video(path)


def sample_frames(frames: np.ndarray, count: int) -> np.ndarray:
    """``count`` frames at uniformly spaced positions over the whole clip (repeats when it is shorter)."""
    idx = np.linspace(0, frames.shape[0] - 1, count).round().astype(np.int64)
    return frames[idx]


def resize_clip(frames: np.ndarray, size: int) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (3, T, size, size) uint8: short side to ``size`` (bilinear, antialiased), centre crop."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()  # (T, 3, H, W)
    h, w = x.shape[-2:]
    if (h, w) != (size, size):
        scale = size / min(h, w)
        new = (max(size, round(h * scale)), max(size, round(w * scale)))
        x = F.interpolate(x, size=new, mode="bilinear", align_corners=False, antialias=True)
        top, left = (new[0] - size) // 2, (new[1] - size) // 2
        x = x[:, :, top:top + size, left:left + size]
    return x.round().clamp(0, 255).to(torch.uint8).permute(1, 0, 2, 3).contiguous()


# ------------------------------------------------------------------------------------- layouts


def parse_clip_list(path: str | Path, root: str | Path | None = None
                    ) -> tuple[list[tuple[Path, int]], list[str] | None]:
    """(clip path, label) pairs of a csv/txt list (label -1 where a line has none) and each clip's
    source name (the optional third csv field; None when the list names none)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"clip list not found: {path}")
    base = Path(root) if root is not None else path.parent
    entries: list[tuple[Path, int]] = []
    sources: list[str] = []
    with path.open(newline="") as f:
        lines = [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]
    for number, line in enumerate(lines, 1):
        fields = [x.strip() for x in (next(csv.reader([line])) if "," in line else line.rsplit(maxsplit=1))]
        if len(fields) > 3:
            raise DataError(f"{path}:{number}: expected 'path,label' or 'path,label,source', got {line!r}")
        clip, label_text, source = (fields + ["", ""])[:3]
        if not clip:
            raise DataError(f"{path}:{number}: no clip path in {line!r}")
        label = -1
        if label_text:
            try:
                label = int(label_text)
            except ValueError:
                if number == 1:
                    continue  # a header such as "path,label"
                raise DataError(f"{path}:{number}: label {label_text!r} is not an integer") from None
            if label < 0:
                raise DataError(f"{path}:{number}: labels must be >= 0, got {label}")
        if bool(source) != bool(sources) and entries:
            raise DataError(f"{path}:{number}: {'a' if source else 'no'} source where the lines before have "
                            f"{'none' if source else 'one'}; name every clip's source or none")
        entries.append((base / clip, label))
        if source:
            sources.append(source)
    if not entries:
        raise DataError(f"clip list {path} is empty")
    return entries, sources or None


def _clips_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES or
                  (p.is_dir() and any(q.suffix.lower() in IMAGE_SUFFIXES for q in p.iterdir())))


def scan_video_folder(root: str | Path) -> tuple[list[tuple[Path, int]], list[str]]:
    """(entries, classes) of ``root/<class>/<clip>``; a flat folder of videos gives unlabelled entries."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"video folder not found: {root}")
    flat = [p for p in sorted(root.iterdir()) if p.suffix.lower() in VIDEO_SUFFIXES]
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and _clips_in(p))
    if flat and not classes:
        return [(p, -1) for p in flat], []
    if not classes:
        raise DataError(f"{root} holds no videos or class folders (expected {root}/<class>/<clip>.mp4)")
    entries = [(clip, label) for label, cls in enumerate(classes) for clip in _clips_in(root / cls)]
    return entries, classes


def check_clip_shape(frames: int, size: int) -> None:
    """Every clip needs at least one frame of at least one pixel (checked before anything is decoded)."""
    if frames < 1 or size < 1:
        raise DataError(f"clip frames and size must be >= 1, got {frames} and {size}")


def load_clips(entries: list[tuple[Path, int]], frames: int, size: int, classes: list[str] | None = None,
               name: str = "video", sources: torch.Tensor | None = None) -> VideoData:
    """Decode, sample and resize every entry into one ``VideoData`` (``sources``: one id per entry)."""
    check_clip_shape(frames, size)
    clips = [decode_clip(p, frames, size) for p, _ in entries]
    labels = torch.tensor([label for _, label in entries], dtype=torch.long)
    stacked = torch.stack(clips) if clips else torch.empty(0, 3, frames, size, size, dtype=torch.uint8)
    return VideoData(stacked, labels, list(classes or []), name, sources)


@dataclass
class ClipEntries(LabelledRows):
    """Clips not decoded yet: row i is ``entries[index[i]]``. Held-out splits and limits are seeded
    choices of rows, so they run here exactly as on decoded clips and only the kept clips are decoded."""

    index: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    entries: list[tuple[Path, int]]
    name: str
    sources: torch.Tensor | None = None
    input_key: ClassVar[str] = "index"
    pixels: ClassVar[bool] = False

    def __post_init__(self) -> None:
        check_sources(self.sources, len(self.index), self.name)

    @classmethod
    def of(cls, entries: list[tuple[Path, int]], classes: list[str], name: str,
           sources: list[str] | None = None) -> ClipEntries:
        labels = torch.tensor([label for _, label in entries], dtype=torch.long)
        return cls(torch.arange(len(entries)), labels, list(classes), entries, name, source_ids(sources))

    def decode(self, frames: int, size: int) -> VideoData:
        return load_clips([self.entries[i] for i in self.index.tolist()], frames, size, self.classes, self.name,
                          self.sources)

    def stream(self, frames: int, size: int, workers: int) -> StreamedClips:
        return StreamedClips(self.index, self.labels, self.classes, self.entries, self.name, frames, size, workers,
                             sources=self.sources)


def decode_clip(path: Path, frames: int, size: int) -> torch.Tensor:
    """One clip as ``load_clips`` holds it: ``frames`` uniformly sampled frames, short side ``size``, centre crop."""
    return resize_clip(sample_frames(read_clip(path), frames), size)


@dataclass
class StreamedClips(LabelledRows):
    """Training clips decoded per batch (``data.stream: true``), for sets too large to hold in memory.

    ``batch`` decodes its rows on a pool of ``workers`` threads; the Trainer calls ``prefetch`` with the
    next step's rows, so they decode while the current step trains. A batch holds exactly the tensors
    the in-memory ``VideoData`` would. ``clips`` (what evaluation feeds the encoder) decodes every row,
    so evaluate a limited subset (``eval.train_limit``).
    """

    index: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    entries: list[tuple[Path, int]]
    name: str
    frames: int
    size: int
    workers: int = 4
    device: str = "cpu"
    sources: torch.Tensor | None = None
    input_key: ClassVar[str] = "clips"
    pixels: ClassVar[bool] = True
    _pending: dict[tuple[int, ...], list[Future[torch.Tensor]]] = field(default_factory=dict, init=False,
                                                                         repr=False, compare=False)
    _pool: ThreadPoolExecutor | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def rows(self) -> torch.Tensor:  # the entry index of each row: subsets and limits never decode
        return self.index

    def _with(self, rows: torch.Tensor, labels: torch.Tensor, sources: torch.Tensor | None = None) -> StreamedClips:
        return dataclasses.replace(self, index=rows, labels=labels, classes=list(self.classes),
                                   sources=self.sources if sources is None else sources)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return (3, self.frames, self.size, self.size)

    @property
    def image_size(self) -> int:
        return self.size

    @property
    def num_frames(self) -> int:
        return self.frames

    @property
    def clips(self) -> torch.Tensor:
        check_clip_memory(len(self), self.frames, self.size)
        return self._take(self.index.tolist())

    @property
    def images(self) -> torch.Tensor:
        return self.clips

    def to(self, device: torch.device | str) -> StreamedClips:
        return dataclasses.replace(self, device=str(device))

    def batch(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        rows = indices.cpu()
        clips = self._take(self.index[rows].tolist())
        return {"clips": clips.to(self.device), "labels": self.labels[rows].to(self.device)}

    def prefetch(self, indices: torch.Tensor) -> None:
        """Start decoding the rows of a coming ``batch`` (one batch ahead: an older prefetch is dropped)."""
        entries = tuple(self.index[indices.cpu()].tolist())
        if entries not in self._pending:
            self._pending = {entries: self._submit(entries)}

    def _submit(self, entries: tuple[int, ...] | list[int]) -> list[Future[torch.Tensor]]:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max(1, self.workers), thread_name_prefix="mcrl-decode")
        return [self._pool.submit(decode_clip, self.entries[i][0], self.frames, self.size) for i in entries]

    def _take(self, entries: list[int]) -> torch.Tensor:
        futures = self._pending.pop(tuple(entries), None) or self._submit(entries)
        if not futures:
            return torch.empty(0, *self.sample_shape, dtype=torch.uint8)
        return torch.stack([f.result() for f in futures])


def check_clip_memory(count: int, frames: int, size: int) -> None:
    """Refuse, before decoding, a set whose uint8 clips cannot fit in memory (one line, not an OOM kill)."""
    need = count * 3 * frames * size * size
    free = available_bytes(torch.device("cpu"))
    if free is not None and need > 0.9 * free:
        raise DataError(f"{count} clips of {frames} frames at {size} px need {need / 2**30:.1f} GiB in memory but "
                        f"only {free / 2**30:.1f} GiB is available; lower data.frames or data.image_size, or set "
                        f"data.train_limit")


def bundled_set_dir() -> Path:
    """Folder of the bundled DeepMimic video clips (package data)."""
    return Path(str(resources.files("representations.data") / BUNDLED_SET))


def _classes_file(folder: Path) -> list[str]:
    file = folder / "classes.txt"
    return file.read_text().split() if file.is_file() else []


def _listed_split(listing: Path, classes: list[str], name: str, root: str | None = None) -> ClipEntries:
    entries, sources = parse_clip_list(listing, root)
    return ClipEntries.of(entries, classes, name, sources)


def load_video_splits(source: str, *, path: str | None = None, test_path: str | None = None,
                      root: str | None = None, frames: int = 8, size: int = 32, test_fraction: float = 0.2,
                      seed: int = 0, train_limit: int | None = None, test_limit: int | None = None,
                      stream: bool = False, workers: int = 4) -> tuple[VideoData | StreamedClips, VideoData]:
    """(train, test) of one configured video source: deepmimic_video | video_list | video_folder. With
    ``stream`` the training clips are decoded per batch (``StreamedClips``) and only the test split is
    held in memory."""
    from .images import split_holdout

    if source == BUNDLED_SET:
        folder = Path(path) if path else bundled_set_dir()
        classes = _classes_file(folder)
        train, test = (_listed_split(folder / f"{split}.csv", classes, f"deepmimic_video/{split}")
                       for split in ("train", "test"))
    elif source in ("video_list", "video_folder"):
        if not path:
            raise DataError(f"data source {source!r} needs data.path")

        def listed(p: str) -> ClipEntries:
            if source == "video_list":
                return _listed_split(Path(p), _classes_file(Path(p).parent), Path(p).name, root)
            entries, classes = scan_video_folder(p)
            return ClipEntries.of(entries, classes, Path(p).name)

        train = listed(path)
        if test_path:
            test = listed(test_path)
        else:
            train, test = split_holdout(train, test_fraction, seed)  # type: ignore[arg-type,assignment]  # whole sources
    else:
        raise DataError(f"unknown video source {source!r}; use {BUNDLED_SET}, video_list or video_folder")
    train, test = train.limit(train_limit, seed), test.limit(test_limit, seed + 1)
    check_clip_shape(frames, size)
    if stream:
        check_clip_memory(len(test), frames, size)
        return train.stream(frames, size, workers), test.decode(frames, size)
    check_clip_memory(len(train) + len(test), frames, size)
    return train.decode(frames, size), test.decode(frames, size)
