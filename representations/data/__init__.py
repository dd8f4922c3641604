"""Pretraining data: images (IDX / Fashion-MNIST, folders, numpy), skeletons (NTU RGB+D, DeepMimic mocap)."""

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
from .mocap import MOCAP_PATH, load_mocap_clips, mocap_windows
from .ntu import load_ntu, parse_name, read_labels, read_skeleton
from .protocol import PretrainData
from .sampler import StepSampler
from .skeleton import SkeletonAugment, SkeletonData, resize_time

__all__ = [
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_ROOT",
    "MOCAP_PATH",
    "AugmentConfig",
    "BatchAugment",
    "CropParams",
    "DataError",
    "ImageData",
    "PretrainData",
    "SkeletonAugment",
    "SkeletonData",
    "StepSampler",
    "load_fashion_mnist",
    "load_idx_pair",
    "load_image_folder",
    "load_mocap_clips",
    "load_ntu",
    "load_numpy",
    "load_splits",
    "mocap_windows",
    "parse_name",
    "parse_idx",
    "read_idx",
    "read_labels",
    "read_skeleton",
    "resize_time",
    "split_holdout",
    "view_to_view_grid",
    "write_idx",
]
