"""Build envs, agents and replay buffers from a composed config (plain keyword arguments inside)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

import gymnasium as gym
import torch

from agents.errors import UserError
from agents.replay import PixelReplay, StateReplay
from agents.sac import SACAgent, SACConfig
from representations.core.runtime import Runtime


def make_env_from_config(env_cfg: Mapping[str, Any], pixels: bool, seed: int) -> gym.Env:
    """One environment of the configured task (train and eval envs use different seeds)."""
    import envs

    return envs.make_env(
        env_cfg["name"], from_pixels=pixels, image_size=env_cfg["render_size"], frame_stack=env_cfg["frame_stack"],
        action_repeat=env_cfg["action_repeat"], camera_id=env_cfg["camera_id"], seed=seed,
        episode_length=env_cfg["episode_length"],
    )


def sac_config(agent_cfg: Mapping[str, Any], image_size: int) -> SACConfig:
    names = {f.name for f in fields(SACConfig)}
    kwargs = {k: v for k, v in agent_cfg.items() if k in names}
    lr = float(agent_cfg["lr"])
    return SACConfig(**kwargs, actor_lr=lr, critic_lr=lr, image_size=image_size)


def build_aux(names: list[str], aux_cfg: Mapping[str, Any], feature_dim: int) -> list[torch.nn.Module]:
    """Instantiate the named auxiliary objectives with their settings from ``aux_cfg.<name>``."""
    from agents.aux import AUX_REGISTRY

    objectives = []
    for name in names:
        if name not in AUX_REGISTRY:
            raise UserError(f"unknown aux objective {name!r}; available: {', '.join(sorted(AUX_REGISTRY))}")
        objectives.append(AUX_REGISTRY[name](dict((aux_cfg or {}).get(name, {}) or {}), feature_dim))
    return objectives


def build_agent(agent_cfg: Mapping[str, Any], env_cfg: Mapping[str, Any], obs_space: gym.Space, action_dim: int,
                runtime: Runtime, aux_cfg: Mapping[str, Any] | None = None) -> SACAgent:
    pixels = bool(agent_cfg["pixels"])
    image_size = int(env_cfg["image_size"])
    if pixels and image_size > env_cfg["render_size"]:
        raise UserError(f"crop size env.image_size={image_size} is larger than the render env.render_size="
                        f"{env_cfg['render_size']}")
    cfg = sac_config(agent_cfg, image_size)
    obs_shape = tuple(obs_space.shape)
    names = list(agent_cfg.get("aux") or [])
    if names and not pixels:
        raise UserError(f"aux objectives {names} need pixel observations (agent.pixels=true)")
    agent = SACAgent(obs_shape, action_dim, cfg, aux=build_aux(names, aux_cfg or {}, cfg.feature_dim),
                     device=runtime.torch_device, pixels=pixels, generator=runtime.generator("agent"),
                     autocast=runtime.autocast)
    if runtime.compile and pixels:
        agent.compile_encoders()
    return agent


def build_replay(obs_space: gym.Space, action_dim: int, frame_stack: int, capacity: int, pixels: bool,
                 runtime: Runtime, storage: str, seed: int) -> PixelReplay | StateReplay:
    if pixels:
        c, h, w = obs_space.shape
        store = runtime.torch_device if storage == "auto" else storage
        return PixelReplay(capacity, (c // frame_stack, h, w), frame_stack, action_dim, device=runtime.torch_device,
                           storage_device=store, seed=seed)
    return StateReplay(capacity, int(obs_space.shape[0]), action_dim, device=runtime.torch_device, seed=seed)
