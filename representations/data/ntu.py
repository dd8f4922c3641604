"""NTU RGB+D 60 in the two formats people have: raw ``.skeleton`` text files and ST-GCN's arrays.

Raw: one file per sample, named ``SsssCcccPpppRrrrAaaa.skeleton`` (setup, camera, performer,
replication, action), holding: frame count; per frame a body count; per body a line of 10 values
(body id, clipped edges, hand states, restricted, lean x/y, tracking state), a joint count (25) and
25 lines of 12 values (x y z, depth x/y, colour x/y, orientation w x y z, tracking state). Read as
ST-GCN's ``ntu_gendata.py`` does: camera-space x, y, z of the first ``max_bodies`` bodies listed in
each frame, zero-padded to ``max_frames``.

Arrays: ``(N, 3, T, 25, 2)`` float32 ``.npy`` with a label file: ST-GCN's ``.pkl`` of
``(sample_names, labels)``, or a ``.npy`` / ``.txt`` of integer labels. Benchmarks (Shahroudy et al.
2016): cross-subject (xsub) trains on the 20 performers below, cross-view (xview) on cameras 2 and 3.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import torch

from .idx import DataError
from .skeleton import SkeletonData, resize_time

XSUB_TRAIN_SUBJECTS = frozenset({1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38})
XVIEW_TRAIN_CAMERAS = frozenset({2, 3})
BENCHMARKS = ("xsub", "xview")
NTU_JOINTS = 25
_NAME = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})")


def parse_name(name: str) -> dict[str, int]:
    """``S001C002P003R002A013`` (any prefix / suffix) -> setup, camera, performer, replication, action."""
    match = _NAME.search(name)
    if match is None:
        raise DataError(f"{name!r} is not an NTU sample name (SsssCcccPpppRrrrAaaa)")
    return dict(zip(("setup", "camera", "performer", "replication", "action"), map(int, match.groups())))


def is_train(name: str, benchmark: str) -> bool:
    """Whether sample ``name`` belongs to the training split of ``benchmark`` (xsub / xview)."""
    meta = parse_name(name)
    if benchmark == "xsub":
        return meta["performer"] in XSUB_TRAIN_SUBJECTS
    if benchmark == "xview":
        return meta["camera"] in XVIEW_TRAIN_CAMERAS
    raise DataError(f"unknown NTU benchmark {benchmark!r}; use {' or '.join(BENCHMARKS)}")


def read_skeleton(path: str | Path, max_frames: int = 300, max_bodies: int = 2) -> np.ndarray:
    """One ``.skeleton`` file -> float32 (3, max_frames, 25, max_bodies) of camera-space x, y, z."""
    path = Path(path)
    try:
        lines = path.read_text().split("\n")
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read {path}: {err}") from None
    pos = 0

    def ints() -> int:
        nonlocal pos
        if pos >= len(lines) or not lines[pos].strip():
            raise DataError(f"{path}: file ends early at line {pos + 1}")
        pos += 1
        try:
            return int(lines[pos - 1].split()[0])
        except ValueError:
            raise DataError(f"{path}: line {pos} should hold a count, got {lines[pos - 1][:40]!r}") from None

    out = np.zeros((3, max_frames, NTU_JOINTS, max_bodies), dtype=np.float32)
    frames = ints()
    for t in range(frames):
        bodies = ints()
        for m in range(bodies):
            pos += 1  # body info line (10 values)
            joints = ints()
            if joints != NTU_JOINTS:
                raise DataError(f"{path}: frame {t} body {m} has {joints} joints, expected {NTU_JOINTS}")
            if pos + joints > len(lines):
                raise DataError(f"{path}: file ends early in frame {t}")
            for j in range(joints):
                values = lines[pos + j].split()
                if len(values) != 12:
                    raise DataError(f"{path}: line {pos + j + 1} has {len(values)} values, expected 12")
                if t < max_frames and m < max_bodies:
                    out[:, t, j, m] = [float(v) for v in values[:3]]
            pos += joints
    return out


class _NamesAndLabels(pickle.Unpickler):
    """Unpickles ST-GCN label files (tuples / lists of str and int) and refuses any other object."""

    def find_class(self, module: str, name: str):  # noqa: ANN201 - pickle's signature
        raise pickle.UnpicklingError(f"label file holds a {module}.{name} object; only names and labels are read")


def read_labels(path: str | Path) -> tuple[list[str] | None, np.ndarray]:
    """(sample names or None, int64 labels) from an ST-GCN ``.pkl``, a ``.npy`` or a ``.txt`` label file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"NTU label file not found: {path}")
    try:
        if path.suffix == ".pkl":
            with path.open("rb") as fh:
                names, labels = _NamesAndLabels(fh).load()
            return [str(n) for n in names], np.asarray(labels, dtype=np.int64)
        if path.suffix == ".npy":
            return None, np.load(path, allow_pickle=False).astype(np.int64).reshape(-1)
        return None, np.loadtxt(path, dtype=np.int64, ndmin=1)
    except (OSError, ValueError, TypeError, EOFError, pickle.UnpicklingError) as err:
        raise DataError(f"cannot read NTU labels {path}: {err}") from None


