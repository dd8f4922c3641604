"""stable-baselines3 interop: a ``BaseFeaturesExtractor`` around a pretrained mcrl encoder.

SB3 already divides image observations by 255 (``normalize_images=True``, its default), so the
extractor receives floats in [0, 1]; every mcrl encoder uses floats as given (uint8 alone is scaled
inside, ``to_float_pixels``), so pixels are scaled to [0, 1] exactly once, whichever encoder is wrapped.
"""

from __future__ import annotations

import os

import gymnasium as gym
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from representations.encoders import input_normalisation, load_pretrained


class PretrainedExtractor(BaseFeaturesExtractor):
    """Features of a pretrained encoder (``encoder`` module or an ``encoder.pt`` path).

    Use as ``policy_kwargs=dict(features_extractor_class=PretrainedExtractor,
    features_extractor_kwargs=dict(encoder="run/encoder.pt", freeze=True))``. ``normalized_images``
    must match the policy's ``normalize_images`` (True: SB3 hands over [0, 1] floats).
    """

    def __init__(self, observation_space: gym.spaces.Box, encoder: nn.Module | str | os.PathLike[str],
                 freeze: bool = False, normalized_images: bool = True) -> None:
        from_file = isinstance(encoder, (str, os.PathLike))
        module = load_pretrained(encoder) if from_file else encoder
        shape = tuple(observation_space.shape or ())
        expected = getattr(module, "init_kwargs", {}).get("in_channels")
        if len(shape) != 3 or (expected is not None and shape[0] != expected):
            raise ValueError(f"observation shape {shape} does not fit the encoder (channels-first with "
                             f"{expected} channels expected; wrap the env in VecTransposeImage)")
        super().__init__(observation_space, int(module.feature_dim))
        self.encoder = module
        self.freeze = freeze
        self.normalized_images = normalized_images
        if freeze:
            self.encoder.requires_grad_(False)
        self._scale = self._input_scale()
        # (mean, std) of the pretraining input domain: SB3's [0, 1] pixels are mapped into it
        self._stats = input_normalisation(encoder) if from_file else None

    def _input_scale(self) -> float:
        """Factor that takes SB3's float observations to [0, 1] (every encoder uses floats as given)."""
        return 1.0 if self.normalized_images else 1.0 / 255.0

    def train(self, mode: bool = True) -> PretrainedExtractor:
        super().train(mode)
        if self.freeze:
            self.encoder.eval()  # frozen BatchNorm keeps its pretraining statistics
        return self

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        x = observations.float() * self._scale
        if self._stats is not None:
            x = (x - self._stats[0]) / self._stats[1]
        features = self.encoder(x)
        return features.mean(dim=1) if features.dim() == 3 else features
