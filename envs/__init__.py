"""DeepMind Control as gymnasium envs (pixels or states) plus cheap synthetic pixel tasks.

Importing this package does not import dm_control; ``make_dmc`` does, on first use.
"""

from envs.dmc import DMCEnv, make_dmc, renderer_error
from envs.frames import FrameStack
from envs.gym_ids import gym_id, register_gymnasium
from envs.registry import available_tasks, default_action_repeat, make_env, register_env, synthetic_tasks
from envs.synthetic import SyntheticReach
from envs.validate import MIN_IMAGE_SIZE

__all__ = [
    "DMCEnv",
    "FrameStack",
    "MIN_IMAGE_SIZE",
    "SyntheticReach",
    "available_tasks",
    "default_action_repeat",
    "make_dmc",
    "make_env",
    "register_env",
    "renderer_error",
    "gym_id",
    "register_gymnasium",
    "synthetic_tasks",
]

register_gymnasium()
