"""The one thing the Trainer needs from a dataset: its size, a device copy, and the tensors of some rows.

Images, skeleton sequences and video clips all satisfy it, so the pretraining loop never asks what
kind of data it holds; an objective reads the keys its method needs (``images``, ``sequences``, ...).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

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
