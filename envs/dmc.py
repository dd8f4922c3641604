"""DeepMind Control suite tasks as gymnasium 1.x envs (pixels or states), CURL conventions.

dm_control is imported lazily (``import envs`` stays cheap) and ``MUJOCO_GL`` defaults to ``egl``
before that import, because dm_control picks its OpenGL backend once, at import time.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.frames import FrameStack
from envs.seeding import ConstructionSeed
from envs.validate import MIN_IMAGE_SIZE, check_env_args
from representations.core.errors import UserError

os.environ.setdefault("MUJOCO_GL", "egl")

EPISODE_INFO_KEYS = ("env_steps", "action_repeat")
"""Keys every env in this package puts in ``info`` (vector envs need the same keys everywhere)."""


def renderer_error(err: BaseException) -> RuntimeError:
    """One-sentence error for an OpenGL backend that cannot start, instead of a raw GL traceback."""
    first_line = (str(err).strip().splitlines() or [""])[0][:200]
    backend = os.environ.get("MUJOCO_GL", "<unset>")
    return RuntimeError(
        f"MuJoCo could not start its OpenGL renderer with MUJOCO_GL={backend} "
        f"({type(err).__name__}: {first_line}); install libegl1 for MUJOCO_GL=egl, or install "
        "libosmesa6 and set MUJOCO_GL=osmesa, or use from_pixels=False for state observations."
    )


def _raised_by_renderer(err: BaseException) -> bool:
    """True when the traceback passes through dm_control's GL backends or PyOpenGL."""
    tb = err.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if "OpenGL" in filename or f"{os.sep}_render{os.sep}" in filename:
            return True
        tb = tb.tb_next
    return False


def _import_suite() -> ModuleType:
    """Import ``dm_control.suite``; a GL backend that fails at import time becomes ``renderer_error``."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        from dm_control import suite
    except Exception as err:
        if isinstance(err, ModuleNotFoundError) and (err.name or "").startswith("dm_control"):
            raise ImportError("DeepMind Control is not installed: pip install 'dm-control>=1.0.50'") from None
        if _raised_by_renderer(err):
            raise renderer_error(err) from None
        raise
    return suite


def dmc_tasks() -> list[str]:
    """All dm_control suite tasks as sorted ``domain-task`` names."""
    return sorted(f"{domain}-{task}" for domain, task in _import_suite().ALL_TASKS)


def curl_action_repeat(name: str) -> int:
    """CURL's action repeat: 2 for finger-spin and walker-walk, 8 for cartpole-*, 4 otherwise."""
    if name in ("finger-spin", "walker-walk"):
        return 2
    if name.startswith("cartpole-"):
        return 8
    return 4


def _split_name(name: str) -> tuple[str, str]:
    """``'ball_in_cup-catch'`` -> ``('ball_in_cup', 'catch')``; unknown names list the valid ones."""
    domain, sep, task = str(name).partition("-")
    if not sep or (domain, task) not in set(_import_suite().ALL_TASKS):
        raise UserError(f"unknown DeepMind Control task {name!r}; available tasks: {', '.join(dmc_tasks())}")
    return domain, task


