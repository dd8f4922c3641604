"""Convert pybullet's DeepMimic humanoid clips to 3D joint positions (one-off; pybullet is not a runtime need).

    python scripts/convert_mocap.py [--pybullet-data DIR] [--out representations/data/humanoid_mocap.npz]
                                    [--figure docs/mocap_skeletons.png] [--check-pybullet]

Input: ``pybullet_data/data/motions/humanoid3d_<action>.txt`` (JSON; per key frame: duration, root
position xyz, root rotation wxyz, then chest, neck, right hip, right knee (angle), right ankle, right
shoulder, right elbow (angle), left hip, left knee, left ankle, left shoulder, left elbow; quaternions
w,x,y,z) and ``pybullet_data/humanoid/humanoid.urdf`` (joint origins, loaded by pybullet's DeepMimic
env with globalScaling=0.25, so lengths here are the URDF's times 0.25, in metres, y up).

Each clip is resampled to 30 frames/s as pybullet's ``HumanoidPoseInterpolator`` does (slerp of
rotations, linear root position and revolute angles), then forward kinematics gives the 15 URDF link
origins plus the head centre (neck link) and foot centres (ankle links): 18 joints, named in
``representations.encoders.stgcn.HUMANOID_JOINT_NAMES``. ``--check-pybullet`` compares the link
origins with pybullet's own FK (``p.DIRECT``, ``getLinkState(..., computeForwardKinematics=True)``).
"""

from __future__ import annotations

import argparse
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

ACTIONS = ("backflip", "cartwheel", "crawl", "dance_a", "dance_b", "getup_facedown", "getup_faceup", "jump",
           "kick", "punch", "roll", "run", "spin", "spinkick", "walk")
SCALE = 0.25  # pybullet's DeepMimic env loads humanoid.urdf with globalScaling=0.25
FPS = 30.0
# (URDF joint = child link, offset of its value in a key frame, kind) in the motion file's order
MOTION_JOINTS = (("chest", 8, "sphere"), ("neck", 12, "sphere"), ("right_hip", 16, "sphere"),
                 ("right_knee", 20, "angle"), ("right_ankle", 21, "sphere"), ("right_shoulder", 25, "sphere"),
                 ("right_elbow", 29, "angle"), ("left_hip", 30, "sphere"), ("left_knee", 34, "angle"),
                 ("left_ankle", 35, "sphere"), ("left_shoulder", 39, "sphere"), ("left_elbow", 43, "angle"))
# output joints: a URDF link origin, or (link, collision-origin of that link) for head and feet
OUTPUT = ("root", "chest", "neck", ("neck", "head"), "right_hip", "right_knee", "right_ankle",
          ("right_ankle", "right_foot"), "right_shoulder", "right_elbow", "right_wrist", "left_hip", "left_knee",
          "left_ankle", ("left_ankle", "left_foot"), "left_shoulder", "left_elbow", "left_wrist")


def _vec(text: str) -> np.ndarray:
    return np.array([float(v) for v in text.split()])


def read_urdf(path: Path) -> tuple[dict[str, tuple[str, np.ndarray, np.ndarray]], dict[str, np.ndarray]]:
    """child link -> (parent link, origin offset, axis) of every joint; link -> its collision origin."""
    root = ET.fromstring(path.read_bytes().replace(b"\x00", b""))  # the shipped file ends in a NUL byte
    joints = {}
    for joint in root.iter("joint"):
        child = joint.find("child").get("link")
        origin = joint.find("origin")
        axis = joint.find("axis")
        if origin is not None and any(float(v) for v in origin.get("rpy", "0 0 0").split()):
            raise ValueError(f"joint {joint.get('name')} has a rotated origin; this FK assumes none")
        joints[child] = (joint.find("parent").get("link"), _vec(origin.get("xyz")) * SCALE if origin is not None
                         else np.zeros(3), _vec(axis.get("xyz")) if axis is not None else np.array([0.0, 0, 1]))
    collisions = {}
    for link in root.iter("link"):
        col = link.find("collision")
        if col is not None and col.find("origin") is not None:
            collisions[link.get("name")] = _vec(col.find("origin").get("xyz")) * SCALE
    return joints, collisions


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of (..., 4) w,x,y,z quaternions."""
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack([aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw], axis=-1)


def quat_rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate (..., 3) vectors by unit (..., 4) w,x,y,z quaternions."""
    w, u = q[..., :1], q[..., 1:]
    return v + 2.0 * np.cross(u, np.cross(u, v) + w * v)


