"""The M-CURL reconstructor: a small transformer over a sequence of per-frame CNN features.

It is trained only by the auxiliary loss and never used to act, so it lives beside the encoder,
not inside it. Positions are fixed sinusoids (as in M-CURL), added once at the input.

The layer follows the official M-CURL code (teslacool/m-curl ``AttnLayer``): post-norm, one
attention head by default, an input projection to q/k/v and no output projection, a ReLU
feed-forward, and dropout only on each residual branch (attention-weight and ReLU dropout are 0).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .positions import sinusoidal_positions


class SequenceLayer(nn.Module):
    """x = LN(x + drop(attn(x))); x = LN(x + drop(fc2(relu(fc1(x))))) (``norm_first`` moves the LNs)."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float, attention_dropout: float = 0.0,
                 relu_dropout: float = 0.0, norm_first: bool = False) -> None:
        super().__init__()
        self.heads, self.norm_first = heads, norm_first
        self.in_proj = nn.Linear(dim, 3 * dim)
        self.attn_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, dim)
        self.final_norm = nn.LayerNorm(dim)
        self.dropout, self.attention_dropout, self.relu_dropout = dropout, attention_dropout, relu_dropout

    def attention(self, x: torch.Tensor, padding_mask: torch.Tensor | None) -> torch.Tensor:
        b, length, dim = x.shape
        q, k, v = self.in_proj(x).view(b, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        mask = None if padding_mask is None else ~padding_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                             dropout_p=self.attention_dropout if self.training else 0.0)
        return out.transpose(1, 2).reshape(b, length, dim)

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.attn_norm(x) if self.norm_first else x
        x = x + F.dropout(self.attention(h, padding_mask), self.dropout, self.training)
        x = x if self.norm_first else self.attn_norm(x)
        h = self.final_norm(x) if self.norm_first else x
        h = F.dropout(F.relu(self.fc1(h)), self.relu_dropout, self.training)
        x = x + F.dropout(self.fc2(h), self.dropout, self.training)
        return x if self.norm_first else self.final_norm(x)


class SequenceTransformer(nn.Module):
    """(B, L, in_dim) -> (B, L, in_dim): sinusoidal positions, then ``depth`` :class:`SequenceLayer`.

    Defaults are the official M-CURL ones: 2 layers, width 50, 1 head, feed-forward 100 (= 2 x width),
    residual dropout 0.1. When ``in_dim`` differs from ``dim`` a linear maps in and another maps back.
    ``padding_mask`` (B, L) bool, True = ignore that position as a key.
    """

    def __init__(
        self,
        dim: int = 50,
        depth: int = 2,
        heads: int = 1,
        ffn_dim: int = 100,
        dropout: float = 0.1,
        in_dim: int | None = None,
        norm_first: bool = False,
        attention_dropout: float = 0.0,
        relu_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"transformer width {dim} is not divisible by {heads} heads (try 1, 2 or 5 for 50)")
        if depth < 1:
            raise ValueError(f"SequenceTransformer needs depth >= 1, got {depth}")
        in_dim = dim if in_dim is None else in_dim
        self.dim, self.in_dim = dim, in_dim
        self.input_proj = nn.Linear(in_dim, dim) if in_dim != dim else nn.Identity()
        self.output_proj = nn.Linear(dim, in_dim) if in_dim != dim else nn.Identity()
        self.layers = nn.ModuleList(
            SequenceLayer(dim, heads, ffn_dim, dropout, attention_dropout, relu_dropout, norm_first)
            for _ in range(depth))

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.in_dim:
            raise ValueError(f"SequenceTransformer expects (B, L, {self.in_dim}), got {tuple(x.shape)}")
        h = self.input_proj(x)
        h = h + sinusoidal_positions(h.shape[1], self.dim, device=h.device, dtype=h.dtype)
        for layer in self.layers:
            h = layer(h, padding_mask)
        return self.output_proj(h)


def inverse_sqrt_warmup(step: int, warmup: int) -> float:
    """LR multiplier for ``LambdaLR``: linear ramp to 1 over ``warmup`` steps, then sqrt(warmup / step).

    Step 0 gives 1 / warmup rather than 0 so the first update is not wasted (the official code starts
    at 5e-4; both are negligible next to the ramp).
    """
    if warmup < 1:
        raise ValueError(f"warmup must be >= 1 step, got {warmup}")
    s = max(int(step), 1)
    return min(s / warmup, math.sqrt(warmup / s))


def constant_then_inverse_sqrt(step: int, warmup: int) -> float:
    """M-CURL's encoder annealing (``--encoder_annealling``): 1 for ``warmup`` steps, then sqrt(warmup / step)."""
    if warmup < 1:
        raise ValueError(f"warmup must be >= 1 step, got {warmup}")
    s = int(step)
    return 1.0 if s < warmup else math.sqrt(warmup / s)
