"""Render the 15 DeepMimic humanoid motion-capture clips shipped in pybullet to small labelled videos.

One-off conversion (pybullet is NOT a runtime dependency): for every motion in
``pybullet_data/data/motions/humanoid3d_*.txt`` the mocap poses are resampled at ``--fps`` (slerp of
the joint quaternions between key frames), put on ``humanoid/humanoid.urdf`` in ``p.DIRECT`` mode and
rendered with pybullet's CPU TinyRenderer from ``--cameras`` azimuths, at ``--render`` px, then shrunk to
``--size`` px. The camera aims at the pelvis from ``--distance`` m, so the whole body stays in frame in
every motion (standing, crawling, flipping); the body is one dark colour over a plain grey floor, so the
pixels that change are the body's, not a floor texture sliding under a moving camera. Each (motion,
camera) is one source, split by time: windows of ``--window`` frames from the first
``--train-fraction`` of the motion go to train, from the rest to test, never crossing the cut. Writes
an Endo-FM style layout: ``clips/*.mp4``, ``train.csv`` / ``test.csv`` (``path,label,source``; the windows
of one source in time order) and ``classes.txt``.

    python scripts/convert_video.py --out representations/data/deepmimic_video
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
from pathlib import Path

import numpy as np
import torch

from representations.data.video import resize_clip, write_video

MOTIONS = ["backflip", "cartwheel", "crawl", "dance_a", "dance_b", "getup_facedown", "getup_faceup", "jump",
           "kick", "punch", "roll", "run", "spin", "spinkick", "walk"]
# Motion file layout after the duration: root pos (3), root rot (4), then these joints in order.
# (name, URDF joint index, dof: 4 = quaternion w,x,y,z; 1 = revolute angle)
JOINTS = [("chest", 1, 4), ("neck", 2, 4), ("right_hip", 9, 4), ("right_knee", 10, 1), ("right_ankle", 11, 4),
          ("right_shoulder", 3, 4), ("right_elbow", 4, 1), ("left_hip", 12, 4), ("left_knee", 13, 1),
          ("left_ankle", 14, 4), ("left_shoulder", 6, 4), ("left_elbow", 7, 1)]

FLOOR_RGBA = [0.55, 0.6, 0.65, 1.0]  # plain grey-blue, no checker texture
BODY_RGBA = [0.75, 0.25, 0.1, 1.0]   # one dark red-brown for every link


def _slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    dot = float(np.dot(a, b))
    if dot < 0:
        b, dot = -b, -dot
    if dot > 0.9995:
        q = a + t * (b - a)
    else:
        theta = math.acos(dot)
        q = (math.sin((1 - t) * theta) * a + math.sin(t * theta) * b) / math.sin(theta)
    return q / np.linalg.norm(q)


def resample(frames: list[list[float]], fps: float) -> list[np.ndarray]:
    """Poses (without the duration column) at times k / fps along the key frames."""
    keys = np.asarray(frames, dtype=np.float64)
    times = np.concatenate([[0.0], np.cumsum(keys[:-1, 0])])
    out = []
    for t in np.arange(0.0, times[-1] + 1e-9, 1.0 / fps):
        i = min(int(np.searchsorted(times, t, side="right")) - 1, len(keys) - 2)
        a, b = keys[i, 1:], keys[i + 1, 1:]
        w = float(np.clip((t - times[i]) / max(times[i + 1] - times[i], 1e-9), 0.0, 1.0))
        pose = a + w * (b - a)
        pos = 3
        pose[pos:pos + 4] = _slerp(a[pos:pos + 4], b[pos:pos + 4], w)
        pos += 4
        for _, _, dof in JOINTS:
            if dof == 4:
                pose[pos:pos + 4] = _slerp(a[pos:pos + 4], b[pos:pos + 4], w)
            pos += dof
        out.append(pose)
    return out


def _xyzw(q: np.ndarray) -> list[float]:
    return [float(q[1]), float(q[2]), float(q[3]), float(q[0])]


def render_motion(p, humanoid: int, poses: list[np.ndarray], azimuth: float, distance: float,
                  size: int) -> np.ndarray:
    """(T, size, size, 3) uint8 frames of one motion seen from one azimuth (Y-up world)."""
    frames = []
    for pose in poses:
        p.resetBasePositionAndOrientation(humanoid, pose[0:3].tolist(), _xyzw(pose[3:7]))
        pos = 7
        for _, joint, dof in JOINTS:
            if dof == 4:
                p.resetJointStateMultiDof(humanoid, joint, _xyzw(pose[pos:pos + 4]))
            else:
                p.resetJointState(humanoid, joint, float(pose[pos]))
            pos += dof
        target = [float(pose[0]), float(pose[1]), float(pose[2])]  # the pelvis
        view = p.computeViewMatrixFromYawPitchRoll(target, distance, azimuth, -15.0, 0.0, upAxisIndex=1)
        proj = p.computeProjectionMatrixFOV(45.0, 1.0, 0.1, 20.0)
        _, _, rgba, _, _ = p.getCameraImage(size, size, view, proj, renderer=p.ER_TINY_RENDERER)
        frames.append(np.asarray(rgba, dtype=np.uint8).reshape(size, size, 4)[..., :3])
    return np.stack(frames)


def windows(start: int, stop: int, length: int, stride: int) -> list[tuple[int, int]]:
    """[a, b) windows of ``length`` frames inside [start, stop); one shorter window if the span is short."""
    if stop - start <= length:
        return [(start, stop)] if stop > start else []
    return [(a, a + length) for a in range(start, stop - length + 1, stride)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("representations/data/deepmimic_video"))
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--cameras", type=float, nargs="+", default=[45.0, 135.0, 225.0, 315.0])
    parser.add_argument("--distance", type=float, default=2.4, help="camera to pelvis, m (body ~1.7 m tall)")
    parser.add_argument("--render", type=int, default=96)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--window", type=int, default=8)
    parser.add_argument("--stride", type=int, default=3)
    parser.add_argument("--train-fraction", type=float, default=0.7)
    args = parser.parse_args()

    import pybullet as p
    import pybullet_data

    data = Path(pybullet_data.getDataPath())
    p.connect(p.DIRECT)
    plane = p.loadURDF(str(data / "plane.urdf"), [0, 0, 0], p.getQuaternionFromEuler([-math.pi / 2, 0, 0]))
    p.changeVisualShape(plane, -1, rgbaColor=FLOOR_RGBA, textureUniqueId=-1)
    humanoid = p.loadURDF(str(data / "humanoid/humanoid.urdf"), [0, 0.9, 0], globalScaling=0.25)
    for link in range(-1, p.getNumJoints(humanoid)):
        p.changeVisualShape(humanoid, link, rgbaColor=BODY_RGBA)
    shutil.rmtree(args.out / "clips", ignore_errors=True)  # the lists and classes.txt are rewritten; README.md stays
    (args.out / "clips").mkdir(parents=True)
    rows: dict[str, list[str]] = {"train": [], "test": []}
    stats = []
    for label, name in enumerate(MOTIONS):
        motion = json.loads((data / "data/motions" / f"humanoid3d_{name}.txt").read_text())
        poses = resample(motion["Frames"], args.fps)
        cut = int(round(args.train_fraction * len(poses)))
        for cam, azimuth in enumerate(args.cameras):
            video = render_motion(p, humanoid, poses, azimuth, args.distance, args.render)
            small = resize_clip(video, args.size).permute(1, 2, 3, 0).numpy()  # (T, size, size, 3)
            for split, (lo, hi) in (("train", (0, cut)), ("test", (cut, len(poses)))):
                for a, b in windows(lo, hi, args.window, args.stride):
                    rel = f"clips/{name}_c{cam}_{split}_{a:03d}.mp4"
                    write_video(args.out / rel, np.ascontiguousarray(small[a:b]), fps=int(args.fps), quality=3)
                    rows[split].append(f"{rel},{label},{name}_c{cam}")  # source: motion x camera
        stats.append(f"{name}: {len(poses)} frames, cut at {cut}")
    p.disconnect()
    for split, lines in rows.items():
        (args.out / f"{split}.csv").write_text("path,label,source\n" + "\n".join(lines) + "\n")
    (args.out / "classes.txt").write_text("\n".join(MOTIONS) + "\n")
    total = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print("\n".join(stats))
    print(f"{len(rows['train'])} train / {len(rows['test'])} test clips, {total / 1e6:.2f} MB -> {args.out}")
    torch.set_num_threads(1)


if __name__ == "__main__":
    main()
