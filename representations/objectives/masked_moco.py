"""MoCo v2 with masked queries: random patches (``moco_mask``, the MSCN-style baseline) and
saliency-guided masks with foreground-masked hard negatives (``moco_saliency``, Chin et al. 2024).

Only the query is masked; the key stays whole. Fills: "zero", "mean", "blur" on [0, 1] pixels, or
"highpass": both branches (and evaluation) see x - blur(x) and masked cells get Gaussian noise.

Saliency follows SCDA on a frozen network's last conv map (``scda_foreground``). The network is
the EMA key encoder (``saliency="key"``) or any encoder file (``saliency_encoder=``). The key
branch already runs that network on the key view, so the key view's saliency is free; the query's
foreground is then read from it through the two crop boxes (``query_saliency="warp"``, cells the
key view does not cover count as background) instead of paying another forward pass
(``query_saliency="direct"`` runs the network on the query view, exact but slower).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..data.augment import BatchAugment, view_to_view_grid
from ..masking import (
    apply_patch_mask,
    hard_negative_mask,
    random_patch_mask,
    saliency_guided_mask,
    scda_foreground,
)
from .base import encoder_scale
from .moco import MoCo, Views

FILL_MODES = ("zero", "mean", "blur", "highpass")


def fill_settings(fill: str) -> tuple[str, str]:
    """(input filter, mask fill) of a fill mode."""
    if fill not in FILL_MODES:
        raise ValueError(f"unknown fill {fill!r}; use one of {', '.join(FILL_MODES)}")
    return ("high_pass", "noise") if fill == "highpass" else ("none", fill)


def _ratio(value: float | list[float] | tuple[float, float]) -> float | tuple[float, float]:
    return (float(value[0]), float(value[1])) if isinstance(value, (list, tuple)) else float(value)


def _to_global(local: torch.Tensor, rows: torch.Tensor, total: int) -> torch.Tensor:
    """Place per-sample masks at their global-batch rows (other rows empty) so a mask sampler that
    draws per row gives every sample the same draw in 1 or W processes."""
    if local.shape[0] == total:
        return local
    out = torch.zeros((total, *local.shape[1:]), dtype=local.dtype, device=local.device)
    out[rows] = local
    return out


class MoCoMask(MoCo):
    """MoCo v2 + random patch masking of the query (ratio U[low, high] of the grid cells)."""

    name = "moco_mask"

    def __init__(self, encoder: nn.Module, augment: BatchAugment, *, mask_ratio=(0.05, 0.25), grid: int = 7,
                 fill: str = "zero", **kwargs) -> None:
        input_filter, self_fill = fill_settings(fill)
        super().__init__(encoder, augment, input_filter=input_filter, **kwargs)
        if grid < 1:
            raise ValueError(f"mask grid must be >= 1, got {grid}")
        self.fill, self.mask_fill, self.grid, self.mask_ratio = fill, self_fill, int(grid), _ratio(mask_ratio)
        self.last_mask: torch.Tensor | None = None

    def mask_query(self, views: Views, mask: torch.Tensor) -> torch.Tensor:
        self.last_mask = mask
        return apply_patch_mask(self.prepare(views.query), mask, self.mask_fill, generator=self.generators["mask"])

    def query_input(self, views: Views) -> torch.Tensor:
        gen = self.generators["mask"]
        mask = random_patch_mask(views.global_batch, self.grid, self.mask_ratio, generator=gen,
                                 device=views.query.device)[views.rows]
        return self.mask_query(views, mask)


class MoCoSaliency(MoCoMask):
    """MoCo v2 + saliency-guided query masks + one foreground-masked hard negative per query."""

    name = "moco_saliency"

    def __init__(self, encoder: nn.Module, augment: BatchAugment, *, mask_ratio=(0.05, 0.25), grid: int = 7,
                 fill: str = "zero", hard_negatives: bool = True, hard_ratio=(0.4, 0.7), hard_weight: float = 2.0,
                 hard_mode: str = "term", saliency_encoder: nn.Module | None = None,
                 query_saliency: str = "warp", std_factor: float = 0.6, **kwargs) -> None:
        super().__init__(encoder, augment, mask_ratio=mask_ratio, grid=grid, fill=fill, **kwargs)
        if query_saliency not in ("warp", "direct"):
            raise ValueError(f"query_saliency must be 'warp' or 'direct', got {query_saliency!r}")
        if hard_mode not in ("logit", "term"):
            raise ValueError(f"hard_mode must be 'logit' or 'term', got {hard_mode!r}")
        probe = saliency_encoder if saliency_encoder is not None else encoder
        if not hasattr(probe, "last_conv_map"):
            raise ValueError(f"the saliency network ({type(probe).__name__}) has no last conv map; "
                             "use a ConvEncoder or ResNetSmall")
        self.use_hard, self.hard_ratio = hard_negatives, _ratio(hard_ratio)
        self.hard_weight, self.hard_mode = float(hard_weight), hard_mode
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
    def _saliency(self, conv_map: torch.Tensor) -> torch.Tensor:
        """Channel-summed saliency (B, 1, grid, grid), area-pooled when the map is not grid-sized."""
        sal = conv_map.detach().float().sum(dim=1, keepdim=True)
        if sal.shape[-2:] != (self.grid, self.grid):
            sal = F.adaptive_avg_pool2d(sal, self.grid)
        return sal

    @torch.no_grad()
    def _net_saliency(self, views_raw: torch.Tensor) -> torch.Tensor:
        """Run the saliency network on [0, 1] views: a frozen file sees them as they are, the key
        encoder in its training input domain."""
        net = self.saliency_net if self.saliency_net is not None else self.key[0]
        inputs = views_raw if self.saliency_net is not None else self.prepare(views_raw)
        net(inputs * encoder_scale(net))
        return self._saliency(net.last_conv_map)

    def _key_saliency(self, views: Views) -> torch.Tensor:
        if self.saliency_net is None and views.key_conv_map is not None:
            return self._saliency(views.key_conv_map)
        return self._net_saliency(views.key_raw)

    def _foregrounds(self, views: Views) -> tuple[torch.Tensor, torch.Tensor]:
        """(query foreground, key foreground), bool (B, grid, grid)."""
        key_sal = self._key_saliency(views)
        key_fg = scda_foreground(key_sal, std_factor=self.std_factor)
        if self.query_saliency == "direct":
            query_fg = scda_foreground(self._net_saliency(views.query), std_factor=self.std_factor)
            return query_fg, key_fg
        grid = view_to_view_grid(views.key_crop, views.query_crop, (self.grid, self.grid))
        sampled = F.grid_sample(key_sal, grid.to(key_sal.dtype), mode="bilinear", padding_mode="zeros",
                                align_corners=False)[:, 0]
        std, mean = torch.std_mean(key_sal[:, 0], dim=(1, 2), keepdim=True, correction=0)
        inside = (grid.abs() <= 1.0).all(dim=-1)
        query_fg = inside & (sampled >= mean - self.std_factor * std)  # SCDA rule, key view's statistics
        return query_fg, key_fg

    # -- hooks ----------------------------------------------------------------------------------
    def query_input(self, views: Views) -> torch.Tensor:
        query_fg, key_fg = self._foregrounds(views)
        self._key_fg = key_fg
        gen = self.generators["mask"]
        mask = saliency_guided_mask(_to_global(query_fg, views.rows, views.global_batch), self.mask_ratio,
                                    generator=gen)[views.rows]
        self.last_foreground = query_fg
        return self.mask_query(views, mask)

    def hard_negatives(self, views: Views) -> torch.Tensor | None:
        if not self.use_hard:
            return None
        gen = self.generators["mask"]
        mask = hard_negative_mask(_to_global(self._key_fg, views.rows, views.global_batch), self.hard_ratio,
                                  generator=gen)[views.rows]
        masked = apply_patch_mask(views.key, mask, self.mask_fill, generator=gen)
        hard, _ = self.encode_keys(masked)
        return hard
