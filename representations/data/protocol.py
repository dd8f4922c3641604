"""The one thing the Trainer needs from a dataset: its size, a device copy, and the tensors of some rows.

Images, skeleton sequences and video clips all satisfy it, so the pretraining loop never asks what
kind of data it holds; an objective reads the keys its method needs (``images``, ``sequences``, ...).
"""

from __future__ import annotations

from typing import Protocol, TypeVar, runtime_checkable

import torch


@runtime_checkable
class PretrainData(Protocol):
    """A labelled (or unlabelled, label -1) dataset indexed by row.

    ``to(device)`` is called once before training (in-memory sets move there whole; a lazy set may
    return itself and move each batch); ``batch(indices)`` returns a dict of tensors whose first
    dimension is ``len(indices)``, always including ``labels``, on the device given to ``to``.
    """

    def __len__(self) -> int: ...

    def to(self, device: torch.device | str) -> PretrainData: ...

    def batch(self, indices: torch.Tensor) -> dict[str, torch.Tensor]: ...


_Rows = TypeVar("_Rows", bound="LabelledRows")


class LabelledRows:
    """What the in-memory datasets (images, skeletons, video) share: given ``labels``, ``classes``,
    ``__len__`` and ``subset``, the class count and seeded random subsets are the same for all."""

    labels: torch.Tensor
    classes: list[str]

    def __len__(self) -> int:
        raise NotImplementedError

    def subset(self: _Rows, indices: torch.Tensor | list[int]) -> _Rows:
        raise NotImplementedError

    @property
    def num_classes(self) -> int:
        return len(self.classes) if self.classes else int(self.labels.max().item()) + 1

    def limit(self: _Rows, count: int | None, seed: int = 0) -> _Rows:
        """A seeded random subset of ``count`` rows (all of them when None or larger)."""
        if count is None or count <= 0 or count >= len(self):
            return self
        gen = torch.Generator().manual_seed(seed)
        return self.subset(torch.randperm(len(self), generator=gen)[:count].sort().values)
