"""Step-indexed, resumable batches sharded like ``torch.utils.data.DistributedSampler``.

The batch of optimiser step ``s`` is a pure function of (seed, s, rank, world size): epoch
e = s // steps_per_epoch takes ``DistributedSampler.set_epoch(e)`` order and position s mod
steps_per_epoch within it. A resumed run needs only the step counter to continue exactly where
it stopped, and with drop_last the union of the ranks' batches at step s is exactly the 1-process
global batch at step s (rank r holds the global rows r, r + W, r + 2W, ...).
"""

from __future__ import annotations

import torch
from torch.utils.data import DistributedSampler


class StepSampler:
    """Indices of every optimiser step; ``batch_size`` is per rank (global = batch_size * world_size)."""

    def __init__(self, num_samples: int, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1,
                 shuffle: bool = True) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if num_samples < batch_size * world_size:
            raise ValueError(
                f"dataset has {num_samples} samples, fewer than one global batch of {batch_size * world_size}"
            )
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self._sampler = DistributedSampler(range(num_samples), num_replicas=world_size, rank=rank,
                                           shuffle=shuffle, seed=seed, drop_last=True)
        self.steps_per_epoch = len(self._sampler) // batch_size
        self._epoch: int | None = None
        self._order = torch.empty(0, dtype=torch.long)
        self.rows = torch.arange(batch_size) * world_size + rank

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world_size

    def epoch_of(self, step: int) -> int:
        return step // self.steps_per_epoch

    def indices(self, step: int) -> torch.Tensor:
        """This rank's dataset indices (batch_size,) for optimiser step ``step``."""
        epoch = self.epoch_of(step)
        if epoch != self._epoch:
            self._sampler.set_epoch(epoch)
            self._order = torch.tensor(list(iter(self._sampler)), dtype=torch.long)
            self._epoch = epoch
        start = (step % self.steps_per_epoch) * self.batch_size
        return self._order[start:start + self.batch_size]
