"""Exponential moving averages of parameters (target networks, momentum encoders)."""

from __future__ import annotations

import math

import torch
from torch import nn


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """target <- (1 - tau) * target + tau * online, for parameters; buffers are copied.

    ``tau`` is the *update* rate (SAC convention: tau=0.01 moves 1% toward the online weights);
    a MoCo momentum m corresponds to tau = 1 - m.
    """
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"EMA rate tau must be in [0, 1], got {tau}")
    t_params = list(target.parameters())
    o_params = list(online.parameters())
    if len(t_params) != len(o_params):
        raise ValueError("target and online modules have different parameter lists")
    if t_params:
        torch._foreach_lerp_(t_params, o_params, tau)
    for tb, ob in zip(target.buffers(), online.buffers()):
        tb.copy_(ob)


def cosine_momentum(step: int, total_steps: int, base: float = 0.996, final: float = 1.0) -> float:
    """Momentum schedule base -> final along a half cosine (BYOL / DINO teacher)."""
    if total_steps <= 0:
        return final
    progress = min(max(step / total_steps, 0.0), 1.0)
    return final - (final - base) * (math.cos(math.pi * progress) + 1.0) / 2.0
