"""One entry point for every env name: registered factories (the synthetic tasks) or dm_control."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym

from envs.dmc import curl_action_repeat, dmc_tasks, make_dmc
from envs.synthetic import SyntheticReach
from representations.core.errors import UserError

SYNTHETIC_PREFIX = "synthetic-"

_FACTORIES: dict[str, Callable[..., gym.Env]] = {"synthetic-reach": SyntheticReach}


def register_env(name: str, factory: Callable[..., gym.Env]) -> None:
    """Make ``make_env(name, **kwargs)`` call ``factory(**kwargs)`` (same kwargs as ``make_dmc``)."""
    _FACTORIES[name] = factory


def synthetic_tasks() -> list[str]:
    """Names served by registered factories, without importing dm_control."""
    return sorted(_FACTORIES)


def available_tasks() -> list[str]:
    """Every name ``make_env`` accepts: all dm_control suite tasks, then the registered ones."""
    return dmc_tasks() + synthetic_tasks()


def default_action_repeat(name: str) -> int:
    """CURL's action repeat for a DMC task; a registered factory's ``DEFAULT_ACTION_REPEAT`` (else 1)."""
    if name in _FACTORIES:
        return int(getattr(_FACTORIES[name], "DEFAULT_ACTION_REPEAT", 1))
    return curl_action_repeat(name)


def make_env(name: str, **kwargs: Any) -> gym.Env:
    """Build ``name``: a registered factory (``synthetic-*``) or ``make_dmc`` for ``domain-task``."""
    if name in _FACTORIES:
        return _FACTORIES[name](**kwargs)
    if name.startswith(SYNTHETIC_PREFIX):
        raise UserError(f"unknown synthetic task {name!r}; available: {', '.join(synthetic_tasks())}")
    return make_dmc(name, **kwargs)
