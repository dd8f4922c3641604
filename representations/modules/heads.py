"""Projection / prediction heads (MoCo v2, BYOL-style predictors, DINO / prototype heads)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

_NORMS = ("bn", "ln", "none", None)
_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU}


def _norm_layer(norm: str | None, dim: int) -> nn.Module:
    if norm == "bn":
        return nn.BatchNorm1d(dim)
    if norm == "ln":
        return nn.LayerNorm(dim)
    return nn.Identity()


class MLPHead(nn.Module):
    """``num_layers`` linears: in -> hidden -> ... -> out, with norm + activation between them.

    ``norm`` ("bn", "ln" or None) follows every hidden linear; ``last_norm`` adds one after the
    output linear (SimSiam's projector ends in BN; MoCo v2's does not). ``num_layers=1`` is a
    single linear map. Inputs may be (B, in_dim) or (B, L, in_dim) for "ln"/None norms.
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int,
        out_dim: int,
        num_layers: int = 2,
        norm: str | None = "bn",
        last_norm: bool = False,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"MLPHead needs num_layers >= 1, got {num_layers}")
        if norm not in _NORMS:
            raise ValueError(f"norm must be one of 'bn', 'ln', None; got {norm!r}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}; got {activation!r}")
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        layers: list[nn.Module] = []
        for i in range(num_layers):
            last = i == num_layers - 1
            # A bias straight before BatchNorm is cancelled by its mean subtraction: leave it out.
            followed_by_bn = norm == "bn" and (not last or last_norm)
            bias = not followed_by_bn
            layers.append(nn.Linear(dims[i], dims[i + 1], bias=bias))
            if not last:
                layers += [_norm_layer(norm, dims[i + 1]), _ACTIVATIONS[activation]()]
            elif last_norm:
                layers.append(_norm_layer(norm, dims[i + 1]))
        self.net = nn.Sequential(*layers)
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class DINOHead(nn.Module):
    """MLP -> L2-normalised bottleneck -> cosine logits against ``out_dim`` normalised prototypes.

    Normalising the prototype weights (DINO's ``norm_last_layer``) keeps the teacher's output scale
    fixed, which is what the centring/sharpening of the DINO loss assumes. The same head serves as
    the prototype layer of cluster-level contrast (CML).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        num_layers: int = 3,
        norm: str | None = None,
    ) -> None:
        super().__init__()
        self.mlp = MLPHead(in_dim, hidden_dim, bottleneck_dim, num_layers, norm=norm, activation="gelu")
        self.prototypes = nn.Parameter(torch.empty(out_dim, bottleneck_dim))
        nn.init.trunc_normal_(self.prototypes, std=0.02, a=-0.04, b=0.04)
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor, freeze_prototypes: bool = False) -> torch.Tensor:
        """Cosine logits; ``freeze_prototypes`` gives the prototypes a zero gradient (DINO's
        ``freeze_last_layer``: the first epoch trains everything but the last layer). Zero rather
        than no gradient, so DDP still sees every parameter used."""
        z = F.normalize(self.mlp(x), dim=-1)
        prototypes = self.prototypes.detach() + 0.0 * self.prototypes if freeze_prototypes else self.prototypes
        return z @ F.normalize(prototypes, dim=-1).t()
