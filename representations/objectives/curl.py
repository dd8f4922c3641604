"""CURL's contrastive objective: bilinear similarity z_a W z_pos^T, cross-entropy over the batch."""

from __future__ import annotations

import math

import torch
from torch import nn

from representations.losses import info_nce_logits


class CURLObjective(nn.Module):
    """Owns the bilinear matrix W. Keys are treated as constants (they come from an EMA encoder)."""

    def __init__(self, feature_dim: int) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.rand(feature_dim, feature_dim))

    def forward(self, anchor: torch.Tensor, positive: torch.Tensor,
                extra_negatives: torch.Tensor | None = None, extra_negative_weight: float = 1.0,
                hard_mode: str = "term") -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """InfoNCE over the batch (+ optional per-query extra negatives weighted by alpha).

        ``hard_mode="term"``: alpha multiplies the negative's term, alpha * exp(s), i.e. log(alpha) is
        added to its logit (the saliency paper's weighting as read here, also the pretraining default);
        ``"logit"``: alpha multiplies the logit itself, exp(alpha * s).
        """
        if hard_mode not in ("term", "logit"):
            raise ValueError(f"hard_mode must be 'term' or 'logit', got {hard_mode!r}")
        extra = None if extra_negatives is None else extra_negatives.detach()
        logit_weight = extra_negative_weight if hard_mode == "logit" else 1.0
        logits, labels = info_nce_logits(anchor, positive.detach(), weight=self.W, extra_negatives=extra,
                                         extra_negative_weight=logit_weight)
        if extra is not None and hard_mode == "term":
            if extra_negative_weight <= 0:
                raise ValueError(f"hard-negative weight must be > 0, got {extra_negative_weight}")
            batch = anchor.shape[0]
            offset = torch.zeros_like(logits[0])
            offset[batch:] = math.log(extra_negative_weight)
            logits = logits + offset
        loss = nn.functional.cross_entropy(logits, labels)
        accuracy = (logits.detach().argmax(1) == labels).float().mean()
        return loss, {"accuracy": accuracy}
