"""gymnasium ids for every task: ``gym.make("mcrl/cheetah-run-v0", from_pixels=True, image_size=84)``.

``import envs`` registers the tasks that have a ``configs/env`` YAML plus the synthetic ones, without
importing dm_control (the entry point is a string, resolved on ``gym.make``);
``register_gymnasium(all_dmc=True)`` adds every dm_control suite task. Keyword arguments of
``gym.make`` are those of ``envs.make_env`` (``from_pixels``, ``image_size``, ``frame_stack``,
``action_repeat``, ...). The env ends its own episodes, so the spec sets no extra time limit.
"""

from __future__ import annotations

from importlib import resources

import gymnasium as gym

NAMESPACE = "mcrl"


def gym_id(task: str) -> str:
    return f"{NAMESPACE}/{task}-v0"


def _yaml_tasks() -> list[str]:
    folder = resources.files("configs") / "env"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml") and p.name != "dmc.yaml")


def register_gymnasium(all_dmc: bool = False) -> list[str]:
    """Register ``mcrl/<task>-v0`` ids (idempotent); returns the ids registered by this call."""
    from envs.registry import available_tasks, synthetic_tasks

    tasks = available_tasks() if all_dmc else sorted(set(_yaml_tasks()) | set(synthetic_tasks()))
    added = []
    for task in tasks:
        if gym_id(task) in gym.registry:
            continue
        gym.register(id=gym_id(task), entry_point="envs.registry:make_env", kwargs={"name": task},
                     disable_env_checker=True)
        added.append(gym_id(task))
    return added
