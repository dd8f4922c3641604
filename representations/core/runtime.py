"""Runtime: where and how a run executes (device, precision, compile, seeding, threads).

One object shared by the RL loop and the pretraining loop so that both make the same choices.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from representations.core.errors import UserError

_PRECISIONS = ("auto", "fp32", "bf16")


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' -> cuda when available, else cpu; anything else is checked, not trusted."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise UserError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {device!r} was asked for but CUDA is not available on this machine")
    return dev


def available_bytes(device: torch.device) -> int | None:
    """Free memory on ``device`` (CUDA: free device memory; CPU: MemAvailable), None where unknown; checked
    before a large allocation so that a run that cannot fit stops with one line instead of an OOM kill."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


@dataclass
class Runtime:
    """Device, precision policy, optional torch.compile, seeding and CPU threads for one run.

    Precision 'auto' means bf16 autocast on CUDA and fp32 on CPU (bf16 matmuls on small CPU
    models are slower, not faster). Per-component generators (``generator("replay")``) are derived
    from the run seed so that adding a new random consumer never shifts another one's stream.
    """

    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    seed: int = 0
    num_threads: int | None = None
    _generators: dict[str, torch.Generator] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.precision not in _PRECISIONS:
            raise UserError(f"precision must be one of {_PRECISIONS}, got {self.precision!r}")
        self.torch_device = resolve_device(self.device)
        if self.precision == "auto":
            self.precision = "bf16" if self.torch_device.type == "cuda" else "fp32"
        if self.num_threads is not None and self.num_threads > 0:
            torch.set_num_threads(self.num_threads)
        if self.torch_device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            torch.backends.cudnn.benchmark = True
        self.seed_everything()

    def seed_everything(self) -> None:
        """Seed python, numpy and torch (all devices) from the run seed."""
        random.seed(self.seed)
        np.random.seed(self.seed % 2**32)
        torch.manual_seed(self.seed)
        os.environ.setdefault("PYTHONHASHSEED", str(self.seed))

    def component_seed(self, name: str) -> int:
        """A stable 63-bit seed for one named component, independent of call order."""
        digest = 1469598103934665603
        for byte in f"{self.seed}:{name}".encode():
            digest = ((digest ^ byte) * 1099511628211) % 2**64
        return digest % 2**63

    def generator(self, name: str, device: str | torch.device | None = None) -> torch.Generator:
        """The torch.Generator of one component (created once, then reused)."""
        dev = torch.device(device) if device is not None else self.torch_device
        key = f"{name}@{dev}"
        if key not in self._generators:
            gen = torch.Generator(device=dev)
            gen.manual_seed(self.component_seed(name))
            self._generators[key] = gen
        return self._generators[key]

    def numpy_rng(self, name: str) -> np.random.Generator:
        return np.random.default_rng(self.component_seed(name))

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return torch.bfloat16 if self.precision == "bf16" else None

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """bf16 autocast when the policy says so, otherwise a no-op."""
        if self.autocast_dtype is None:
            yield
            return
        with torch.autocast(device_type=self.torch_device.type, dtype=self.autocast_dtype):
            yield

    def maybe_compile(self, module: nn.Module) -> nn.Module:
        """torch.compile the module when asked; the eager module is returned otherwise."""
        if not self.compile:
            return module
        return torch.compile(module)  # type: ignore[return-value]

    def describe(self) -> dict[str, object]:
        return {
            "device": str(self.torch_device),
            "precision": self.precision,
            "compile": self.compile,
            "seed": self.seed,
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
        }
