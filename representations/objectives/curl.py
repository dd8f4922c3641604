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
        """InfoNCE over the batch (+ optional per-query extra negatives weighted by alpha), in fp32.

        The weighting is ``representations.losses.info_nce``'s: alpha multiplies the hard negative's
        logit, exp(alpha * s) (``hard_mode="logit"``, as in the saliency paper's official code); it is
        the only mode, kept as an argument so a config naming another mode fails loudly.
        """
        if hard_mode != "logit":
            raise ValueError(f"hard_mode must be 'logit' (alpha inside the logit), got {hard_mode!r}")
        extra = None if extra_negatives is None else extra_negatives.detach().float()
        anchor, positive = anchor.float(), positive.detach().float()
        kwargs = dict(weight=self.W.float(), extra_negatives=extra, extra_negative_weight=extra_negative_weight)
        loss = info_nce(anchor, positive, **kwargs)
        with torch.no_grad():
            logits, labels = info_nce_logits(anchor, positive, **kwargs)
            accuracy = (logits.argmax(1) == labels).float().mean()
        return loss, {"accuracy": accuracy}
