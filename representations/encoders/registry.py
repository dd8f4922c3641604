"""Build encoders by name and save / reload them as ``(class, constructor kwargs, state_dict)``.

The file holds only tensors and plain Python values, so ``torch.load(weights_only=True)`` reads it:
a pretrained encoder can be carried into another run (or an RL agent) without unpickling code.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..core.checkpoint import atomic_torch_save
from .conv import ConvEncoder
from .resnet import ResNetSmall
from .stgcn import STGCN
from .video_vit import VideoViT
from .vit import ViT

ENCODERS: dict[str, type[nn.Module]] = {
    "conv": ConvEncoder,
    "resnet_small": ResNetSmall,
    "vit": ViT,
    "video_vit": VideoViT,
    "stgcn": STGCN,
}
_BY_CLASS = {cls.__name__: name for name, cls in ENCODERS.items()}


def build_encoder(name: str, **kwargs: Any) -> nn.Module:
    """Instantiate a registered encoder (conv, resnet_small, vit, video_vit, stgcn) from kwargs."""
    key = _BY_CLASS.get(name, name)
    if key not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; choose one of {', '.join(ENCODERS)}")
    return ENCODERS[key](**kwargs)


def encoder_payload(encoder: nn.Module) -> dict[str, Any]:
    """The dict ``save_encoder`` writes; embed it in a larger checkpoint to reload with ``key=``."""
    name = _BY_CLASS.get(type(encoder).__name__)
    if name is None or not hasattr(encoder, "init_kwargs"):
        raise ValueError(
            f"{type(encoder).__name__} is not a registered encoder with init_kwargs; "
            f"registered: {', '.join(_BY_CLASS)}"
        )
    state = {k: v.detach().cpu() for k, v in encoder.state_dict().items()}
    return {"class": name, "kwargs": dict(encoder.init_kwargs), "state_dict": state}


def save_encoder(encoder: nn.Module, path: str | os.PathLike[str], *,
                 input_normalisation: tuple[float, float] | None = None) -> Path:
    """Write ``{"class", "kwargs", "state_dict"}`` atomically (``atomic_torch_save``).

    ``input_normalisation`` = (mean, std) records that the encoder was trained on (x - mean) / std
    of [0, 1] pixels, so a consumer that feeds raw pixels (an RL agent, SB3) can match it.
    """
    path = Path(path)
    payload = encoder_payload(encoder)
    if input_normalisation is not None:
        payload["input_normalisation"] = [float(v) for v in input_normalisation]
    atomic_torch_save(payload, path)
    return path


def load_pretrained(
    path: str | os.PathLike[str], *, key: str | None = None, map_location: str | torch.device = "cpu"
) -> nn.Module:
    """Rebuild an encoder saved by ``save_encoder`` (or stored under ``key`` in a larger checkpoint).

    Raises FileNotFoundError for a missing file and ValueError (one clear line) for a file that is
    not an encoder checkpoint or whose weights do not fit the recorded architecture.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no pretrained encoder at {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path} is not a readable encoder checkpoint (corrupt or truncated?): {exc}") from None
    if key is not None:
        if not isinstance(payload, dict) or key not in payload:
            raise ValueError(f"{path} has no entry {key!r}")
        payload = payload[key]
    if not isinstance(payload, dict) or not {"class", "kwargs", "state_dict"} <= payload.keys():
        raise ValueError(f"{path} does not hold an encoder: expected keys 'class', 'kwargs', 'state_dict'")
    try:
        encoder = build_encoder(payload["class"], **payload["kwargs"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: cannot rebuild encoder {payload['class']!r}: {exc}") from None
    try:
        encoder.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ValueError(f"{path}: weights do not match the recorded architecture: {first}") from None
    return encoder


def input_normalisation(path: str | os.PathLike[str]) -> tuple[float, float] | None:
    """(mean, std) an ``encoder.pt`` was trained on ([0, 1] pixels -> (x - mean) / std), or None."""
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    value = payload.get("input_normalisation") if isinstance(payload, dict) else None
    return None if value is None else (float(value[0]), float(value[1]))
