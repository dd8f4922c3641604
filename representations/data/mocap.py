"""DeepMimic humanoid motion capture (15 actions, one clip each) as labelled skeleton windows.

``humanoid_mocap.npz`` (package data, written by ``scripts/convert_mocap.py``; see
``humanoid_mocap.md`` for source and licence) holds 3D positions of the humanoid's 18 joints at
30 frames/s, y up, metres. With one clip per action, train and test cannot be different clips:
each clip is cut in time, the earlier ``1 - test_fraction`` for training windows and the later part
for test windows, so no frame is in both. A demo-scale set, not a benchmark.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .idx import DataError
from .skeleton import SkeletonData, resize_time

MOCAP_PATH = Path(__file__).with_name("humanoid_mocap.npz")


def load_mocap_clips(path: str | Path = MOCAP_PATH) -> tuple[list[str], list[np.ndarray], float]:
    """(action names, per-clip joints (T, 18, 3) float32, frames per second)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"mocap file not found: {path} (regenerate it with scripts/convert_mocap.py)")
    with np.load(path, allow_pickle=False) as data:
        joints, starts, lengths = data["joints"], data["clip_start"], data["clip_length"]
        names, fps = [str(a) for a in data["actions"]], float(data["fps"])
    return names, [joints[s:s + n] for s, n in zip(starts, lengths)], fps


def clip_windows(length: int, window: int, stride: int) -> list[tuple[int, int]]:
    """(start, stop) windows of ``min(window, length)`` frames every ``stride`` frames inside [0, length)."""
    size = min(window, length)
    return [(s, s + size) for s in range(0, length - size + 1, stride)]


def _centred(clip: np.ndarray) -> np.ndarray:
    """Window (T, V, 3) with the root's horizontal (x, z) position of its first frame moved to 0."""
    out = clip.copy()
    out[..., 0] -= clip[0, 0, 0]
    out[..., 2] -= clip[0, 0, 2]
    return out


def mocap_windows(path: str | Path = MOCAP_PATH, *, window: int = 24, stride: int = 2, test_fraction: float = 1 / 3,
                  test_stride: int | None = None) -> tuple[SkeletonData, SkeletonData]:
    """(train, test) windows (N, 3, window, 18, 1) of every clip, split by time inside each clip.

    A part shorter than ``window`` frames gives one window of all its frames, resized to ``window``
    (linear in time), so the shortest clips still appear in both splits.
    """
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if window < 2 or stride < 1:
        raise DataError(f"need window >= 2 and stride >= 1, got {window}, {stride}")
    names, clips, _ = load_mocap_clips(path)
    split: dict[str, tuple[list[np.ndarray], list[int]]] = {"train": ([], []), "test": ([], [])}
    for label, clip in enumerate(clips):
        cut = int(round(len(clip) * (1.0 - test_fraction)))
        for part, (lo, hi), step in (("train", (0, cut), stride), ("test", (cut, len(clip)), test_stride or stride)):
            for start, stop in clip_windows(hi - lo, window, step):
                seq = torch.from_numpy(_centred(clip[lo + start:lo + stop])).permute(2, 0, 1)[..., None]
                split[part][0].append(resize_time(seq[None], window)[0].numpy())
                split[part][1].append(label)

    def build(part: str) -> SkeletonData:
        seqs, labels = split[part]
        return SkeletonData(torch.from_numpy(np.stack(seqs)), torch.tensor(labels), list(names), "humanoid",
                            f"mocap/{part}")

    return build("train"), build("test")
