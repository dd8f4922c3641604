"""Every random stream of a run, derived from ``numpy.random.SeedSequence(seed)``.

Each named stream is the child ``SeedSequence(seed, spawn_key=(stream,))`` and each episode's reset
seed the grandchild ``spawn_key=(stream, episode)``, so streams of one run never overlap, two run
seeds share no start state (with the odds of a 64-bit collision), and a resumed run recomputes
the same episode seeds without carrying any state.
"""

from __future__ import annotations

import numpy as np
import torch

STREAMS = ("train_env", "eval_env", "exploration", "replay", "agent")


class RunSeeds:
    def __init__(self, seed: int) -> None:
        if int(seed) < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.seed = int(seed)

    def _sequence(self, stream: str, *more: int) -> np.random.SeedSequence:
        if stream not in STREAMS:
            raise KeyError(f"unknown random stream {stream!r}; known: {', '.join(STREAMS)}")
        return np.random.SeedSequence(self.seed, spawn_key=(STREAMS.index(stream), *more))

    def numpy_rng(self, stream: str) -> np.random.Generator:
        return np.random.default_rng(self._sequence(stream))

    def torch_generator(self, stream: str, device: str | torch.device = "cpu") -> torch.Generator:
        gen = torch.Generator(device=device)
        gen.manual_seed(int(self._sequence(stream).generate_state(1, np.uint64)[0]) % 2**63)
        return gen

    def episode_seed(self, stream: str, episode: int) -> int:
        """The env reset seed of one episode of ``train_env`` or ``eval_env`` (63 bits)."""
        return int(self._sequence(stream, int(episode)).generate_state(1, np.uint64)[0]) % 2**63
