"""Shared random-selection helpers for the mask generators (private).

All randomness is drawn on the generator's device (or on the target device when no generator is
given) and then moved, so a CPU generator gives the same masks on CPU and CUDA. Selections are
top-k on uniform noise, which is vectorised over the batch and exact in count.
"""

from __future__ import annotations

import torch

Ratio = float | tuple[float, float]


def check_ratio(ratio: Ratio, name: str = "ratio") -> tuple[float, float]:
    """(low, high) of a fixed ratio or a per-sample range; ValueError outside [0, 1]."""
    if isinstance(ratio, (tuple, list)):
        if len(ratio) != 2:
            raise ValueError(f"{name} range must be (low, high), got {ratio!r}")
        low, high = float(ratio[0]), float(ratio[1])
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"{name} range must lie in [0, 1] with low <= high, got ({low}, {high})")
        return low, high
    value = float(ratio)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return value, value


def as_device(device: torch.device | str | None) -> torch.device:
    return torch.device("cpu") if device is None else torch.device(device)


def uniform(
    shape: tuple[int, ...],
    generator: torch.Generator | None,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """U[0, 1) noise drawn where the generator lives, returned on ``device``."""
    draw_on = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=draw_on, dtype=dtype).to(device)


def normal(
    shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """N(0, 1) noise drawn where the generator lives, returned on ``device``."""
    draw_on = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=draw_on).to(device)


def draw_fractions(
    batch: int, ratio: Ratio, generator: torch.Generator | None, device: torch.device, name: str = "ratio"
) -> torch.Tensor | float:
    """A float for a fixed ratio (no random draw), else a float64 (B,) tensor drawn from U[low, high)."""
    low, high = check_ratio(ratio, name)
    if low == high:
        return low
    return low + (high - low) * uniform((batch,), generator, device, torch.float64)


def round_counts(fraction: torch.Tensor | float, total: torch.Tensor | int, batch: int,
                 device: torch.device) -> torch.Tensor:
    """round(fraction * total) per sample as int64 (B,); ties round half to even, like Python's round."""
    value = torch.as_tensor(fraction, dtype=torch.float64, device=device) * torch.as_tensor(
        total, dtype=torch.float64, device=device
    )
    return torch.round(value).long().expand(batch).contiguous()


def select_random(noise: torch.Tensor, counts: torch.Tensor, candidates: torch.Tensor | None = None) -> torch.Tensor:
    """Bool (B, N): ``counts[b]`` cells of row b chosen uniformly among ``candidates[b]`` (all if None).

    The chosen cells are the candidates with the smallest noise (``noise`` in [0, 1)); callers
    guarantee ``counts <= candidates.sum(1)``. One unsorted top-k, no sort: per-row counts are made
    a single k by padding each row with k_max - counts[b] dummy cells that are always picked.
    Without candidates and with more than half the row chosen, the complement is selected
    instead (the same set, fewer cells to find).
    """
    batch, n = noise.shape
    if batch == 0 or n == 0 or int(counts.max()) == 0:
        return torch.zeros(batch, n, dtype=torch.bool, device=noise.device)
    if candidates is None and int((n - counts).max()) < int(counts.max()):
        return ~_smallest(1.0 - noise, n - counts)  # largest noise = complement of the smallest
    return _smallest(noise if candidates is None else torch.where(candidates, noise, 2.0), counts)


def _smallest(key: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Bool (B, N) marking the counts[b] smallest keys of each row."""
    batch, n = key.shape
    k_max = int(counts.max())
    if k_max == 0:
        return torch.zeros(batch, n, dtype=torch.bool, device=key.device)
    if bool((counts != k_max).any()):
        dummies = torch.arange(k_max, device=key.device) < (k_max - counts)[:, None]
        key = torch.cat([key, torch.where(dummies, -1.0, 3.0).to(key.dtype)], dim=1)
    idx = torch.topk(key, k_max, dim=1, largest=False, sorted=False).indices
    chosen = torch.zeros(key.shape, dtype=torch.bool, device=key.device).scatter_(1, idx, True)
    return chosen[:, :n].contiguous()
