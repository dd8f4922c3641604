"""Learning-rate schedules as pure functions of the optimiser step (so resume needs only the step)."""

from __future__ import annotations

import math

import torch

SCHEDULES = ("cosine", "constant")


def warmup_cosine(step: int, total_steps: int, base: float, warmup_steps: int = 0, final: float = 0.0) -> float:
    """Linear warm-up from base/warmup to ``base`` over ``warmup_steps``, then half-cosine to ``final``.

    Step s (0-based) of the warm-up uses base * (s + 1) / warmup_steps, so the first update already
    moves and the last warm-up step reaches ``base``; the cosine then reaches ``final`` at the last
    step ``total_steps - 1``.
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
    if step < warmup_steps:
        return base * (step + 1) / warmup_steps
    span = total_steps - 1 - warmup_steps
    if span <= 0:
        return base
    progress = min(max((step - warmup_steps) / span, 0.0), 1.0)
    return final + (base - final) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_constant(step: int, total_steps: int, base: float, warmup_steps: int = 0, final: float = 0.0) -> float:
    """Linear warm-up, then ``base`` for good (``final`` is ignored)."""
    del total_steps, final
    if step < warmup_steps:
        return base * (step + 1) / warmup_steps
    return base


def lr_at(schedule: str, step: int, total_steps: int, base: float, warmup_steps: int = 0,
          final: float = 0.0) -> float:
    """The learning rate of ``step`` under a named schedule."""
    if schedule == "cosine":
        return warmup_cosine(step, total_steps, base, warmup_steps, final)
    if schedule == "constant":
        return warmup_constant(step, total_steps, base, warmup_steps, final)
    raise ValueError(f"unknown lr schedule {schedule!r}; use one of {', '.join(SCHEDULES)}")


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every param group's lr (groups may carry an ``lr_scale`` factor)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def set_weight_decay(optimizer: torch.optim.Optimizer, weight_decay: float) -> None:
    """Set the weight decay of the decayed param groups (``decayed``; 1-D exclusions stay at 0)."""
    for group in optimizer.param_groups:
        if group.get("decayed", False):
            group["weight_decay"] = weight_decay
