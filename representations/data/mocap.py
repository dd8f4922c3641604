"""DeepMimic humanoid motion capture (15 actions, one clip each) as labelled skeleton windows.

``humanoid_mocap.npz`` (package data, written by ``scripts/convert_mocap.py``; see
``humanoid_mocap.md`` for source and licence) holds 3D positions of the humanoid's 18 joints at
30 frames/s, y up, metres. With one clip per action, train and test cannot be different clips:
each clip is cut in time, the earlier ``1 - test_fraction`` for training windows and the later part
for test windows, so no frame is in both. Each window is put in the frame of its first pose (root
at the origin, hips along x), as NTU pipelines normalise the view. A demo-scale set, not a benchmark.
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


def clip_windows(length: int, window: int, count: int) -> list[tuple[int, int]]:
    """``count`` (start, stop) windows of ``min(window, length)`` frames, starts evenly spread over
    [0, length - size] (rounded; windows overlap, and repeat when the part is short)."""
    size = min(window, length)
    starts = np.linspace(0, length - size, count).round().astype(int)
    return [(int(s), int(s) + size) for s in starts]


RIGHT_HIP, LEFT_HIP = 4, 11  # HUMANOID_JOINT_NAMES


def _canonical(clip: np.ndarray) -> np.ndarray:
    """Window (T, V, 3), y up, in the frame of its first pose: the root's horizontal position moved to
    0 and the body turned about y so the left-to-right hip line points along +x (the usual NTU
    pre-normalisation of view, with gravity kept); a pose without a horizontal hip line is not turned."""
    out = clip - np.array([clip[0, 0, 0], 0.0, clip[0, 0, 2]], dtype=clip.dtype)
    hips = clip[0, RIGHT_HIP] - clip[0, LEFT_HIP]
    norm = float(np.hypot(hips[0], hips[2]))
    if norm < 1e-6:
        return out
    c, s = hips[0] / norm, hips[2] / norm  # rotate (x, z) by -angle of the hip line
    x, z = out[..., 0].copy(), out[..., 2].copy()
    out[..., 0], out[..., 2] = c * x + s * z, -s * x + c * z
    return out


def mocap_windows(path: str | Path = MOCAP_PATH, *, window: int = 12, train_windows: int = 20,
                  test_windows: int = 6, test_fraction: float = 1 / 3) -> tuple[SkeletonData, SkeletonData]:
    """(train, test) windows (N, 3, window, 18, 1), split by time inside each clip.

    Every clip gives the same number of windows (classes are balanced although the clips last
    0.8 to 4.4 s): ``train_windows`` spread over its earlier part, ``test_windows`` over the later
    part. A part shorter than ``window`` frames gives windows of all its frames, resized to
    ``window`` (linear in time), so the shortest clips still appear in both splits. Windows are in
    time order within each clip and name it as their ``sources`` (for the probe's time-ordered holdout).
    """
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if window < 2 or train_windows < 1 or test_windows < 1:
        raise DataError(f"need window >= 2 and at least one window per split, got {window}, {train_windows}, "
                        f"{test_windows}")
    names, clips, _ = load_mocap_clips(path)
    split: dict[str, tuple[list[np.ndarray], list[int]]] = {"train": ([], []), "test": ([], [])}
    for label, clip in enumerate(clips):  # the clip's index is its label and its source
        cut = int(round(len(clip) * (1.0 - test_fraction)))
        for part, (lo, hi), count in (("train", (0, cut), train_windows), ("test", (cut, len(clip)), test_windows)):
            for start, stop in clip_windows(hi - lo, window, count):
                seq = torch.from_numpy(_canonical(clip[lo + start:lo + stop])).permute(2, 0, 1)[..., None]
                split[part][0].append(resize_time(seq[None], window)[0].numpy())
                split[part][1].append(label)

    def build(part: str) -> SkeletonData:
        seqs, labels = split[part]
        labels_t = torch.tensor(labels)
        return SkeletonData(torch.from_numpy(np.stack(seqs)), labels_t, list(names), "humanoid", f"mocap/{part}",
                            sources=labels_t.clone())

    return build("train"), build("test")
