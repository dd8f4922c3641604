"""Checkpointer: atomic, pruned, weights-only-loadable checkpoints.

A checkpoint is one dict ``{"state": {name: state_dict}, "counters": {...}, "config": {...}}`` made
of tensors and plain Python values only, so ``torch.load(weights_only=True)`` can read it.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from representations.core.atomic import atomic_path

_NAME = re.compile(r"^ckpt_(\d+)\.pt$")


class CheckpointError(RuntimeError):
    """A checkpoint that is missing or cannot be read."""


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` that leaves either the old file or the whole new one (``atomic_path``)."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint file with weights_only=True, with a one-line error on failure."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a bad file
        raise CheckpointError(f"cannot read checkpoint {path}: {type(err).__name__}: {err}") from err


class Checkpointer:
    """Save ``ckpt_<step>.pt`` files in ``directory`` and keep only the newest ``keep``."""

    def __init__(self, directory: str | Path, keep: int = 3) -> None:
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.directory = Path(directory)
        self.keep = keep

    def paths(self) -> list[Path]:
        """Existing checkpoints, oldest first."""
        if not self.directory.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.directory.iterdir() if (m := _NAME.match(p.name))]
        return [p for _, p in sorted(found)]

    def latest(self) -> Path | None:
        paths = self.paths()
        return paths[-1] if paths else None

    def save(self, step: int, state: Mapping[str, Any], counters: Mapping[str, Any],
             config: Mapping[str, Any] | None = None) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"ckpt_{step:010d}.pt"
        atomic_torch_save({"state": dict(state), "counters": dict(counters), "config": dict(config or {})}, path)
        for old in self.paths()[: -self.keep]:
            old.unlink(missing_ok=True)
        return path

    def load_latest(self, map_location: str | torch.device = "cpu", fallback: bool = False) -> dict[str, Any] | None:
        """The newest checkpoint; with ``fallback``, an unreadable one (truncated by a crash mid-copy,
        a full disk) is skipped with a warning for the previous good one."""
        paths = self.paths()
        if not fallback:
            return load_checkpoint(paths[-1], map_location) if paths else None
        for i, path in enumerate(reversed(paths)):
            try:
                state = load_checkpoint(path, map_location)
            except CheckpointError as err:
                if i == len(paths) - 1:
                    raise
                print(f"warning: {err}; falling back to the previous checkpoint", file=sys.stderr)
                continue
            return state
        return None
