"""Trainer core shared by RL agents and pretraining: runtime, logging, checkpoints."""

from representations.core.checkpoint import Checkpointer, CheckpointError, atomic_torch_save, load_checkpoint
from representations.core.logger import Logger
from representations.core.runtime import Runtime, resolve_device

__all__ = ["CheckpointError", "Checkpointer", "Logger", "Runtime", "atomic_torch_save", "load_checkpoint",
           "resolve_device"]
