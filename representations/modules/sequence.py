"""The M-CURL reconstructor: a small transformer over a sequence of per-frame CNN features.

It is trained only by the auxiliary loss and never used to act, so it lives beside the encoder,
not inside it. Positions are fixed sinusoids (as in M-CURL), added once at the input.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .positions import sinusoidal_positions


class SequenceTransformer(nn.Module):
    """(B, L, in_dim) -> (B, L, in_dim): sinusoidal positions, then ``depth`` encoder layers.

    Defaults follow M-CURL: 2 layers, width 50, feed-forward 100, post-norm (BERT) layers. When
    ``in_dim`` differs from ``dim`` a linear maps in and another maps back out.
    ``padding_mask`` (B, L) bool, True = ignore that position as a key.
    """

    def __init__(
        self,
        dim: int = 50,
        depth: int = 2,
        heads: int = 2,
        ffn_dim: int = 100,
        dropout: float = 0.1,
        in_dim: int | None = None,
        norm_first: bool = False,
    ) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"transformer width {dim} is not divisible by {heads} heads (try 2 or 5 for 50)")
        if depth < 1:
            raise ValueError(f"SequenceTransformer needs depth >= 1, got {depth}")
        in_dim = dim if in_dim is None else in_dim
        self.dim, self.in_dim = dim, in_dim
        self.input_proj = nn.Linear(in_dim, dim) if in_dim != dim else nn.Identity()
        self.output_proj = nn.Linear(dim, in_dim) if in_dim != dim else nn.Identity()
        layer = nn.TransformerEncoderLayer(
            dim, heads, dim_feedforward=ffn_dim, dropout=dropout, activation="gelu",
            batch_first=True, norm_first=norm_first,
        )
        self.layers = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.in_dim:
            raise ValueError(f"SequenceTransformer expects (B, L, {self.in_dim}), got {tuple(x.shape)}")
        h = self.input_proj(x)
        h = h + sinusoidal_positions(h.shape[1], self.dim, device=h.device, dtype=h.dtype)
        h = self.layers(h, src_key_padding_mask=padding_mask)
        return self.output_proj(h)


def inverse_sqrt_warmup(step: int, warmup: int) -> float:
    """LR multiplier for ``LambdaLR``: linear ramp to 1 over ``warmup`` steps, then sqrt(warmup / step).

    Step 0 gives 1 / warmup rather than 0 so the first update is not wasted.
    """
    if warmup < 1:
        raise ValueError(f"warmup must be >= 1 step, got {warmup}")
    s = max(int(step), 1)
    return min(s / warmup, math.sqrt(warmup / s))
