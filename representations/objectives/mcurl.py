"""M-CURL: mask CNN features of consecutive frames, reconstruct them with a transformer, contrast
the reconstructions with EMA-encoder features of the unmasked sequence (Zhu et al. 2020)."""

from __future__ import annotations

import torch
from torch import nn

from representations.losses import info_nce_logits
from representations.masking.frames import apply_bert_replacement, bert_replacement_plan, frame_mask
from representations.modules.sequence import SequenceTransformer


class MaskedSequenceContrast(nn.Module):
    """Queries: transformer outputs at masked positions. Keys: EMA features at every position of
    the batch of sequences; each query's positive is its own position, all others are negatives."""

    def __init__(self, feature_dim: int = 50, depth: int = 2, heads: int = 2, ffn_dim: int = 100,
                 mask_prob: float = 0.5, temperature: float = 1.0, dropout: float = 0.1) -> None:
        super().__init__()
        if not 0.0 <= mask_prob <= 1.0:
            raise ValueError(f"mask ratio (mask_prob) must be in [0, 1], got {mask_prob}")
        self.transformer = SequenceTransformer(dim=feature_dim, depth=depth, heads=heads, ffn_dim=ffn_dim,
                                               dropout=dropout)
        self.mask_prob = mask_prob
        self.temperature = temperature

    def forward(self, features: torch.Tensor, targets: torch.Tensor, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """features: online (N, L, D) with grad; targets: EMA (N, L, D), treated as constants."""
        n, length, dim = features.shape
        selected = frame_mask(n, length, self.mask_prob, generator=generator, device=features.device)
        plan = bert_replacement_plan(selected, generator=generator)
        predictions = self.transformer(apply_bert_replacement(features, plan, generator))
        queries = predictions[selected]  # (M, D)
        keys = targets.detach()
        logits, labels = info_nce_logits(queries, keys[selected], temperature=self.temperature,
                                         extra_negatives=keys[~selected].reshape(-1, dim))
        loss = nn.functional.cross_entropy(logits, labels)
        accuracy = (logits.detach().argmax(1) == labels).float().mean()
        return loss, {"accuracy": accuracy, "masked_fraction": selected.float().mean()}
