"""Skeleton sequences for pretraining: ``SkeletonData`` and the CML augmentations (shear, temporal crop).

Sequences are float32 ``(N, C, T, V, M)`` (coordinates, frames, joints, persons), the NTU RGB+D
convention that ST-GCN reads. Like ``ImageData`` a whole set sits on the device and batches are
gathered by index; augmentations run batched, with random draws made for the global batch and
indexed by the rows a process holds (1 process and W processes see the same views).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch.nn import functional as F

from .idx import DataError
from .protocol import LabelledRows, check_sources

LAYOUTS = {"ntu": 25, "humanoid": 18}  # skeleton name -> joints (graphs: encoders.stgcn.SKELETON_GRAPHS)


@dataclass
class SkeletonData(LabelledRows):
    """float32 sequences (N, C, T, V, M) with int64 labels (N,) (-1 = unlabelled) on one skeleton ``layout``."""

    sequences: torch.Tensor
    labels: torch.Tensor
    classes: list[str] = field(default_factory=list)
    layout: str = "ntu"
    name: str = "skeletons"
    sources: torch.Tensor | None = None  # int id of the clip each window was cut from (None: one per row)
    input_key: ClassVar[str] = "sequences"
    pixels: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if self.sequences.dim() != 5 or not self.sequences.is_floating_point():
            raise DataError(f"{self.name}: sequences must be float (N, C, T, V, M), got {self.sequences.dtype} "
                            f"{tuple(self.sequences.shape)}")
        if self.layout in LAYOUTS and self.sequences.shape[3] != LAYOUTS[self.layout]:
            raise DataError(f"{self.name}: the {self.layout} skeleton has {LAYOUTS[self.layout]} joints, "
                            f"got V={self.sequences.shape[3]}")
        if self.labels.shape != (self.sequences.shape[0],):
            raise DataError(f"{self.name}: {self.sequences.shape[0]} sequences but labels of shape "
                            f"{tuple(self.labels.shape)}")
        check_sources(self.sources, self.sequences.shape[0], self.name)
        self.sequences = self.sequences.float()
        self.labels = self.labels.long()

    @property
    def frames(self) -> int:
        return int(self.sequences.shape[2])

    @property
    def joints(self) -> int:
        return int(self.sequences.shape[3])

    @property
    def persons(self) -> int:
        return int(self.sequences.shape[4])


def resize_time(x: torch.Tensor, frames: int) -> torch.Tensor:
    """(N, C, T, V, M) -> (N, C, frames, V, M) by linear interpolation over time (identity if T == frames)."""
    n, c, t, v, m = x.shape
    if t == frames:
        return x
    flat = x.permute(0, 1, 3, 4, 2).reshape(n, c * v * m, t).float()
    out = F.interpolate(flat, size=frames, mode="linear", align_corners=True)
    return out.view(n, c, v, m, frames).permute(0, 1, 4, 2, 3).contiguous()


def _uniform(shape: tuple[int, ...], generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(shape, generator=generator)


class SkeletonAugment:
    """Shear and temporal crop-with-padding, the augmentations of CrosSCLR / AimCLR that CML uses.

    Shear: x <- S x over the coordinates, S = I with off-diagonals ~ U(-shear, shear). Temporal crop:
    T // padding_ratio frames mirrored onto each end (edge frame repeated, as np.flip of the
    first / last frames), then a random window of T frames. ``shear=0`` / ``padding_ratio=0`` turn
    a part off.
    """

    def __init__(self, shear: float = 0.5, padding_ratio: int = 6) -> None:
        if shear < 0:
            raise ValueError(f"shear must be >= 0, got {shear}")
        if padding_ratio < 0:
            raise ValueError(f"padding_ratio must be >= 0 (0 = no temporal crop), got {padding_ratio}")
        self.shear, self.padding_ratio = float(shear), int(padding_ratio)

    def draw(self, global_batch: int, frames: int,
             generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(shear matrices (G, 3, 3), crop starts (G,)) for a global batch, on the CPU."""
        off = (_uniform((global_batch, 6), generator) * 2 - 1) * self.shear
        mats = torch.eye(3).repeat(global_batch, 1, 1)
        rows, cols = torch.tensor([0, 0, 1, 1, 2, 2]), torch.tensor([1, 2, 0, 2, 0, 1])
        mats[:, rows, cols] = off
        pad = frames // self.padding_ratio if self.padding_ratio else 0
        starts = (_uniform((global_batch,), generator) * (2 * pad + 1)).long().clamp(max=2 * pad)
        return mats, starts

    def __call__(self, x: torch.Tensor, rows: torch.Tensor | None = None, global_batch: int | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Augmented copy of (B, C, T, V, M); ``rows`` pick this process's draws from the global batch."""
        b, c, t, _, _ = x.shape
        rows = torch.arange(b) if rows is None else rows.cpu()
        mats, starts = self.draw(global_batch or b, t, generator)
        mats, starts = mats[rows].to(x.device, x.dtype), starts[rows].to(x.device)
        out = x
        if self.shear > 0 and c == 3:
            out = torch.einsum("bij,bjtvm->bitvm", mats, out)
        pad = t // self.padding_ratio if self.padding_ratio else 0
        if pad:
            padded = torch.arange(-pad, t + pad, device=x.device)
            padded = torch.where(padded < 0, -padded - 1, torch.where(padded >= t, 2 * t - 1 - padded, padded))
            frames = padded[starts[:, None] + torch.arange(t, device=x.device)[None]]  # (B, T) source frames
            index = frames[:, None, :, None, None].expand_as(out)
            out = out.gather(2, index)
        return out
