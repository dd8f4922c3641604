"""Position encodings: fixed sinusoids (M-CURL reconstructor) and resizing of learned grids.

Learned position tables are stored for one grid (the configured image size / frame count); a
multi-crop method feeds the same encoder views of other sizes, so the table is interpolated to the
grid actually seen instead of failing.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F


def sinusoidal_positions(
    length: int,
    dim: int,
    *,
    base: float = 10000.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Fixed (length, dim) table: column j is sin (j even) or cos (j odd) of pos / base**(2*(j//2)/dim).

    Odd ``dim`` is handled by giving the last column a sine of its own frequency, so no column is
    dropped or padded.
    """
    if length < 0 or dim < 1:
        raise ValueError(f"sinusoidal_positions needs length >= 0 and dim >= 1, got {length}, {dim}")
    pos = torch.arange(length, device=device, dtype=torch.float64).unsqueeze(1)
    col = torch.arange(dim, device=device)
    inv_freq = torch.exp(-(2 * (col // 2)).double() * (math.log(base) / dim))
    angles = pos * inv_freq
    table = torch.where(col % 2 == 0, torch.sin(angles), torch.cos(angles))
    return table.to(dtype)


def resize_grid_positions(pos: torch.Tensor, old_grid: tuple[int, int], new_grid: tuple[int, int]) -> torch.Tensor:
    """Bicubic resize of a learned (1, H*W, D) table from ``old_grid`` to ``new_grid`` (rows, cols)."""
    if tuple(old_grid) == tuple(new_grid):
        return pos
    dim = pos.shape[-1]
    grid = pos.reshape(1, old_grid[0], old_grid[1], dim).permute(0, 3, 1, 2)
    grid = F.interpolate(grid.float(), size=tuple(new_grid), mode="bicubic", align_corners=False)
    return grid.to(pos.dtype).permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], dim)


def resize_sequence_positions(pos: torch.Tensor, new_length: int) -> torch.Tensor:
    """Linear resize of a learned (1, L, D) table along L (temporal positions of a video model)."""
    if pos.shape[1] == new_length:
        return pos
    seq = pos.transpose(1, 2).float()
    seq = F.interpolate(seq, size=new_length, mode="linear", align_corners=False)
    return seq.transpose(1, 2).to(pos.dtype)
