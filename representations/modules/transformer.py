"""Pre-norm transformer blocks shared by the ViT encoders.

Attention uses ``scaled_dot_product_attention`` (fused kernels on GPU) unless the caller asks for
the attention weights, which attention-guided masking needs from the last block only; then it falls
back to an explicit softmax for that one call.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class Attention(nn.Module):
    """Multi-head self-attention; ``attn_mask`` is bool (True = may attend) broadcastable to (B, h, L, L)."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.head_dim = dim // heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, length, dim = x.shape
        qkv = self.qkv(x).reshape(batch, length, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        weights = None
        if need_weights:
            scores = (q @ k.transpose(-2, -1)) * self.head_dim**-0.5
            if attn_mask is not None:
                scores = scores.masked_fill(~attn_mask, float("-inf"))
            weights = scores.softmax(dim=-1)
            out = weights @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        out = out.transpose(1, 2).reshape(batch, length, dim)
        return self.proj(out), weights


class MLP(nn.Module):
    """Linear -> GELU -> Linear, the transformer feed-forward."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class DropPath(nn.Module):
    """Stochastic depth: in training, a residual branch is zeroed for a whole row of dim 0 with
    probability ``rate`` and the kept rows are scaled by 1 / (1 - rate); identity in eval mode."""

    def __init__(self, rate: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"drop-path rate must be in [0, 1), got {rate}")
        self.rate = float(rate)

    def scale(self, rows: int, like: torch.Tensor) -> torch.Tensor | None:
        """(rows,) factors, 0 or 1 / (1 - rate), for branches that share one draw; None when inactive."""
        if self.rate == 0.0 or not self.training:
            return None
        keep = 1.0 - self.rate
        return like.new_empty(rows).bernoulli_(keep) / keep

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return scale_rows(x, self.scale(x.shape[0], x))

    def extra_repr(self) -> str:
        return f"rate={self.rate}"


def scale_rows(x: torch.Tensor, factors: torch.Tensor | None) -> torch.Tensor:
    """x with row i of dim 0 multiplied by factors[i] (x itself when there are none)."""
    return x if factors is None else x * factors.reshape(-1, *(1,) * (x.dim() - 1))


class Block(nn.Module):
    """x + attn(LN(x)), then x + mlp(LN(x)) (pre-norm, as in ViT / MAE / DINO); ``drop_path`` is the
    stochastic-depth rate of both residual branches."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLP(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(
        self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, weights = self.attn(self.norm1(x), attn_mask, need_weights)
        x = x + self.drop_path(attended)
        return x + self.drop_path(self.mlp(self.norm2(x))), weights


def drop_path_rates(rate: float, depth: int) -> list[float]:
    """Per-block stochastic-depth rates rising linearly from 0 to ``rate`` (the timm / TimeSformer rule)."""
    return torch.linspace(0.0, float(rate), depth).tolist() if depth else []


def init_transformer_weights(module: nn.Module) -> None:
    """Truncated-normal(0.02) linears with zero bias, unit LayerNorms (the ViT / MAE recipe)."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02, a=-0.04, b=0.04)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
