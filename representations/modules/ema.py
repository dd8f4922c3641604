"""Exponential moving averages of parameters (target networks, momentum encoders)."""

from __future__ import annotations

import copy
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


def linear_momentum(step: int, total_steps: int, base: float = 0.996, final: float = 1.0) -> float:
    """Momentum schedule base -> final along a straight line, constant after ``total_steps``."""
    if total_steps <= 0:
        return final
    progress = min(max(step / total_steps, 0.0), 1.0)
    return base + (final - base) * progress


_SCHEDULES = {
    "constant": lambda step, total, base, final: base,
    "linear": linear_momentum,
    "cosine": cosine_momentum,
}


class EMA:
    """A frozen copy of ``online`` that follows it by momentum: target <- m * target + (1 - m) * online.

    ``schedule`` ("constant", "linear", "cosine") moves m from ``base`` to ``final`` over
    ``total_steps`` calls of ``update(step)``; a DINO / M2CRL teacher is cosine 0.996 -> 1, a CURL
    key encoder is constant 0.95 (tau 0.05). The target starts as an exact copy and never receives
    gradients; keep ``ema.target`` in checkpoints like any other module.
    """

    def __init__(
        self,
        online: nn.Module,
        base: float = 0.996,
        final: float | None = None,
        total_steps: int = 0,
        schedule: str = "constant",
    ) -> None:
        if schedule not in _SCHEDULES:
            raise ValueError(f"EMA schedule must be one of {sorted(_SCHEDULES)}, got {schedule!r}")
        final = base if final is None else final
        for name, value in (("base", base), ("final", final)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"EMA {name} momentum must be in [0, 1], got {value}")
        self.online = online
        self.target = copy.deepcopy(online).requires_grad_(False)
        self.base, self.final, self.total_steps, self.schedule = base, final, total_steps, schedule

    def momentum(self, step: int) -> float:
        """The momentum m used at ``step``."""
        return float(_SCHEDULES[self.schedule](step, self.total_steps, self.base, self.final))

    def update(self, step: int = 0) -> float:
        """Move the target toward the online weights; returns the momentum used (for logging)."""
        m = self.momentum(step)
        ema_update(self.target, self.online, 1.0 - m)
        return m
