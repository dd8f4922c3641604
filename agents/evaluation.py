"""Deterministic-policy evaluation episodes, shared by the training loop and ``mcrl-eval``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import gymnasium as gym
import numpy as np

from agents.sac import SACAgent
from representations.core.atomic import atomic_path


def run_episodes(agent: SACAgent, env: gym.Env, seeds: Sequence[int],
                 video_path: Path | None = None, on_episode: Callable[[int], None] | None = None) -> np.ndarray:
    """Returns per-episode returns (one episode per reset seed); optionally writes the first as a video
    (``.mp4`` or ``.gif``, by suffix) of human-sized ``VIDEO_SIZE`` frames of the same episode.

    ``on_episode(done)`` is called before each episode and at the end, so a caller can show progress.
    """
    returns = np.zeros(len(seeds))
    frames: list[np.ndarray] = []
    for ep, seed in enumerate(seeds):
        if on_episode is not None:
            on_episode(ep)
        obs, _ = env.reset(seed=int(seed))
        done = False
        while not done:
            if video_path is not None and ep == 0:
                frames.append(_view(obs, agent.pixels, env))
            obs, reward, terminated, truncated, _ = env.step(agent.act(obs, deterministic=True))
            returns[ep] += float(reward)
            done = terminated or truncated
    if on_episode is not None:
        on_episode(len(seeds))
    if video_path is not None and frames:
        write_episode_video(frames, video_path)
    return returns


VIDEO_SIZE = 256  # px: what a person watches, not the agent's 84-100 px observation
VIDEO_SUFFIXES = (".mp4", ".gif")


def _view(obs: np.ndarray, pixels: bool, env: gym.Env) -> np.ndarray:
    if hasattr(env.unwrapped, "render_view"):
        return env.unwrapped.render_view(VIDEO_SIZE)
    if pixels:
        return np.ascontiguousarray(np.asarray(obs)[-3:].transpose(1, 2, 0))
    return np.asarray(env.render())


def write_episode_video(frames: list[np.ndarray], path: Path, fps: int = 25) -> None:
    """mp4 (PyAV, MPEG-4 part 2: its bundled FFmpeg always has the encoder) or GIF, by suffix; atomic."""
    if path.suffix.lower() != ".mp4":
        write_gif(frames, path, fps)
        return
    from representations.data.video import write_video

    with atomic_path(path) as tmp:
        write_video(tmp, np.stack(frames).astype(np.uint8), fps=fps)


def write_gif(frames: list[np.ndarray], path: Path, fps: int = 25) -> None:
    from PIL import Image

    images = [Image.fromarray(f.astype(np.uint8)) for f in frames]
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
