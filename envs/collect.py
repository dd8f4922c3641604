"""Collect a frame dataset from a control task with a uniform random policy, saved as one .npz.

``python -m envs.collect cheetah-run --frames 20000 --out frames.npz`` stores ``images``
(N, C, H, W) uint8 observations exactly as the agent sees them (frame stack concatenated on
channels), ``episode`` and ``step`` indices, and ``labels`` = -1 (no classes). Pretrain an RL encoder
offline on it with ``mcrl-pretrain data=dmc_frames data.path=frames.npz encoder=conv``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from representations.core.atomic import atomic_path

os.environ.setdefault("MUJOCO_GL", "egl")


def collect_frames(task: str, frames: int, *, image_size: int = 100, frame_stack: int = 3,
                   action_repeat: int | None = None, seed: int = 0, every: int = 1) -> dict[str, np.ndarray]:
    """Run a random policy for ``frames`` kept observations (one in ``every`` agent steps)."""
    from envs.registry import make_env

    if frames < 1 or every < 1:
        raise ValueError(f"frames and every must be >= 1, got {frames} and {every}")
    env = make_env(task, from_pixels=True, image_size=image_size, frame_stack=frame_stack,
                   action_repeat=action_repeat, seed=seed)
    rng = np.random.default_rng(seed)
    low, high = env.action_space.low, env.action_space.high
    images, episodes, steps = [], [], []
    episode, t = 0, 0
    obs, _ = env.reset(seed=seed)
    try:
        while len(images) < frames:
            if t % every == 0:
                images.append(np.asarray(obs, dtype=np.uint8))
                episodes.append(episode)
                steps.append(t)
            obs, _, terminated, truncated, _ = env.step(rng.uniform(low, high).astype(env.action_space.dtype))
            t += 1
            if terminated or truncated:
                episode, t = episode + 1, 0
                obs, _ = env.reset()
    finally:
        env.close()
    return {"images": np.stack(images), "labels": np.full(len(images), -1, dtype=np.int64),
            "episode": np.asarray(episodes, dtype=np.int64), "step": np.asarray(steps, dtype=np.int64)}


def save_frames(data: dict[str, np.ndarray], path: str | Path) -> Path:
    """Write the arrays to ``path`` (.npz, compressed) through a temp file."""
    path = Path(path)
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, **data)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m envs.collect", description=__doc__.splitlines()[0])
    parser.add_argument("task", help="dm_control task (cheetah-run, ...) or a synthetic-* task")
    parser.add_argument("--frames", type=int, default=10000)
    parser.add_argument("--out", required=True)
    parser.add_argument("--image-size", type=int, default=100)
    parser.add_argument("--frame-stack", type=int, default=3)
    parser.add_argument("--action-repeat", type=int, default=None)
    parser.add_argument("--every", type=int, default=1, help="keep one observation in this many agent steps")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        data = collect_frames(args.task, args.frames, image_size=args.image_size, frame_stack=args.frame_stack,
                              action_repeat=args.action_repeat, seed=args.seed, every=args.every)
    except (ValueError, RuntimeError, FileNotFoundError) as err:
        print(f"envs.collect: error: {str(err).strip().splitlines()[0]}", file=sys.stderr)
        sys.exit(2)
    path = save_frames(data, args.out)
    print(f"{len(data['images'])} frames {data['images'].shape[1:]} from {data['episode'][-1] + 1} episodes -> {path}")


if __name__ == "__main__":
    main()
