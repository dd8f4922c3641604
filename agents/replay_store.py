"""Incremental on-disk copy of the replay buffer: one compressed file per finished episode.

Written once when the episode ends (never the whole buffer at a checkpoint, as drqv2 does);
a resume replays the files of the episodes the checkpoint had seen into an empty buffer, which
rebuilds the same slots, pointers and frame stacks. Files are numbered by episode; episodes
written after the checkpoint (a run killed later) are deleted on resume.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from representations.core.atomic import atomic_path

_NAME = re.compile(r"^episode_(\d+)\.npz$")


class ReplayStore:
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def episodes(self) -> list[tuple[int, Path]]:
        if not self.directory.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.directory.iterdir() if (m := _NAME.match(p.name))]
        return sorted(found)

    def write(self, episode: int, arrays: dict[str, np.ndarray]) -> Path:
        """Atomically write one episode (zlib-compressed npz)."""
        path = self.directory / f"episode_{episode:07d}.npz"
        with atomic_path(path) as tmp:
            np.savez_compressed(tmp, **arrays)
        return path

    def restore(self, replay: Any, episodes: int) -> int:
        """Load episodes 0..episodes-1 into ``replay`` (oldest first); returns how many were loaded."""
        found = dict(self.episodes())
        missing = [e for e in range(episodes) if e not in found]
        if missing:
            raise FileNotFoundError(f"replay episodes missing in {self.directory}: {missing[:5]} "
                                    "(cannot resume the buffer exactly)")
        loaded = 0
        for e in range(episodes):
            with np.load(found[e]) as data:
                replay.add_episode({k: data[k] for k in data.files})
            loaded += 1
        return loaded

    def prune_from(self, episode: int) -> None:
        """Delete files of episodes >= ``episode`` (written after the checkpoint being resumed)."""
        for e, path in self.episodes():
            if e >= episode:
                path.unlink(missing_ok=True)

    def clear(self) -> None:
        self.prune_from(0)

    def bytes_on_disk(self) -> int:
        return sum(p.stat().st_size for _, p in self.episodes())