def _classes(count: int) -> list[str]:
    return [f"A{i + 1:03d}" for i in range(count)]


def resize_valid(x: torch.Tensor, frames: int) -> torch.Tensor:
    """(N, C, T, V, M) zero-padded sequences -> each one's valid frames (up to its last non-zero frame)
    resized to ``frames``, as AimCLR / CMD crop-and-resize NTU clips; an all-zero sequence stays zero."""
    moving = x.abs().flatten(3).sum(dim=(1, 3)) > 0  # (N, T)
    valid = torch.where(moving.any(1), moving.shape[1] - moving.flip(1).float().argmax(1), 0)
    out = torch.zeros((*x.shape[:2], frames, *x.shape[3:]), dtype=torch.float32)
    for i, count in enumerate(valid.tolist()):
        if count:
            out[i] = resize_time(x[i:i + 1, :, :count], frames)[0]
    return out


def _to_data(array: np.ndarray, rows: np.ndarray, labels: np.ndarray, frames: int | None, name: str,
             num_classes: int, chunk: int = 1024) -> SkeletonData:
    """Rows of an (N, 3, T, 25, M) array (may be a memmap, read in chunks) -> SkeletonData."""
    parts = []
    for start in range(0, len(rows), chunk):
        part = torch.from_numpy(np.ascontiguousarray(array[rows[start:start + chunk]], dtype=np.float32))
        parts.append(resize_valid(part, frames) if frames else part)
    shape = (0, array.shape[1], frames or array.shape[2], *array.shape[3:])
    sequences = torch.cat(parts) if parts else torch.zeros(shape)
    return SkeletonData(sequences, torch.from_numpy(labels[rows]), _classes(num_classes), "ntu", name)


def load_ntu_array(path: str | Path, label_path: str | Path | None = None) -> tuple[np.ndarray, list[str] | None,
                                                                                      np.ndarray]:
    """(memory-mapped (N, 3, T, 25, M) array, names or None, labels) of an ST-GCN style ``.npy``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"NTU array not found: {path}")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read {path}: {err}") from None
    if array.ndim != 5 or array.shape[1] != 3 or array.shape[3] != NTU_JOINTS:
        raise DataError(f"{path}: expected an (N, 3, T, 25, M) array, got {array.shape}")
    if label_path is None:
        raise DataError(f"{path}: give the label file too (data.label_path=...pkl / .npy / .txt)")
    names, labels = read_labels(label_path)
    if labels.shape[0] != array.shape[0] or (names is not None and len(names) != array.shape[0]):
        raise DataError(f"{label_path}: {labels.shape[0]} labels for {array.shape[0]} sequences")
    return array, names, labels


def load_ntu(path: str | Path, *, label_path: str | Path | None = None, test_path: str | Path | None = None,
             test_label_path: str | Path | None = None, benchmark: str = "xsub", frames: int | None = 64,
             max_frames: int = 300, max_bodies: int = 2) -> tuple[SkeletonData, SkeletonData]:
    """(train, test) of NTU RGB+D from a folder of ``.skeleton`` files or ``.npy`` arrays + labels.

    A folder, or one array whose label file names the samples, is split by ``benchmark``; an array
    with only labels needs ``test_path`` (ST-GCN writes ``train_data.npy`` / ``val_data.npy`` per
    benchmark). ``frames`` resizes every sequence's valid frames to that many (None keeps the padded T).
    """
    if benchmark not in BENCHMARKS:
        raise DataError(f"unknown NTU benchmark {benchmark!r}; use {' or '.join(BENCHMARKS)}")
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.skeleton"))
        if not files:
            raise DataError(f"{path} holds no .skeleton files")
        names = [f.stem for f in files]
        labels = np.array([parse_name(n)["action"] - 1 for n in names], dtype=np.int64)
        array = np.stack([read_skeleton(f, max_frames, max_bodies) for f in files])
        classes = max(60, int(labels.max()) + 1)
        train = np.array([is_train(n, benchmark) for n in names])
        return (_to_data(array, np.flatnonzero(train), labels, frames, f"ntu/{benchmark}/train", classes),
                _to_data(array, np.flatnonzero(~train), labels, frames, f"ntu/{benchmark}/test", classes))
    array, names, labels = load_ntu_array(path, label_path)
    if test_path is not None:
        test_array, _, test_labels = load_ntu_array(test_path, test_label_path)
        classes = max(60, int(max(labels.max(initial=0), test_labels.max(initial=0))) + 1)
        return (_to_data(array, np.arange(len(labels)), labels, frames, f"ntu/{path.stem}", classes),
                _to_data(test_array, np.arange(len(test_labels)), test_labels, frames,
                         f"ntu/{Path(test_path).stem}", classes))
    if names is None:
        raise DataError(f"{label_path} has no sample names to split by {benchmark}; give data.test_path and "
                        f"data.test_label_path, or an ST-GCN .pkl label file with names")
    train = np.array([is_train(n, benchmark) for n in names])
    classes = max(60, int(labels.max(initial=0)) + 1)
    return (_to_data(array, np.flatnonzero(train), labels, frames, f"ntu/{benchmark}/train", classes),
            _to_data(array, np.flatnonzero(~train), labels, frames, f"ntu/{benchmark}/test", classes))
