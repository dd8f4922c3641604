"""A preallocated frame stack, so pixel envs never rebuild stacks from Python lists."""

from __future__ import annotations

import numpy as np


class FrameStack:
    """Ring buffer of the last ``num_frames`` channels-first uint8 frames.

    Frames are written in place (``next_slot`` hands out the slot to fill), and ``observation``
    gathers them oldest -> newest into one fresh ``(num_frames * C, H, W)`` array: exactly one copy
    per observation, which callers may keep (replay buffers do) without it changing later.
    """

    def __init__(self, num_frames: int, channels: int, height: int, width: int) -> None:
        if num_frames < 1:
            raise ValueError(f"frame_stack must be >= 1, got {num_frames}")
        self.num_frames = num_frames
        self._frames = np.zeros((num_frames, channels, height, width), dtype=np.uint8)
        self._newest = num_frames - 1
        # One precomputed oldest -> newest index order per possible position of the newest frame.
        self._orders = [
            np.array([(newest + 1 + i) % num_frames for i in range(num_frames)], dtype=np.intp)
            for newest in range(num_frames)
        ]
        self._obs_shape = (num_frames * channels, height, width)

    @property
    def obs_shape(self) -> tuple[int, int, int]:
        return self._obs_shape

    def next_slot(self) -> np.ndarray:
        """Advance the ring and return the (C, H, W) view to write the newest frame into."""
        self._newest = (self._newest + 1) % self.num_frames
        return self._frames[self._newest]

    def newest(self) -> np.ndarray:
        """The newest frame as a (C, H, W) view (read-only use)."""
        return self._frames[self._newest]

    def fill_with_newest(self) -> None:
        """Copy the newest frame into every slot: the stack at reset is the first frame repeated."""
        self._frames[:] = self._frames[self._newest]

    def observation(self) -> np.ndarray:
        """A fresh (num_frames * C, H, W) uint8 array, frames ordered oldest -> newest."""
        return self._frames.take(self._orders[self._newest], axis=0).reshape(self._obs_shape)
