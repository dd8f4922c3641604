"""MiCL token split: mask most tokens, then split the visible ones into two disjoint groups."""

from __future__ import annotations

import torch

from ._sampling import as_device, check_ratio, uniform


def split_visible_groups(
    batch: int,
    num_tokens: int,
    ratio: float,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two (B, n) int64 index tensors of disjoint visible tokens, each sorted ascending.

    As the official MiCL code (``models_mae.py``, ``random_masking``): int(N * (1 - ratio)) // 2 * 2
    tokens are kept, and split at random into two groups of n = that // 2. Each group is one "view" of the image
    for the shared ViT; disjoint groups make the two views share no pixels. ``ratio`` is a float
    (equal group sizes across the batch keep the tensors rectangular).
    """
    if isinstance(ratio, (tuple, list)):
        raise ValueError("split_visible_groups needs a single float ratio (groups must have one size)")
    low, _ = check_ratio(ratio)
    if num_tokens < 1:
        raise ValueError(f"num_tokens must be >= 1, got {num_tokens}")
    visible = int(num_tokens * (1 - low))
    n = visible // 2
    if n < 1:
        raise ValueError(
            f"masking {low} of {num_tokens} tokens leaves {visible} visible, too few for two groups"
        )
    device = as_device(device)
    noise = uniform((batch, num_tokens), generator, device)
    order = torch.topk(noise, 2 * n, dim=1, largest=False, sorted=True).indices
    return order[:, :n].sort(dim=1).values, order[:, n:].sort(dim=1).values
