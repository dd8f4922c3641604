"""Saliency-guided masking for a CURL-style query branch (Chin et al., WACV 2024, adapted to RL).

The saliency comes from a frozen network's last conv map (here: the EMA key encoder), taken to the
masking grid through each conv cell's receptive-field centre; the query view is masked with cells
split between foreground and background by area; a hard negative is the key view with much of its
foreground masked.
"""

from __future__ import annotations

import torch

from representations.masking._sampling import Ratio, check_ratio
from representations.masking.patch import apply_patch_mask
from representations.masking.saliency import hard_negative_mask, saliency_guided_mask, scda_foreground


def receptive_field_centres(map_size: int, num_layers: int) -> torch.Tensor:
    """Pixel index of the receptive-field centre of each conv cell along one axis (CURL's stack:
    3x3 convs without padding, the first with stride 2): cell j of layer L sits over pixel 2j + 2L - 1."""
    return 2 * torch.arange(map_size) + 2 * num_layers - 1


def grid_pooling_matrix(image_size: int, map_size: int, num_layers: int, grid: int) -> torch.Tensor:
    """(grid, map_size) averaging weights: row g averages the conv cells whose receptive-field centre
    lies in masking cell g (pixel i is in cell floor(i * grid / image_size), as ``upsample_mask``);
    a cell holding no centre takes the nearest one."""
    centres = receptive_field_centres(map_size, num_layers)
    if int(centres[-1]) >= image_size:
        raise ValueError(f"a {map_size}-cell conv map of {num_layers} layers does not fit {image_size} px images")
    band = centres * grid // image_size  # the masking cell of that pixel, as upsample_mask assigns it
    weights = torch.zeros(grid, map_size, dtype=torch.float64)
    weights[band, torch.arange(map_size)] = 1.0
    for g in range(grid):
        if weights[g].sum() == 0:
            mid = (g + 0.5) * image_size / grid
            weights[g, int(torch.argmin((centres.double() - mid).abs()))] = 1.0
    return (weights / weights.sum(1, keepdim=True)).float()


def grid_foreground(conv_map: torch.Tensor, grid: int, image_size: int, num_layers: int) -> torch.Tensor:
    """SCDA foreground on a ``grid``x``grid`` masking grid aligned with the image pixels."""
    pool = grid_pooling_matrix(image_size, conv_map.shape[-1], num_layers, grid).to(conv_map.device)
    pooled = torch.einsum("gi,bcij,hj->bcgh", pool, conv_map.float(), pool)
    return scda_foreground(pooled)


class SaliencyMasker:
    """Builds the masked query view and the hard-negative view from saliency conv maps."""

    def __init__(self, grid: int = 7, query_ratio: Ratio = (0.05, 0.25), negative_ratio: Ratio = (0.4, 0.7),
                 fill: str = "zero", num_layers: int = 4) -> None:
        check_ratio(query_ratio, "query mask ratio")  # fail at construction, not at the first update
        check_ratio(negative_ratio, "hard-negative mask ratio")
        self.grid, self.query_ratio, self.negative_ratio, self.fill = grid, query_ratio, negative_ratio, fill
        self.num_layers = num_layers

    def _foreground(self, images: torch.Tensor, conv_map: torch.Tensor) -> torch.Tensor:
        return grid_foreground(conv_map, self.grid, images.shape[-1], self.num_layers)

    def query_view(self, images: torch.Tensor, conv_map: torch.Tensor,
                   generator: torch.Generator | None = None) -> torch.Tensor:
        mask = saliency_guided_mask(self._foreground(images, conv_map), self.query_ratio, generator=generator)
        return apply_patch_mask(images, mask, self.fill, generator=generator)

    def hard_negative_view(self, images: torch.Tensor, conv_map: torch.Tensor,
                           generator: torch.Generator | None = None) -> torch.Tensor:
        mask = hard_negative_mask(self._foreground(images, conv_map), self.negative_ratio, generator=generator)
        return apply_patch_mask(images, mask, self.fill, generator=generator)
