"""The contract between pretraining methods and the Trainer.

An objective is an ``nn.Module`` whose ``forward(batch)`` returns ``(loss, metrics)``; everything a
resumed run needs (key encoders, queues) lives in its state_dict as parameters or buffers, and its
random streams live in ``self.generators`` so the Trainer can checkpoint their states.

A batch is a dict: ``images`` uint8 (B, C, H, W) on the device, ``labels``, ``rows`` (B,) = the
samples' positions in the global batch and ``global_batch``. Random draws are made for the global
batch and indexed by ``rows``, so 1 process and W processes see the same augmentations and masks.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..masking import high_pass

Batch = dict[str, Any]


# The official code of the saliency paper (and MoCo / MAE) normalises pixels with ImageNet's
# statistics; its noise stds (0.18 / 0.14) live on that scale. One grey value for every channel (the
# average of ImageNet's three) keeps grey, RGB and stacked-frame inputs on the same footing.
PIXEL_MEAN, PIXEL_STD = 0.449, 0.226


def normalise(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] pixels -> the normalised scale every pretraining method trains and evaluates on."""
    return (x - PIXEL_MEAN) / PIXEL_STD


def encode_with_map(encoder: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(features, last conv map or None) of prepared inputs: conv encoders (``conv_features`` +
    ``head``) return their map as a value, so saliency never reads state left by an earlier call."""
    if hasattr(encoder, "conv_features") and hasattr(encoder, "head"):
        conv_map = encoder.conv_features(x)
        return encoder.head(conv_map), conv_map
    return encoder(x), None


def pooled(features: torch.Tensor) -> torch.Tensor:
    """(B, D) features; a ViT with several [CLS] tokens gives (B, K, D), averaged here."""
    return features.mean(dim=1) if features.dim() == 3 else features


INPUT_FILTERS = ("none", "high_pass")


@torch.no_grad()
def encoder_features(encoder: nn.Module, images: torch.Tensor, input_filter: str = "none",
                     highpass: tuple[int, float] = (11, 5.0), pixels: bool = True) -> torch.Tensor:
    """Features of un-augmented inputs in a method's input domain: pixels (uint8, or floats in
    [0, 1]) are normalised, then high-passed for the high-pass fill; ``pixels=False`` inputs
    (skeleton coordinates) go in as they are, as the skeleton methods train on them.

    Shared by the end-of-run evaluation and ``mcrl-pretrain-eval`` so both see the same inputs.
    """
    if not pixels:
        if input_filter != "none":
            raise ValueError(f"input_filter={input_filter!r} filters pixels; these inputs are not pixels")
        return pooled(encoder(images.float())).float()
    x = normalise(images.float() / 255.0 if images.dtype == torch.uint8 else images.float())
    if input_filter == "high_pass":
        x = high_pass(x, *highpass)
    return pooled(encoder(x)).float()


class Objective(nn.Module):
    """Base class: holds the online ``encoder`` (the thing that is saved) and named generators."""

    name = "objective"

    def __init__(self, encoder: nn.Module, *, generators: dict[str, torch.Generator] | None = None,
                 seed: int = 0, input_filter: str = "none", highpass_kernel: int = 11,
                 highpass_sigma: float = 5.0) -> None:
        super().__init__()
        if input_filter not in INPUT_FILTERS:
            raise ValueError(f"input_filter must be 'none' or 'high_pass', got {input_filter!r}")
        self.encoder = encoder
        self.input_filter = input_filter
        self.highpass = (highpass_kernel, highpass_sigma)
        self.generators: dict[str, torch.Generator] = dict(generators or {})
        for i, key in enumerate(("augment", "mask")):
            if key not in self.generators:
                self.generators[key] = torch.Generator().manual_seed(seed * 1000 + i)

    # -- hooks for the Trainer ---------------------------------------------------------------------
    def configure(self, total_steps: int, steps_per_epoch: int) -> None:
        """Called once with the run length and the epoch length in steps (momentum schedules, freezes)."""

    def after_step(self, step: int) -> dict[str, float]:
        """Called after every optimiser step with the number of steps done (EMA updates)."""
        del step
        return {}

    def generator_states(self) -> dict[str, torch.Tensor]:
        return {name: gen.get_state() for name, gen in self.generators.items()}

    def load_generator_states(self, states: dict[str, torch.Tensor]) -> None:
        for name, state in states.items():
            if name in self.generators:
                self.generators[name].set_state(state)

    # -- inputs ----------------------------------------------------------------------------------
    def prepare(self, views: torch.Tensor) -> torch.Tensor:
        """Float views in [0, 1] -> the method's input domain: normalised (and x - blur(x))."""
        x = normalise(views)
        if self.input_filter == "high_pass":
            return high_pass(x, *self.highpass)
        return x

    @property
    def export_encoder(self) -> nn.Module:
        """The encoder a run saves and evaluates: the online one, unless the official code keeps another."""
        return self.encoder

    @staticmethod
    def random_rows(batch: Batch) -> tuple[torch.Tensor, int]:
        """(rows, global batch size) of a batch; a plain 1-process batch when absent."""
        images = batch["images"]
        rows = batch.get("rows")
        if rows is None:
            rows = torch.arange(images.shape[0], device=images.device)
        return rows.to(images.device), int(batch.get("global_batch", images.shape[0]))
