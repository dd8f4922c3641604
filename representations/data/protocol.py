"""The one thing the Trainer needs from a dataset: its size, a device copy, and the tensors of some rows.

Images, skeleton sequences and video clips all satisfy it, so the pretraining loop never asks what
kind of data it holds; an objective reads the keys its method needs (``images``, ``sequences``, ...).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Protocol, TypeVar, runtime_checkable

import numpy as np
import torch

from .idx import DataError


@runtime_checkable
class PretrainData(Protocol):
    """A labelled (or unlabelled, label -1) dataset indexed by row.

    ``to(device)`` is called once before training (in-memory sets move there whole; a lazy set may
    return itself and move each batch); ``batch(indices)`` returns a dict of tensors whose first
    dimension is ``len(indices)``, always including ``labels``, on the device given to ``to``. A lazy
    set may also have ``prefetch(indices)``: the Trainer then passes it the next step's rows while the
    current step trains.
    """

    def __len__(self) -> int: ...

    def to(self, device: torch.device | str) -> PretrainData: ...

    def batch(self, indices: torch.Tensor) -> dict[str, torch.Tensor]: ...


_Rows = TypeVar("_Rows", bound="LabelledRows")


def check_sources(sources: torch.Tensor | None, rows: int, name: str) -> None:
    """One source id per row, or none at all (a dataset's ``__post_init__`` check)."""
    if sources is not None and sources.shape != (rows,):
        raise DataError(f"{name}: {rows} rows but sources of shape {tuple(sources.shape)}")


class LabelledRows:
    """What the in-memory datasets (images, skeletons, video) share: one uint8/float tensor of rows
    named by ``input_key`` plus ``labels`` and ``classes``; size, channels, subsets, device copies,
    batches, the class count and seeded random subsets are the same for all."""

    labels: torch.Tensor
    classes: list[str]
    input_key: ClassVar[str]  # the rows' tensor: what batches carry and what evaluation feeds the encoder
    # uint8 pixels (images, video): methods train on normalise()d values and evaluation feeds the same;
    # False for coordinates (skeletons), which every stage reads as they are
    pixels: ClassVar[bool]
    # optional int id per row of the source a row was cut from (overlapping windows of one video): a
    # dataset with such rows declares a ``sources`` field; splits and subsets carry it along
    sources: torch.Tensor | None = None

    @property
    def rows(self) -> torch.Tensor:
        return getattr(self, self.input_key)

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """The shape of one row as an encoder reads it, (C, ...); a streamed set knows it without decoding."""
        return tuple(self.rows.shape[1:])

    @property
    def channels(self) -> int:
        return int(self.sample_shape[0])

    def _with(self: _Rows, rows: torch.Tensor, labels: torch.Tensor, sources: torch.Tensor | None = None) -> _Rows:
        """The same dataset (classes, name, layout...) over other rows (with their ``sources`` when it has
        them; the current ones otherwise); re-validated."""
        changes = {self.input_key: rows, "labels": labels, "classes": list(self.classes)}
        if sources is not None:
            changes["sources"] = sources
        return dataclasses.replace(self, **changes)

    def subset(self: _Rows, indices: torch.Tensor | np.ndarray | list[int]) -> _Rows:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return self._with(self.rows[idx], self.labels[idx], None if self.sources is None else self.sources[idx])

    def to(self: _Rows, device: torch.device | str) -> _Rows:
        return self._with(self.rows.to(device), self.labels.to(device))

    def batch(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        """The ``PretrainData`` rows the Trainer feeds to an objective: the rows' tensor and ``labels``."""
        return {self.input_key: self.rows[indices], "labels": self.labels[indices]}

    @property
    def num_classes(self) -> int:
        return len(self.classes) if self.classes else int(self.labels.max().item()) + 1

    def limit(self: _Rows, count: int | None, seed: int = 0) -> _Rows:
        """A seeded random subset of ``count`` rows (all of them when None or larger)."""
        if count is None or count <= 0 or count >= len(self):
            return self
        gen = torch.Generator().manual_seed(seed)
        return self.subset(torch.randperm(len(self), generator=gen)[:count].sort().values)
