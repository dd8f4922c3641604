"""CURL's contrastive objective: bilinear similarity z_a W z_pos^T, cross-entropy over the batch."""

from __future__ import annotations

import torch
from torch import nn

from representations.losses import info_nce_logits


class CURLObjective(nn.Module):
    """Owns the bilinear matrix W. Keys are treated as constants (they come from an EMA encoder)."""

    def __init__(self, feature_dim: int) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.rand(feature_dim, feature_dim))

    def forward(self, anchor: torch.Tensor, positive: torch.Tensor,
                extra_negatives: torch.Tensor | None = None, extra_negative_weight: float = 1.0
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits, labels = info_nce_logits(anchor, positive.detach(), weight=self.W,
                                         extra_negatives=None if extra_negatives is None else extra_negatives.detach(),
                                         extra_negative_weight=extra_negative_weight)
        loss = nn.functional.cross_entropy(logits, labels)
        accuracy = (logits.detach().argmax(1) == labels).float().mean()
        return loss, {"accuracy": accuracy}
