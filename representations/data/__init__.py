"""Image data for pretraining: IDX / Fashion-MNIST, image folders, numpy arrays; batched augmentations."""

from .augment import AugmentConfig, BatchAugment, CropParams, view_to_view_grid
from .idx import DataError, parse_idx, read_idx, write_idx
from .images import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_ROOT,
    ImageData,
    load_fashion_mnist,
    load_idx_pair,
    load_image_folder,
    load_numpy,
    load_splits,
    split_holdout,
)
from .protocol import PretrainData
from .sampler import StepSampler

__all__ = [
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_ROOT",
    "AugmentConfig",
    "BatchAugment",
    "CropParams",
    "DataError",
    "ImageData",
    "PretrainData",
    "StepSampler",
    "load_fashion_mnist",
    "load_idx_pair",
    "load_image_folder",
    "load_numpy",
    "load_splits",
    "parse_idx",
    "read_idx",
    "split_holdout",
    "view_to_view_grid",
    "write_idx",
]
