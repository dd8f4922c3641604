"""Bytes per stored transition of the frame-once pixel replay against CURL's reference layout.

The reference buffer keeps obs and next_obs stacks per transition: 2 x (3*k) x H x W uint8 bytes
(180,000 B at k=3, 100x100) plus action, reward and done. Ours keeps one 3xHxW frame per step.
Measured from the allocated tensors of a real ``PixelReplay`` and from a filled buffer's footprint.

On disk (``agents/replay_store.py``: one compressed file per finished episode, what a resume
reloads) the bytes per transition are measured for a worst case (uniform random frames, which do not
compress) and for real frames (one random-policy episode of a DMC task, unless --no-dmc), and
compared with the in-memory frame-once bytes per transition (target: at most 1.1x).
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np
import torch

from agents.replay import PixelReplay
from agents.replay_store import ReplayStore
from representations.core.atomic import atomic_write_json


def allocated_bytes(replay: PixelReplay) -> int:
    tensors = (replay.frames, replay.actions, replay.rewards, replay.not_done)
    return sum(t.numel() * t.element_size() for t in tensors) + replay.ep_pos.nbytes


def disk_bytes_per_transition(episodes: list[tuple[np.ndarray, np.ndarray]], frame_shape: tuple[int, int, int],
                               k: int, action_dim: int, folder: Path) -> float:
    """Persist each (first obs, [(action, next obs), ...]) episode as the training loop does."""
    replay = PixelReplay(sum(len(steps) + 1 for _, steps in episodes), frame_shape, k, action_dim)
    store = ReplayStore(folder)
    store.clear()
    transitions = 0
    for e, (first, steps) in enumerate(episodes):
        replay.start_episode(first)
        for action, obs in steps:
            replay.add(action, 0.5, False, obs)
        store.write(e, replay.episode_arrays())
        transitions += len(steps)
    size = store.bytes_on_disk()
    store.clear()
    return size / transitions


def random_episode(rng: np.random.Generator, k: int, s: int, a: int, steps: int) -> tuple:
    frames = lambda: rng.integers(0, 256, (3 * k, s, s), dtype=np.uint8)  # noqa: E731
    return frames(), [(rng.uniform(-1, 1, a).astype(np.float32), frames()) for _ in range(steps)]


def dmc_episode(task: str, s: int, k: int) -> tuple[tuple, int]:
    import envs

    env = envs.make_env(task, from_pixels=True, image_size=s, frame_stack=k, action_repeat=None, camera_id=None,
                        seed=1, episode_length=1000)
    env.action_space.seed(1)
    first, _ = env.reset(seed=1)
    steps, done = [], False
    while not done:
        action = env.action_space.sample()
        obs, _, terminated, truncated, _ = env.step(action)
        steps.append((action, obs))
        done = terminated or truncated
    env.close()
    return (first, steps), int(env.action_space.shape[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--render", type=int, default=100)
    parser.add_argument("--frame-stack", type=int, default=3)
    parser.add_argument("--action-dim", type=int, default=6)
    parser.add_argument("--capacity", type=int, default=100_000)
    parser.add_argument("--episode-steps", type=int, default=250, help="agent steps per episode (1000 / repeat 4)")
    parser.add_argument("--dmc-task", default="cheetah-run", help="task of the real-frame episode")
    parser.add_argument("--no-dmc", action="store_true", help="skip the real-frame measurement (no renderer)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "replay_memory.json")
    args = parser.parse_args()

    k, s, a = args.frame_stack, args.render, args.action_dim
    replay = PixelReplay(args.capacity, (3, s, s), k, a)
    ours_per_slot = allocated_bytes(replay) / args.capacity
    # One extra slot per episode holds its reset frame.
    ours_per_transition = ours_per_slot * (args.episode_steps + 1) / args.episode_steps
    reference = 2 * 3 * k * s * s + 4 * a + 4 + 4  # obs + next_obs stacks, float32 action, reward, not_done
    reference_frames_only = 2 * 3 * k * s * s

    # Sanity check on a real filled buffer: every transition's stacks come back intact.
    small = PixelReplay(2_000, (3, s, s), k, a)
    rng = np.random.default_rng(0)
    for _ in range(3):
        small.start_episode(rng.integers(0, 256, (3 * k, s, s), dtype=np.uint8))
        for _ in range(args.episode_steps):
            small.add(rng.uniform(-1, 1, a), 0.0, False, rng.integers(0, 256, (3 * k, s, s), dtype=np.uint8))
    batch = small.sample(64)
    assert batch.obs.shape == (64, 3 * k, s, s)

    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        worst = disk_bytes_per_transition([random_episode(rng, k, s, a, args.episode_steps) for _ in range(2)],
                                          (3, s, s), k, a, Path(tmp) / "random")
        disk = {"random_frames_bytes_per_transition": round(worst, 1),
                "random_frames_ratio_to_memory": round(worst / ours_per_transition, 3)}
        if not args.no_dmc:
            episode, dmc_a = dmc_episode(args.dmc_task, s, k)
            dmc_mem = PixelReplay(args.capacity, (3, s, s), k, dmc_a)
            dmc_memory = allocated_bytes(dmc_mem) / args.capacity * (len(episode[1]) + 1) / len(episode[1])
            real = disk_bytes_per_transition([episode], (3, s, s), k, dmc_a, Path(tmp) / "dmc")
            disk.update({"dmc_task": args.dmc_task, "dmc_episode_agent_steps": len(episode[1]),
                         "dmc_memory_bytes_per_transition": round(dmc_memory, 1),
                         "dmc_bytes_per_transition": round(real, 1),
                         "dmc_ratio_to_memory": round(real / dmc_memory, 3)})
    result = {
        "machine": {"platform": platform.platform(), "torch": torch.__version__},
        "settings": {"render": s, "frame_stack": k, "action_dim": a, "capacity": args.capacity,
                     "episode_agent_steps": args.episode_steps},
        "ours_bytes_per_transition": round(ours_per_transition, 1),
        "reference_bytes_per_transition": reference,
        "reference_frame_bytes_per_transition": reference_frames_only,
        "ratio_reference_over_ours": round(reference / ours_per_transition, 2),
        "ours_total_gib_at_capacity": round(allocated_bytes(replay) / 2**30, 3),
        "reference_total_gib_at_capacity": round(reference * args.capacity / 2**30, 3),
        "disk": disk,
        "disk_note": "replay/ episode files (np.savez_compressed: frames once, actions, rewards, terminated) "
                     "divided by the transitions they hold; ratio_to_memory = disk / in-memory frame-once bytes "
                     "per transition (target <= 1.1)",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, result)
    print(json.dumps(result, indent=2))
    print(f"replay: {ours_per_transition:,.0f} B/transition vs reference {reference:,} B "
          f"({result['ratio_reference_over_ours']}x smaller); on disk {disk}")


if __name__ == "__main__":
    main()
