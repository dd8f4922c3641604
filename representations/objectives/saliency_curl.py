"""Saliency-guided masking for a CURL-style query branch (Chin et al., WACV 2024, adapted to RL).

The saliency comes from a frozen network's last conv map (here: the EMA key encoder), pooled to the
masking grid; the query view is masked with cells split between foreground and background by area;
a hard negative is the key view with much of its foreground masked.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from representations.masking._sampling import Ratio, check_ratio
from representations.masking.patch import apply_patch_mask
from representations.masking.saliency import hard_negative_mask, saliency_guided_mask, scda_foreground


def grid_foreground(conv_map: torch.Tensor, grid: int) -> torch.Tensor:
    """SCDA foreground on a ``grid``x``grid`` masking grid (average-pool the map, then threshold)."""
    return scda_foreground(F.adaptive_avg_pool2d(conv_map.float(), grid))


class SaliencyMasker:
    """Builds the masked query view and the hard-negative view from saliency conv maps."""

    def __init__(self, grid: int = 7, query_ratio: Ratio = (0.05, 0.25), negative_ratio: Ratio = (0.4, 0.7),
                 fill: str = "zero") -> None:
        check_ratio(query_ratio, "query mask ratio")  # fail at construction, not at the first update
        check_ratio(negative_ratio, "hard-negative mask ratio")
        self.grid, self.query_ratio, self.negative_ratio, self.fill = grid, query_ratio, negative_ratio, fill

    def query_view(self, images: torch.Tensor, conv_map: torch.Tensor,
                   generator: torch.Generator | None = None) -> torch.Tensor:
        mask = saliency_guided_mask(grid_foreground(conv_map, self.grid), self.query_ratio, generator=generator)
        return apply_patch_mask(images, mask, self.fill, generator=generator)

    def hard_negative_view(self, images: torch.Tensor, conv_map: torch.Tensor,
                           generator: torch.Generator | None = None) -> torch.Tensor:
        mask = hard_negative_mask(grid_foreground(conv_map, self.grid), self.negative_ratio, generator=generator)
        return apply_patch_mask(images, mask, self.fill, generator=generator)
