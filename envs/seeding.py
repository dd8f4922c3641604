"""The seed an environment is built with, applied at its first reset."""

from __future__ import annotations


class ConstructionSeed:
    """Gymnasium seeds an env at ``reset``; our factories take the seed up front so a built env is
    reproducible as it stands. The first reset without its own seed uses the construction seed, once."""

    def __init__(self, seed: int | None) -> None:
        self._pending = seed

    def take(self, seed: int | None) -> int | None:
        """The seed for this reset: the caller's if given, else the construction seed the first time."""
        if seed is None:
            seed = self._pending
        self._pending = None
        return seed
