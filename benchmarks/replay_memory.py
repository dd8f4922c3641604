"""Bytes per stored transition of the frame-once pixel replay against CURL's reference layout.

The reference buffer keeps obs and next_obs stacks per transition: 2 x (3*k) x H x W uint8 bytes
(180,000 B at k=3, 100x100) plus action, reward and done. Ours keeps one 3xHxW frame per step.
Measured from the allocated tensors of a real ``PixelReplay`` and from a filled buffer's footprint.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np
import torch

from agents.replay import PixelReplay


def allocated_bytes(replay: PixelReplay) -> int:
    tensors = (replay.frames, replay.actions, replay.rewards, replay.not_done)
    return sum(t.numel() * t.element_size() for t in tensors) + replay.ep_pos.nbytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--render", type=int, default=100)
    parser.add_argument("--frame-stack", type=int, default=3)
    parser.add_argument("--action-dim", type=int, default=6)
    parser.add_argument("--capacity", type=int, default=100_000)
    parser.add_argument("--episode-steps", type=int, default=250, help="agent steps per episode (1000 / repeat 4)")
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
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"replay: {ours_per_transition:,.0f} B/transition vs reference {reference:,} B "
          f"({result['ratio_reference_over_ours']}x smaller)")


if __name__ == "__main__":
    main()
