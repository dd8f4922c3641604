"""MiCL: one ViT, 90% of the patches masked, the visible ones split into two disjoint groups that
each carry their own [CLS]; symmetric InfoNCE between the two [CLS] projections. No decoder and no
momentum encoder: the two groups are the two views, so one forward pass serves both.

Multi-process: both projections are gathered with gradient (``gather_with_grad``) and every rank
computes the loss over the global batch, which keeps the negatives and the gradient identical to
a 1-process run with the same global batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..core import distributed as dist_utils
from ..data.augment import BatchAugment
from ..encoders.vit import ViT
from ..losses import info_nce
from ..masking import split_visible_groups
from ..modules.heads import MLPHead
from .base import Batch, Objective


class MiCL(Objective):
    name = "micl"

    def __init__(self, encoder: nn.Module, augment: BatchAugment | None, *, mask_ratio: float = 0.9,
                 dim: int = 128, hidden_dim: int = 512, temperature: float = 0.2, head_norm: str | None = None,
                 **base_kwargs) -> None:
        if not isinstance(encoder, ViT):
            raise ValueError(f"micl needs a ViT encoder (encoder=vit), got {type(encoder).__name__}")
        if encoder.num_cls != 2:
            raise ValueError(f"micl needs a ViT with num_cls=2 (one [CLS] per group), got num_cls={encoder.num_cls}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        super().__init__(encoder, **base_kwargs)
        self.augment, self.mask_ratio, self.temperature = augment, float(mask_ratio), temperature
        self.head = MLPHead(encoder.feature_dim, hidden_dim, dim, num_layers=2,
                            norm=None if head_norm in (None, "none") else head_norm)
        # Fail at construction, not at the first step, when the ratio leaves too few tokens.
        split_visible_groups(1, encoder.num_patches, self.mask_ratio)

    def forward(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        images = batch["images"]
        rows, total = self.random_rows(batch)
        if self.augment is not None:
            views, _ = self.augment(images, self.generators["augment"], rows, total)
        else:
            views = images.float() / 255.0
        x = self.prepare(views)
        tokens = self.encoder.patch_embed.grid_size(*x.shape[-2:])
        first, second = split_visible_groups(total, tokens[0] * tokens[1], self.mask_ratio,
                                             generator=self.generators["mask"], device=x.device)
        cls = self.encoder.forward_groups(x, [first[rows], second[rows]])  # (B, 2, D)
        z = F.normalize(self.head(cls).float(), dim=-1)
        z1, z2 = dist_utils.gather_with_grad(z[:, 0]), dist_utils.gather_with_grad(z[:, 1])
        loss = info_nce(z1, z2, temperature=self.temperature, similarity="dot", symmetric=True)
        with torch.no_grad():
            sim = z1 @ z2.t()
            acc = (sim.argmax(dim=1) == torch.arange(sim.shape[0], device=sim.device)).float().mean()
        return loss, {"acc": acc, "pos_sim": sim.diagonal().mean()}
