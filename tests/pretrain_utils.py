"""Shared tiny builders for the pretraining tests (small real data, tiny encoders)."""

from __future__ import annotations

import functools
import os

import pytest
import torch

from representations.data import AugmentConfig, BatchAugment, ImageData, load_fashion_mnist
from representations.encoders import ConvEncoder, ResNetSmall, ViT

FASHION = "/usr/share/datasets/fashion-mnist"
needs_fashion = pytest.mark.skipif(not os.path.isdir(FASHION), reason="dataset-fashion-mnist not installed")


@functools.lru_cache(maxsize=1)
def fashion_test() -> ImageData:
    return load_fashion_mnist(FASHION, "test")


def fashion_subset(n: int = 256, seed: int = 0) -> ImageData:
    return fashion_test().limit(n, seed)


def tiny_resnet() -> ResNetSmall:
    return ResNetSmall(in_channels=1, image_size=28, widths=(8, 16), blocks=(1, 1))


def tiny_conv() -> ConvEncoder:
    """No BatchNorm: per-rank batch statistics cannot differ (DDP equivalence)."""
    return ConvEncoder(in_channels=1, image_size=28, num_layers=2, num_filters=8, feature_dim=16)


def tiny_vit() -> ViT:
    return ViT(image_size=28, patch_size=2, in_channels=1, width=32, depth=2, heads=2, positions="sincos")


def augment(size: int = 28) -> BatchAugment:
    return BatchAugment(AugmentConfig(size=size, blur_p=0.0))


def generators(seed: int = 0) -> dict[str, torch.Generator]:
    return {"augment": torch.Generator().manual_seed(seed), "mask": torch.Generator().manual_seed(seed + 1)}
