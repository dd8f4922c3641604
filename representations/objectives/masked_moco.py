"""MoCo v2 with masked queries: random grid masks (``moco_mask``, the MSCN-style baseline) and
saliency-guided masks with foreground-masked hard negatives (``moco_saliency``, Chin et al., WACV
2024, official code joycenerd/Saliency-Guided-Masking-for-ConvNets).

Only the query is masked; the key stays whole. Both variants share the filling strategy, so the
comparison isolates where the masks go. Fills, on normalised pixels as in the official code:
"highpass" (default, the paper's best: both branches and evaluation see x - blur(x), masks use
the official noise recipe, ``masking.noise_recipe_fill``), "blur" (masked cells take a k31 sigma10
blur of the image), "mean" (the image's channel mean), "zero".

Saliency (SCDA): channel sum of a frozen network's last conv map, foreground = cells >= mean - 0.6
std, computed on the query view for the query mask and on the key view for the hard negative. The
network is any encoder file (``saliency_encoder``, e.g. a first-stage ``method=moco`` run: the
official code uses a frozen supervised ResNet-50) or, without one, the EMA key encoder being
trained (its key-view map is free; the query view costs one more no-grad forward, or none with
``query_saliency="warp"``, which reads the key view's map through the two crop boxes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..data.augment import BatchAugment, view_to_view_grid
from ..masking import (
    NEGATIVE_RECIPE,
    QUERY_RECIPE,
    RECIPE_DRAWS,
    NoiseRecipe,
    apply_patch_mask,
    hard_negative_mask,
    noise_recipe_fill,
    random_patch_mask,
    saliency_guided_mask,
    scda_foreground,
    upsample_mask,
)
from ..masking._sampling import normal, uniform
from .base import normalise
from .moco import Masked, MoCo, Views

FILL_MODES = ("highpass", "blur", "mean", "zero")


def fill_settings(fill: str) -> tuple[str, str]:
    """(input filter, cell fill) of a fill mode; "recipe" = the official high-pass noise recipe."""
    if fill not in FILL_MODES:
        raise ValueError(f"unknown fill {fill!r}; use one of {', '.join(FILL_MODES)}")
    return ("high_pass", "recipe") if fill == "highpass" else ("none", fill)


def _ratio(value: float | list[float] | tuple[float, float]) -> float | tuple[float, float]:
    return (float(value[0]), float(value[1])) if isinstance(value, (list, tuple)) else float(value)


def _to_global(local: torch.Tensor, rows: torch.Tensor, total: int) -> torch.Tensor:
    """Place per-sample tensors at their global-batch rows (other rows empty) so a sampler that
    draws per row gives every sample the same draw in 1 or W processes."""
    if local.shape[0] == total:
        return local
    out = torch.zeros((total, *local.shape[1:]), dtype=local.dtype, device=local.device)
    out[rows] = local
    return out


class MoCoMask(MoCo):
    """MoCo v2 + random grid masks on the query (ratio U[low, high] of the cells), filled like
    ``moco_saliency`` fills: the MSCN-style random-masking baseline."""

    name = "moco_mask"

    def __init__(self, encoder: nn.Module, augment: BatchAugment, *, mask_ratio=(0.05, 0.25), grid: int = 7,
                 fill: str = "highpass", **kwargs) -> None:
        input_filter, cell_fill = fill_settings(fill)
        super().__init__(encoder, augment, input_filter=input_filter, **kwargs)
        if grid < 1:
            raise ValueError(f"mask grid must be >= 1, got {grid}")
        self.fill, self.cell_fill, self.grid, self.mask_ratio = fill, cell_fill, int(grid), _ratio(mask_ratio)

    def _channels(self, views: Views) -> int:
        """Independent cell masks per image: one per channel for the recipe (channel-wise masking)."""
        return views.query_input.shape[1] if self.cell_fill == "recipe" else 1

    def _fill(self, x: torch.Tensor, cells: torch.Tensor, recipe: NoiseRecipe, views: Views
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """(filled inputs, pixel mask (B, C, H, W)) for cell masks (B, C', grid, grid)."""
        gen = self.generators["mask"]
        if self.cell_fill == "recipe":
            draws = uniform((views.global_batch, RECIPE_DRAWS), gen, x.device)[views.rows]
            side = -(-x.shape[-1] // self.grid), -(-x.shape[-2] // self.grid)
            noise = normal((x.shape[1], side[1], side[0]), gen, x.device)
            return noise_recipe_fill(x, cells, recipe, draws, noise)
        filled = apply_patch_mask(x, cells[:, 0], self.cell_fill, generator=gen)
        pixels = upsample_mask(cells[:, 0], *x.shape[-2:])[:, None].expand_as(x)
        return filled, pixels

    def query_cells(self, views: Views, channels: int) -> torch.Tensor:
        total = views.global_batch
        cells = random_patch_mask(total * channels, self.grid, self.mask_ratio, generator=self.generators["mask"],
                                  device=views.query.device)
        return cells.view(total, channels, self.grid, self.grid)[views.rows]

    def mask_views(self, views: Views) -> Masked:
        cells = self.query_cells(views, self._channels(views))
        query, mask = self._fill(views.query_input, cells, QUERY_RECIPE, views)
        return Masked(query=query, query_mask=mask)


class MoCoSaliency(MoCoMask):
    """MoCo v2 + saliency-guided query masks + one foreground-masked hard negative per query."""

    name = "moco_saliency"

    def __init__(self, encoder: nn.Module, augment: BatchAugment, *, mask_ratio=(0.05, 0.25), grid: int = 7,
                 fill: str = "highpass", hard_negatives: bool = True, hard_ratio=(0.4, 0.7),
                 saliency_encoder: nn.Module | None = None, query_saliency: str = "direct",
                 std_factor: float = 0.6, **kwargs) -> None:
        super().__init__(encoder, augment, mask_ratio=mask_ratio, grid=grid, fill=fill, **kwargs)
        if query_saliency not in ("direct", "warp"):
            raise ValueError(f"query_saliency must be 'direct' or 'warp', got {query_saliency!r}")
        if query_saliency == "warp" and saliency_encoder is not None:
            raise ValueError("query_saliency=warp reads the key encoder's map; a saliency network runs on "
                             "both views (use query_saliency=direct)")
        probe = saliency_encoder if saliency_encoder is not None else encoder
        if not (hasattr(probe, "conv_features") and hasattr(probe, "head")):
            raise ValueError(f"the saliency network ({type(probe).__name__}) has no conv map; "
                             "use a ConvEncoder or ResNetSmall")
        self.use_hard, self.hard_ratio = hard_negatives, _ratio(hard_ratio)
        self.query_saliency, self.std_factor = query_saliency, std_factor
        self.saliency_net = saliency_encoder
        if saliency_encoder is not None:
            saliency_encoder.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> MoCoSaliency:
        super().train(mode)
        if self.saliency_net is not None:
            self.saliency_net.eval()  # frozen: its BatchNorm keeps its trained statistics
        return self

    # -- saliency ----------------------------------------------------------------------------------
    def _foreground(self, conv_map: torch.Tensor) -> torch.Tensor:
        """SCDA foreground (B, grid, grid) of a conv map, area-pooled to the grid first."""
        pooled = F.adaptive_avg_pool2d(conv_map.detach().float(), self.grid)
        return scda_foreground(pooled, std_factor=self.std_factor)

    @torch.no_grad()
    def foregrounds(self, views: Views) -> tuple[torch.Tensor, torch.Tensor]:
        """(query-view foreground, key-view foreground), bool (B, grid, grid)."""
        if self.saliency_net is not None:  # the frozen network sees normalised, unfiltered views
            both = normalise(torch.cat([views.query, views.key]))
            fg = self._foreground(self.saliency_net.conv_features(both))  # the map alone: no fc / head
            return fg[: views.query.shape[0]], fg[views.query.shape[0]:]
        key_map = views.key_conv_map
        if key_map is None:
            key_map = self.key[0].conv_features(views.key_input)
        key_fg = self._foreground(key_map)
        if self.query_saliency == "direct":
            query_map = self.key[0].conv_features(views.query_input)  # the map alone: no fc / head
            return self._foreground(query_map), key_fg
        sal = F.adaptive_avg_pool2d(key_map.float().sum(dim=1, keepdim=True), self.grid)
        grid = view_to_view_grid(views.key_crop, views.query_crop, (self.grid, self.grid))
        sampled = F.grid_sample(sal, grid.to(sal.dtype), mode="bilinear", padding_mode="zeros",
                                align_corners=False)[:, 0]
        std, mean = torch.std_mean(sal[:, 0], dim=(1, 2), keepdim=True, correction=0)
        inside = (grid.abs() <= 1.0).all(dim=-1)
        return inside & (sampled >= mean - self.std_factor * std), key_fg  # SCDA rule, key-view statistics

    def _sample(self, sampler, foreground: torch.Tensor, ratio, views: Views, channels: int) -> torch.Tensor:
        """Cell masks (B, channels, grid, grid) of a foreground sampler, drawn for the global batch."""
        total = views.global_batch
        fg = _to_global(foreground, views.rows, total).repeat_interleave(channels, dim=0)
        cells = sampler(fg, ratio, generator=self.generators["mask"])
        return cells.view(total, channels, self.grid, self.grid)[views.rows]

    def mask_views(self, views: Views) -> Masked:
        query_fg, key_fg = self.foregrounds(views)
        channels = self._channels(views)
        cells = self._sample(saliency_guided_mask, query_fg, self.mask_ratio, views, channels)
        query, query_mask = self._fill(views.query_input, cells, QUERY_RECIPE, views)
        hard = hard_mask = None
        if self.use_hard:
            hard_cells = self._sample(hard_negative_mask, key_fg, self.hard_ratio, views, channels)
            hard, hard_mask = self._fill(views.key_input, hard_cells, NEGATIVE_RECIPE, views)
        return Masked(query, hard, query_mask, hard_mask, query_fg, key_fg)
