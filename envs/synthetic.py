"""A cheap pixel task with no MuJoCo, so agent tests and learning smoke runs take CPU seconds.

``SyntheticReach``: a dot in the 2-D box [-1, 1]^2 moves by ``action * speed`` per simulator frame
and must reach a target drawn at a random place each episode. The reward per frame is
``exp(-sharpness * distance)`` in (0, 1], summed over repeats like DMC rewards, so the best return
is close to ``episode_length``. Frames are drawn with numpy: the target on the red channel, the
agent on green/blue, so a small conv net sees both positions directly.
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.frames import FrameStack
from envs.seeding import ConstructionSeed
from envs.validate import MIN_IMAGE_SIZE, check_env_args

_BACKGROUND = np.array([24, 24, 24], dtype=np.uint8)
_TARGET_COLOUR = np.array([255, 60, 40], dtype=np.uint8)
_AGENT_COLOUR = np.array([40, 220, 255], dtype=np.uint8)


class SyntheticReach(gym.Env[np.ndarray, np.ndarray]):
    """Move a dot onto a randomly placed target; pixels or states, same conventions as ``make_dmc``.

    ``camera_id`` is accepted and ignored so that one config can build either kind of env.
    """

    DEFAULT_ACTION_REPEAT = 2
    SPEED = 0.06  # box units per simulator frame at |action| = 1
    SHARPNESS = 2.5  # reward = exp(-SHARPNESS * distance)
    SPAWN = 0.8  # agent and target start uniformly in [-SPAWN, SPAWN]^2
    TARGET_RADIUS = 0.16
    AGENT_RADIUS = 0.1

    def __init__(
        self,
        *,
        from_pixels: bool = True,
        image_size: int = 84,
        frame_stack: int = 3,
        action_repeat: int | None = None,
        camera_id: int | None = None,
        seed: int | None = None,
        episode_length: int = 100,
        render_mode: str | None = None,
        min_image_size: int = MIN_IMAGE_SIZE,
    ) -> None:
        del camera_id
        repeat = self.DEFAULT_ACTION_REPEAT if action_repeat is None else int(action_repeat)
        check_env_args(
            image_size=image_size,
            frame_stack=frame_stack,
            action_repeat=repeat,
            episode_length=episode_length,
            min_image_size=min_image_size,
            from_pixels=from_pixels,
        )
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.name = "synthetic-reach"
        self.from_pixels = bool(from_pixels)
        self.image_size = int(image_size)
        self.frame_stack = int(frame_stack)
        self.action_repeat = repeat
        self.episode_length = int(episode_length)
        self.render_mode = render_mode
        self.metadata = {"render_modes": ["rgb_array"], "render_fps": 20}
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self._stack: FrameStack | None = None
        if self.from_pixels:
            self._stack = FrameStack(self.frame_stack, 3, self.image_size, self.image_size)
            self.observation_space = spaces.Box(0, 255, shape=self._stack.obs_shape, dtype=np.uint8)
        else:
            self.observation_space = spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)
        # Pixel-centre coordinates in box units; rows run top (y = +1) to bottom (y = -1).
        centres = (np.arange(self.image_size, dtype=np.float32) + 0.5) * (2.0 / self.image_size) - 1.0
        self._xs = centres
        self._ys = centres[::-1].copy()
        self._construction_seed = ConstructionSeed(seed)
        self._agent = np.zeros(2)
        self._target = np.zeros(2)
        self._env_steps = 0
        self._episode_over = True

    # -- task -----------------------------------------------------------------------------------
    def distance(self) -> float:
        """Euclidean distance from the agent to the target."""
        return float(np.hypot(*(self._target - self._agent)))

    def oracle_action(self) -> np.ndarray:
        """The action that moves straight toward the target, landing on it rather than overshooting."""
        per_step = self.SPEED * self.action_repeat
        return np.clip((self._target - self._agent) / per_step, -1.0, 1.0).astype(np.float32)

    # -- drawing --------------------------------------------------------------------------------
    def _draw_disc(self, frame: np.ndarray, centre: np.ndarray, radius: float, colour: np.ndarray) -> None:
        inside = ((self._ys - centre[1]) ** 2)[:, None] + ((self._xs - centre[0]) ** 2)[None, :] <= radius**2
        for channel in range(3):
            frame[channel][inside] = colour[channel]

    def _draw(self, frame: np.ndarray) -> None:
        """Draw the current state into a (3, H, W) uint8 array in place."""
        frame[:] = _BACKGROUND[:, None, None]
        self._draw_disc(frame, self._target, self.TARGET_RADIUS, _TARGET_COLOUR)
        self._draw_disc(frame, self._agent, self.AGENT_RADIUS, _AGENT_COLOUR)

    def _observation(self) -> np.ndarray:
        if self._stack is not None:
            return self._stack.observation()
        return np.concatenate([self._agent, self._target]).astype(np.float32)

    def _info(self) -> dict[str, Any]:
        return {"env_steps": self._env_steps, "action_repeat": self.action_repeat}

    # -- gymnasium API --------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """New random agent and target positions; a seed here or at construction fixes them."""
        seed = self._construction_seed.take(seed)
        super().reset(seed=seed)
        self._agent = self.np_random.uniform(-self.SPAWN, self.SPAWN, size=2)
        self._target = self.np_random.uniform(-self.SPAWN, self.SPAWN, size=2)
        self._env_steps = 0
        self._episode_over = False
        if self._stack is not None:
            self._draw(self._stack.next_slot())
            self._stack.fill_with_newest()
        return self._observation(), self._info()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        """Move for ``action_repeat`` frames, summing the per-frame closeness reward."""
        if self._episode_over:
            raise RuntimeError(f"{self.name}: call reset() before step() (the episode is over or not started)")
        velocity = np.clip(np.asarray(action, dtype=np.float64).reshape(2), -1.0, 1.0) * self.SPEED
        reward = 0.0
        for _ in range(min(self.action_repeat, self.episode_length - self._env_steps)):
            self._agent = np.clip(self._agent + velocity, -1.0, 1.0)
            self._env_steps += 1
            reward += float(np.exp(-self.SHARPNESS * self.distance()))
        truncated = self._env_steps >= self.episode_length
        self._episode_over = truncated
        if self._stack is not None:
            self._draw(self._stack.next_slot())
        return self._observation(), reward, False, truncated, self._info()

    def render_view(self, size: int = 256) -> np.ndarray:
        """A human-sized ``(size, size, 3)`` frame of the current state (nearest-neighbour upscale), for videos."""
        from PIL import Image

        frame = np.empty((3, self.image_size, self.image_size), dtype=np.uint8)
        self._draw(frame)
        image = Image.fromarray(np.ascontiguousarray(frame.transpose(1, 2, 0)))
        return np.asarray(image.resize((size, size), Image.NEAREST))

    def render(self) -> np.ndarray | None:
        """``(H, W, 3)`` uint8 frame of the current state."""
        if self.render_mode is None:
            gym.logger.warn("render() was called with render_mode=None; pass render_mode='rgb_array'")
            return None
        frame = np.empty((3, self.image_size, self.image_size), dtype=np.uint8)
        self._draw(frame)
        return np.ascontiguousarray(frame.transpose(1, 2, 0))
