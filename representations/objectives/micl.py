"""MiCL as its official code (AnonymGiant/OCL, ``models_mae.py``): one ViT, 90% of the patches
masked, the kept ones split into two disjoint groups; one shared [CLS] token is copied into each
group; the two [CLS] outputs (after the encoder's final norm, no projector) are contrasted with
the t-vMF similarity 0.5 (1 + s) / (1 + kappa (1 - s)), kappa = 1/64, temperature 0.07, symmetric.
No decoder and no momentum encoder: the two groups are the two views, one forward serves both.
Augmentation: random resized crop + flip only (colour ops of the data config are switched off).

Multi-process: both [CLS] outputs are gathered with gradient (``gather_with_grad``) and every rank
computes the loss over the global batch, which keeps the negatives and the gradient identical to
a 1-process run with the same global batch.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from ..core import distributed as dist_utils
from ..data.augment import BatchAugment
from ..encoders.vit import ViT
from ..losses import info_nce
from ..masking import split_visible_groups
from .base import Batch, Objective


def crop_flip_only(augment: BatchAugment) -> BatchAugment:
    """The same crop and flip settings with every colour / blur op off (MiCL's augmentation)."""
    config = dataclasses.replace(augment.config, jitter_p=0.0, grey_p=0.0, blur_p=0.0)
    return BatchAugment(config)


class MiCL(Objective):
    name = "micl"

    def __init__(self, encoder: nn.Module, augment: BatchAugment | None, *, mask_ratio: float = 0.9,
                 temperature: float = 0.07, kappa: float = 1.0 / 64, **base_kwargs) -> None:
        if not isinstance(encoder, ViT):
            raise ValueError(f"micl needs a ViT encoder (encoder=vit), got {type(encoder).__name__}")
        if encoder.num_cls != 1:
            raise ValueError(f"micl copies one shared [CLS] into each group: needs num_cls=1, got {encoder.num_cls}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if not kappa >= 0:
            raise ValueError(f"kappa must be >= 0, got {kappa}")
        super().__init__(encoder, **base_kwargs)
        self.augment = None if augment is None else crop_flip_only(augment)
        self.mask_ratio, self.temperature, self.kappa = float(mask_ratio), temperature, kappa
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
        cls = self.encoder.forward_groups(x, [first[rows], second[rows]]).float()  # (B, 2, D)
        z1, z2 = dist_utils.gather_with_grad(cls[:, 0]), dist_utils.gather_with_grad(cls[:, 1])
        loss = info_nce(z1, z2, temperature=self.temperature, similarity="tvmf", kappa=self.kappa,
                        symmetric=True)
        with torch.no_grad():
            sim = F.normalize(z1, dim=1) @ F.normalize(z2, dim=1).t()
            acc = (sim.argmax(dim=1) == torch.arange(sim.shape[0], device=sim.device)).float().mean()
        return loss, {"acc": acc, "pos_sim": sim.diagonal().mean()}