def slerp(q0: np.ndarray, q1: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Shortest-arc spherical interpolation of unit quaternions (..., 4) at fractions t (...)."""
    dot = (q0 * q1).sum(-1)
    q1 = np.where(dot[..., None] < 0, -q1, q1)
    dot = np.abs(dot).clip(max=1.0)
    theta = np.arccos(dot)
    small = theta < 1e-6
    sin = np.where(small, 1.0, np.sin(theta))
    w0 = np.where(small, 1 - t, np.sin((1 - t) * theta) / sin)
    w1 = np.where(small, t, np.sin(t * theta) / sin)
    out = w0[..., None] * q0 + w1[..., None] * q1
    return out / np.linalg.norm(out, axis=-1, keepdims=True)


def axis_angle(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    return np.concatenate([np.cos(angle / 2)[..., None], np.sin(angle / 2)[..., None] * axis], axis=-1)


def resample(frames: np.ndarray, fps: float = FPS) -> np.ndarray:
    """Key frames (K, 44) -> poses at 1/fps spacing over the clip (interpolated as pybullet does)."""
    times = np.concatenate([[0.0], np.cumsum(frames[:-1, 0])])
    out_t = np.arange(0.0, times[-1] + 1e-9, 1.0 / fps)
    seg = np.clip(np.searchsorted(times, out_t, side="right") - 1, 0, len(frames) - 2)
    frac = np.clip((out_t - times[seg]) / frames[seg, 0], 0.0, 1.0)
    a, b = frames[seg], frames[seg + 1]
    pose = a + frac[:, None] * (b - a)  # linear for root position and revolute angles
    quat_slots = [4] + [off for _, off, kind in MOTION_JOINTS if kind == "sphere"]
    for off in quat_slots:
        pose[:, off:off + 4] = slerp(a[:, off:off + 4] / np.linalg.norm(a[:, off:off + 4], axis=1, keepdims=True),
                                     b[:, off:off + 4] / np.linalg.norm(b[:, off:off + 4], axis=1, keepdims=True),
                                     frac)
    return pose


def forward_kinematics(pose: np.ndarray, urdf: Path) -> np.ndarray:
    """Poses (F, 44) -> joint positions (F, 18, 3): world frame of every link, parents first."""
    joints, collisions = read_urdf(urdf)
    n = pose.shape[0]
    position = {"base": pose[:, 1:4]}
    rotation = {"base": pose[:, 4:8] / np.linalg.norm(pose[:, 4:8], axis=1, keepdims=True)}
    local = {name: (pose[:, off:off + 4] if kind == "sphere" else axis_angle(joints[name][2], pose[:, off]))
             for name, off, kind in MOTION_JOINTS}
    pending = dict(joints)
    while pending:
        for child, (parent, offset, _) in list(pending.items()):
            if parent not in position:
                continue
            position[child] = position[parent] + quat_rotate(rotation[parent], np.broadcast_to(offset, (n, 3)))
            q = local.get(child, np.tile([1.0, 0, 0, 0], (n, 1)))
            rotation[child] = quat_mul(rotation[parent], q / np.linalg.norm(q, axis=1, keepdims=True))
            del pending[child]
    out = []
    for item in OUTPUT:
        if isinstance(item, str):
            out.append(position[item])
        else:
            link = item[0]
            out.append(position[link] + quat_rotate(rotation[link], np.broadcast_to(collisions[link], (n, 3))))
    return np.stack(out, axis=1)


def pybullet_link_origins(pose: np.ndarray, urdf: Path) -> dict[str, np.ndarray]:
    """The same poses through pybullet's own FK (p.DIRECT): URDF link frame origins (F, 3) by name."""
    import pybullet as p

    client = p.connect(p.DIRECT)
    try:
        body = p.loadURDF(str(urdf), globalScaling=SCALE, useFixedBase=False, physicsClientId=client)
        index = {p.getJointInfo(body, j, physicsClientId=client)[12].decode(): j
                 for j in range(p.getNumJoints(body, physicsClientId=client))}
        out: dict[str, list] = {name: [] for name in index}
        for frame in pose:
            w, x, y, z = frame[4:8]
            p.resetBasePositionAndOrientation(body, frame[1:4].tolist(), [x, y, z, w], physicsClientId=client)
            for name, off, kind in MOTION_JOINTS:
                if kind == "sphere":
                    qw, qx, qy, qz = frame[off:off + 4]
                    p.resetJointStateMultiDof(body, index[name], [qx, qy, qz, qw], physicsClientId=client)
                else:
                    p.resetJointStateMultiDof(body, index[name], [frame[off]], physicsClientId=client)
            for name, j in index.items():
                out[name].append(p.getLinkState(body, j, computeForwardKinematics=True,
                                                physicsClientId=client)[4])
        return {name: np.array(v) for name, v in out.items()}
    finally:
        p.disconnect(client)


def stick_figure(path: Path, joints: np.ndarray, starts: np.ndarray, lengths: np.ndarray, names: list[str],
                 per_action: int = 4) -> None:
    """A grid: one row per action, ``per_action`` evenly spaced frames, side view (x right, y up)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from representations.encoders.stgcn import HUMANOID_BONES

    fig, axes = plt.subplots(len(names), per_action, figsize=(per_action * 1.3, len(names) * 1.3))
    for row, (name, start, length) in enumerate(zip(names, starts, lengths)):
        for col, f in enumerate(np.linspace(0, length - 1, per_action).round().astype(int)):
            ax = axes[row, col]
            pose = joints[start + f]
            centre = pose[0, [0, 1]]
            for i, j in HUMANOID_BONES:
                colour = "tab:red" if i in (4, 5, 6, 8, 9) or j in (4, 8) else \
                    "tab:blue" if i in (11, 12, 13, 15, 16) or j in (11, 15) else "k"
                ax.plot(pose[[i, j], 0] - centre[0], pose[[i, j], 1], color=colour, lw=1.2)
            ax.set_xlim(-1.0, 1.0)
            ax.set_ylim(-0.1, 1.9)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(name, fontsize=7)
            if row == 0:
                ax.set_title(f"{col + 1}/{per_action} of clip", fontsize=7)
    fig.suptitle("DeepMimic humanoid clips (pybullet_data), FK joints: red = right, blue = left", fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.985))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pybullet-data", default=None, help="pybullet_data folder (default: the installed one)")
    parser.add_argument("--out", default="representations/data/humanoid_mocap.npz")
    parser.add_argument("--figure", default="docs/mocap_skeletons.png")
    parser.add_argument("--check-pybullet", action="store_true", help="compare with pybullet's FK")
    args = parser.parse_args(argv)
    if args.pybullet_data is None:
        import pybullet_data

        args.pybullet_data = pybullet_data.getDataPath()
    data = Path(args.pybullet_data)
    urdf = data / "humanoid" / "humanoid.urdf"
    clips, starts, lengths, key_frames = [], [], [], []
    for action in ACTIONS:
        frames = np.array(json.loads((data / "data" / "motions" / f"humanoid3d_{action}.txt").read_text())["Frames"])
        pose = resample(frames)
        joints = forward_kinematics(pose, urdf)
        if args.check_pybullet:
            ref = pybullet_link_origins(pose, urdf)
            err = max(np.abs(joints[:, i] - ref[name]).max() for i, name in enumerate(OUTPUT) if isinstance(name, str))
            print(f"{action}: max |ours - pybullet| over link origins = {err:.2e} m")
        starts.append(sum(lengths))
        lengths.append(len(joints))
        key_frames.append(len(frames))
        clips.append(joints.astype(np.float32))
    joints = np.concatenate(clips)
    out = Path(args.out)
    np.savez_compressed(out, joints=joints, clip_start=np.array(starts), clip_length=np.array(lengths),
                        key_frames=np.array(key_frames), actions=np.array(ACTIONS), fps=np.array(FPS))
    print(f"wrote {out}: {joints.shape[0]} frames of {joints.shape[1]} joints from {len(ACTIONS)} clips")
    if args.figure:
        stick_figure(Path(args.figure), joints, np.array(starts), np.array(lengths), list(ACTIONS))
        print(f"wrote {args.figure}")


if __name__ == "__main__":
    main()
