"""Saliency-guided masks (Chin et al., WACV 2024): SCDA foreground, balanced masks, hard negatives."""

from __future__ import annotations

import torch

from ._sampling import Ratio, draw_fractions, round_counts, select_random, uniform


def scda_foreground(feature_map: torch.Tensor, *, std_factor: float = 0.6) -> torch.Tensor:
    """Bool (B, h, w) foreground of a conv feature map (B, C, h, w), SCDA-style.

    Saliency is the channel sum of the map; a cell is foreground when its saliency is at least
    ``mean - std_factor * std`` of its own sample (population std over the cells). No learning and
    no labels: a frozen network's last conv map is enough to say roughly where the object is.
    """
    if feature_map.dim() != 4:
        raise ValueError(f"feature_map must be (B, C, h, w), got shape {tuple(feature_map.shape)}")
    dtype = torch.float64 if feature_map.dtype == torch.float64 else torch.float32
    saliency = feature_map.detach().to(dtype).sum(dim=1)
    std, mean = torch.std_mean(saliency, dim=(1, 2), keepdim=True, correction=0)
    return saliency >= mean - std_factor * std


def _check_foreground(foreground: torch.Tensor) -> torch.Tensor:
    if foreground.dim() < 2:
        raise ValueError(f"foreground must be (B, ...) with a batch dim, got shape {tuple(foreground.shape)}")
    if foreground.dtype != torch.bool:
        raise ValueError(f"foreground must be a bool tensor, got {foreground.dtype}")
    return foreground.reshape(foreground.shape[0], -1)


def saliency_guided_mask(
    foreground: torch.Tensor, ratio: Ratio, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Bool mask shaped like ``foreground``: round(ratio * cells) masked, split fg/bg by area.

    The foreground gets round(M * F / N) of the M masked cells (F foreground cells out of N) and the
    background the rest, so each part is within half a cell of its proportional share; cells are
    chosen uniformly within each part. This keeps masking from wiping out the object in one view
    (the "misleading contrastiveness" the paper avoids). ``ratio``: float or (low, high) per sample,
    e.g. (0.05, 0.25).
    """
    flat = _check_foreground(foreground)
    batch, cells = flat.shape
    device = flat.device
    fraction = draw_fractions(batch, ratio, generator, device)
    total = round_counts(fraction, cells, batch, device)
    fg_area = flat.sum(dim=1)
    fg_count = torch.round(total.double() * fg_area.double() / max(cells, 1)).long()
    bg_count = total - fg_count
    noise = uniform((batch, cells), generator, device)
    # Both parts in one selection: the foreground rows stacked on top of the background rows.
    both = select_random(torch.cat([noise, noise]), torch.cat([fg_count, bg_count]), torch.cat([flat, ~flat]))
    return (both[:batch] | both[batch:]).view_as(foreground)


def hard_negative_mask(
    foreground: torch.Tensor, ratio: Ratio, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Bool mask shaped like ``foreground`` that masks only foreground cells: round(ratio * F) of them.

    Masking a large part of the object (e.g. ratio U[0.4, 0.7]) makes a view that looks like the
    image but has lost its content: a hard negative for the contrastive loss.
    """
    flat = _check_foreground(foreground)
    batch, cells = flat.shape
    device = flat.device
    fraction = draw_fractions(batch, ratio, generator, device)
    counts = round_counts(fraction, flat.sum(dim=1), batch, device)
    noise = uniform((batch, cells), generator, device)
    return select_random(noise, counts, flat).view_as(foreground)