class DMCEnv(gym.Env[np.ndarray, np.ndarray]):
    """One dm_control task with action repeat, a frame stack and gymnasium's time-limit semantics.

    The time limit is ours (``episode_length`` simulator frames, ending with ``truncated=True``);
    dm_control's own limit is disabled so that both agree on when an episode ends. Pixels are
    rendered once per agent step, after the last repeated physics step.
    """

    def __init__(
        self,
        domain: str,
        task: str,
        *,
        from_pixels: bool = True,
        image_size: int = 84,
        frame_stack: int = 3,
        action_repeat: int = 4,
        camera_id: int = 0,
        seed: int | None = None,
        episode_length: int = 1000,
        render_mode: str | None = None,
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        suite = _import_suite()
        self.name = f"{domain}-{task}"
        self.from_pixels = bool(from_pixels)
        self.image_size = int(image_size)
        self.frame_stack = int(frame_stack)
        self.action_repeat = int(action_repeat)
        self.camera_id = int(camera_id)
        self.episode_length = int(episode_length)
        self.render_mode = render_mode
        self._dm_env = suite.load(domain, task, task_kwargs={"time_limit": float("inf")})
        self._physics = self._dm_env.physics
        num_cameras = int(self._physics.model.ncam)
        if not -1 <= self.camera_id < num_cameras:
            # checked here so that the first render only fails for renderer set-up reasons
            raise UserError(f"camera_id={camera_id} is out of range for {self.name}: -1..{num_cameras - 1}")
        self._construction_seed = ConstructionSeed(seed)
        self._env_steps = 0
        self._episode_over = True
        self._renderer_started = False
        self._stack_ready = False
        self._closed = False

        spec = self._dm_env.action_spec()
        low = np.broadcast_to(np.asarray(spec.minimum, dtype=np.float64), spec.shape)
        high = np.broadcast_to(np.asarray(spec.maximum, dtype=np.float64), spec.shape)
        self._act_scale = (high - low) / 2.0
        self._act_offset = (high + low) / 2.0
        self.action_space = spaces.Box(-1.0, 1.0, shape=spec.shape, dtype=np.float32)

        self._stack: FrameStack | None = None
        if self.from_pixels:
            self._stack = FrameStack(self.frame_stack, 3, self.image_size, self.image_size)
            self.observation_space = spaces.Box(0, 255, shape=self._stack.obs_shape, dtype=np.uint8)
        else:
            size = sum(int(np.prod(s.shape)) for s in self._dm_env.observation_spec().values())
            self.observation_space = spaces.Box(-np.inf, np.inf, shape=(size,), dtype=np.float32)
        agent_dt = self._dm_env.control_timestep() * self.action_repeat
        self.metadata = {"render_modes": ["rgb_array"], "render_fps": max(1, round(1.0 / agent_dt))}

    @property
    def physics(self) -> Any:
        """The dm_control ``Physics`` (for benchmarks, saliency tools and tests)."""
        return self._physics

    @property
    def dm_env(self) -> Any:
        """The wrapped ``dm_control.rl.control.Environment``."""
        return self._dm_env

    def _render_hwc(self) -> np.ndarray:
        """One ``(H, W, 3)`` frame; a failure on the very first render is a renderer set-up problem."""
        size = self.image_size
        if self._renderer_started:
            return self._physics.render(size, size, camera_id=self.camera_id)
        try:
            frame = self._physics.render(size, size, camera_id=self.camera_id)
        except Exception as err:
            raise renderer_error(err) from None
        self._renderer_started = True
        return frame

    def _push_frame(self) -> None:
        assert self._stack is not None
        np.copyto(self._stack.next_slot(), self._render_hwc().transpose(2, 0, 1))

    def _observation(self, dm_obs: dict[str, Any]) -> np.ndarray:
        if self._stack is not None:
            return self._stack.observation()
        return np.concatenate([np.ravel(v) for v in dm_obs.values()], dtype=np.float32)

    def _info(self) -> dict[str, Any]:
        return {"env_steps": self._env_steps, "action_repeat": self.action_repeat}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode; a seed (here or given to ``make_dmc``) reseeds the task's random state."""
        seed = self._construction_seed.take(seed)
        super().reset(seed=seed)
        if seed is not None:
            self._dm_env.task.random.seed(int(seed) % 2**32)
        time_step = self._dm_env.reset()
        self._env_steps = 0
        self._episode_over = False
        if self._stack is not None:
            self._push_frame()
            self._stack.fill_with_newest()
            self._stack_ready = True
        return self._observation(time_step.observation), self._info()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        """Repeat ``action`` (in [-1, 1]) for ``action_repeat`` frames, summing rewards, then observe."""
        if self._episode_over:
            raise RuntimeError(f"{self.name}: call reset() before step() (the episode is over or not started)")
        dm_action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0) * self._act_scale + self._act_offset
        reward = 0.0
        terminated = dm_last = False
        for _ in range(min(self.action_repeat, self.episode_length - self._env_steps)):
            time_step = self._dm_env.step(dm_action)
            self._env_steps += 1
            if time_step.reward is not None:
                reward += float(time_step.reward)
            if time_step.last():
                dm_last = True
                terminated = time_step.discount == 0.0
                break
        truncated = not terminated and (dm_last or self._env_steps >= self.episode_length)
        self._episode_over = terminated or truncated
        if self._stack is not None:
            self._push_frame()
        return self._observation(time_step.observation), reward, bool(terminated), bool(truncated), self._info()

    def render_view(self, size: int = 256) -> np.ndarray:
        """A human-sized ``(size, size, 3)`` frame of the current state, for videos (not what the agent sees)."""
        return np.asarray(self._physics.render(size, size, camera_id=self.camera_id))

    def render(self) -> np.ndarray | None:
        """``(H, W, 3)`` uint8 frame of the current state (the newest stacked frame when available)."""
        if self.render_mode is None:
            gym.logger.warn("render() was called with render_mode=None; pass render_mode='rgb_array'")
            return None
        if self._stack is not None and self._stack_ready:
            return np.ascontiguousarray(self._stack.newest().transpose(1, 2, 0))
        return np.array(self._render_hwc())

    def close(self) -> None:
        """Free the GL contexts and MuJoCo data; safe to call twice."""
        if not self._closed:
            self._closed = True
            self._physics.free()
        super().close()


def make_dmc(
    name: str,
    *,
    from_pixels: bool = True,
    image_size: int = 84,
    frame_stack: int = 3,
    action_repeat: int | None = None,
    camera_id: int | None = None,
    seed: int | None = None,
    episode_length: int = 1000,
    render_mode: str | None = None,
    min_image_size: int = MIN_IMAGE_SIZE,
) -> DMCEnv:
    """Build a dm_control task (``'cheetah-run'``, ``'ball_in_cup-catch'``, ...) as a gymnasium env.

    ``action_repeat=None`` takes CURL's per-task value; ``camera_id=None`` is 2 for quadruped, else 0;
    ``episode_length`` counts simulator frames (env steps). ``min_image_size`` lets a caller that
    crops (e.g. to 84) reject renders smaller than the crop up front.
    """
    repeat = curl_action_repeat(name) if action_repeat is None else int(action_repeat)
    check_env_args(
        image_size=image_size,
        frame_stack=frame_stack,
        action_repeat=repeat,
        episode_length=episode_length,
        min_image_size=min_image_size,
        from_pixels=from_pixels,
    )
    domain, task = _split_name(name)
    if camera_id is None:
        camera_id = 2 if domain == "quadruped" else 0
    return DMCEnv(
        domain,
        task,
        from_pixels=from_pixels,
        image_size=image_size,
        frame_stack=frame_stack,
        action_repeat=repeat,
        camera_id=camera_id,
        seed=seed,
        episode_length=episode_length,
        render_mode=render_mode,
    )
