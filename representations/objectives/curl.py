"""CURL's contrastive objective: bilinear similarity z_a W z_pos^T, cross-entropy over the batch."""

from __future__ import annotations

import torch
from torch import nn

from representations.losses import info_nce, info_nce_logits


class CURLObjective(nn.Module):
    """Owns the bilinear matrix W. Keys are treated as constants (they come from an EMA encoder)."""

    def __init__(self, feature_dim: int) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.rand(feature_dim, feature_dim))

    def forward(self, anchor: torch.Tensor, positive: torch.Tensor,
                extra_negatives: torch.Tensor | None = None, extra_negative_weight: float = 1.0,
                hard_mode: str = "logit") -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """InfoNCE over the batch (+ optional per-query hard negatives weighted by alpha), in fp32.

        The weighting is ``representations.losses.info_nce``'s hard-negative weighting: with
        ``hard_mode="logit"`` (the saliency paper's official code) alpha multiplies the hard
        negative's similarity inside the logit; ``"term"`` multiplies its exp term instead.
        """
        hard = None if extra_negatives is None else extra_negatives.detach().float()
        anchor, positive = anchor.float(), positive.detach().float()
        kwargs = dict(weight=self.W.float(), hard_negatives=hard, hard_negative_weight=extra_negative_weight,
                      hard_mode=hard_mode)
        loss = info_nce(anchor, positive, **kwargs)
        with torch.no_grad():
            logits, labels = info_nce_logits(anchor, positive, **kwargs)
            accuracy = (logits.argmax(1) == labels).float().mean()
        return loss, {"accuracy": accuracy}
