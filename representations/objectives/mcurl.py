"""M-CURL: mask consecutive frames, reconstruct their CNN features with a transformer, contrast the
reconstructions with EMA-encoder features of the unmasked sequence (Zhu et al. 2020).

Two places to mask (``mask_space``): ``observation`` (the official code: the stacked observation
is blanked or swapped for a random one before the CNN; done by the caller, which owns the pixels)
and ``features`` (the paper text's reading: the 50-d CNN features are zeroed or swapped after it).
"""

from __future__ import annotations

import torch
from torch import nn

from representations.losses import info_nce_logits
from representations.masking.frames import apply_bert_replacement, bert_replacement_plan, frame_mask
from representations.modules.sequence import SequenceTransformer


class MaskedSequenceContrast(nn.Module):
    """Queries: transformer outputs at masked positions. Keys: EMA features at every position of
    the batch of sequences; each query's positive is its own position, all others are negatives
    (the official ``compute_logits``: plain dot products, no W, temperature 1)."""

    def __init__(self, feature_dim: int = 50, depth: int = 2, heads: int = 1, ffn_dim: int = 100,
                 mask_prob: float = 0.5, temperature: float = 1.0, dropout: float = 0.1) -> None:
        super().__init__()
        if not 0.0 <= mask_prob <= 1.0:
            raise ValueError(f"mask ratio (mask_prob) must be in [0, 1], got {mask_prob}")
        self.transformer = SequenceTransformer(dim=feature_dim, depth=depth, heads=heads, ffn_dim=ffn_dim,
                                               dropout=dropout)
        self.mask_prob = mask_prob
        self.temperature = temperature

    def plan(self, num_sequences: int, length: int, generator: torch.Generator | None = None,
             device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(selected (N, L) bool, BERT replacement codes (N, L)) for one batch of sequences."""
        selected = frame_mask(num_sequences, length, self.mask_prob, generator=generator, device=device)
        return selected, bert_replacement_plan(selected, generator=generator)

    def contrast(self, inputs: torch.Tensor, targets: torch.Tensor, selected: torch.Tensor
                 ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """inputs: (N, L, D) features of the (already masked) sequences, with grad; targets: EMA
        features (N, L, D) of the unmasked sequences, treated as constants; selected: (N, L) bool."""
        dim = inputs.shape[-1]
        predictions = self.transformer(inputs)
        queries = predictions[selected]  # (M, D)
        keys = targets.detach()
        logits, labels = info_nce_logits(queries.float(), keys[selected].float(), temperature=self.temperature,
                                         extra_negatives=keys[~selected].reshape(-1, dim).float())
        loss = nn.functional.cross_entropy(logits, labels)
        accuracy = (logits.detach().argmax(1) == labels).float().mean()
        return loss, {"accuracy": accuracy, "masked_fraction": selected.float().mean()}

    def forward(self, features: torch.Tensor, targets: torch.Tensor, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Feature-space masking (``mask_space=features``): BERT replacement of the online features."""
        selected, codes = self.plan(features.shape[0], features.shape[1], generator, features.device)
        return self.contrast(apply_bert_replacement(features, codes, generator), targets, selected)
