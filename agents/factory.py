"""Build envs, agents and replay buffers from a composed config (plain keyword arguments inside)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

import gymnasium as gym
import torch

from agents.errors import UserError, as_user_error
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


def aux_settings(name: str, aux_cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    """``aux_cfg.<name>`` (composed from ``configs/aux/<name>.yaml``), or {} for class defaults."""
    if aux_cfg and aux_cfg.get(name) is not None:
        return dict(aux_cfg[name])
    return {}


def aux_class(name: str, settings: Mapping[str, Any]) -> type:
    """The class named by ``_target_`` ("package.module.Class"), or a built-in objective."""
    from agents.aux import BUILTIN

    target = settings.get("_target_")
    if not target:
        if name not in BUILTIN:
            raise UserError(f"unknown aux objective {name!r}: no configs/aux/{name}.yaml with a _target_; "
                            f"built in: {', '.join(sorted(BUILTIN))}")
        return BUILTIN[name]
    module_name, _, cls_name = str(target).rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), cls_name)
    except (ImportError, AttributeError, ValueError) as err:
        raise UserError(f"aux objective {name!r}: cannot import _target_ {target!r} ({err})") from err


def build_aux(names: list[str], aux_cfg: Mapping[str, Any] | None, feature_dim: int, action_repeat: int = 1,
              num_conv_layers: int = 4) -> list[torch.nn.Module]:
    """Instantiate the named auxiliary objectives with their settings from ``aux_cfg.<name>``."""
    objectives = []
    for name in names:
        settings = aux_settings(name, aux_cfg)
        cls = aux_class(name, settings)
        # the constructor validates the user's aux_cfg.<name> settings: its ValueError is bad input
        with as_user_error(ValueError, prefix=f"aux_cfg.{name}: "):
            objectives.append(cls(settings, feature_dim=feature_dim, action_repeat=action_repeat,
                                  num_conv_layers=num_conv_layers))
    return objectives


def build_agent(agent_cfg: Mapping[str, Any], env_cfg: Mapping[str, Any], obs_space: gym.Space, action_dim: int,
                runtime: Runtime, aux_cfg: Mapping[str, Any] | None = None, replay: Any = None,
                batch_size: int = 512, generator: torch.Generator | None = None) -> SACAgent:
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
    aux = build_aux(names, aux_cfg, cfg.feature_dim, int(env_cfg.get("action_repeat") or 1), cfg.num_conv_layers)
    with as_user_error(ValueError, prefix="agent: "):  # the constructor validates agent.* settings
        agent = SACAgent(obs_shape, action_dim, cfg, aux=aux, device=runtime.torch_device, pixels=pixels,
                         generator=generator if generator is not None else runtime.generator("agent"),
                         autocast=runtime.autocast, replay=replay, batch_size=batch_size)
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
