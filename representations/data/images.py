"""Labelled image sets as uint8 tensors: Fashion-MNIST (IDX), image folders (Pillow), numpy arrays.

Everything becomes one ``ImageData`` (N, C, H, W) uint8 + int64 labels held in memory, because the
augmentations run batched on the device: a whole small dataset is moved there once and batches
are gathered by index, with no DataLoader workers in the way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from .idx import DataError, read_idx
from .protocol import LabelledRows, _Rows

FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = [
    "t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot",
]
_FASHION_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass
class ImageData(LabelledRows):
    """uint8 images (N, C, H, W) with int64 labels (N,) (-1 = unlabelled)."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str] = field(default_factory=list)
    name: str = "images"
    input_key: ClassVar[str] = "images"
    pixels: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if self.images.dim() != 4 or self.images.dtype != torch.uint8:
            raise DataError(f"{self.name}: images must be uint8 (N, C, H, W), got {self.images.dtype} "
                            f"{tuple(self.images.shape)}")
        if self.labels.shape != (self.images.shape[0],):
            raise DataError(f"{self.name}: {self.images.shape[0]} images but labels of shape "
                            f"{tuple(self.labels.shape)}")
        self.labels = self.labels.long()

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])


def _find(root: Path, stem: str) -> Path:
    for candidate in (root / f"{stem}.gz", root / stem):
        if candidate.is_file():
            return candidate
    raise DataError(
        f"Fashion-MNIST file {stem}(.gz) not found in {root}; install the Debian package "
        f"(apt-get install dataset-fashion-mnist) or set data.root to a folder holding the IDX files"
    )


def load_idx_pair(images_path: str | Path, labels_path: str | Path, name: str = "idx",
                  classes: list[str] | None = None) -> ImageData:
    """An MNIST-style (images, labels) pair of IDX files."""
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4 or images.dtype != np.uint8:
        raise DataError(f"{images_path}: expected uint8 (N, H, W) images, got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise DataError(f"{labels_path}: {labels.shape} labels do not match {images.shape[0]} images")
    return ImageData(torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64)), classes or [], name)


def load_fashion_mnist(root: str | Path = FASHION_MNIST_ROOT, split: str = "train") -> ImageData:
    """Fashion-MNIST train (60k) or test (10k) split: 28x28 grey, 10 classes."""
    if split not in _FASHION_FILES:
        raise DataError(f"Fashion-MNIST split must be 'train' or 'test', got {split!r}")
    root = Path(root)
    if not root.is_dir():
        raise DataError(
            f"Fashion-MNIST folder not found: {root}; install it with "
            f"'apt-get install dataset-fashion-mnist' or set data.root to the folder with the IDX files"
        )
    image_stem, label_stem = _FASHION_FILES[split]
    return load_idx_pair(_find(root, image_stem), _find(root, label_stem), f"fashion_mnist/{split}",
                         list(FASHION_MNIST_CLASSES))


def _to_nchw_uint8(array: np.ndarray, name: str) -> np.ndarray:
    """(N,H,W), (N,H,W,C) or (N,C,H,W); uint8, or floats in [0, 1] (scaled to 0..255)."""
    if array.ndim == 3:
        array = array[:, None]
    elif array.ndim == 4 and array.shape[-1] in (1, 3, 4) and array.shape[1] not in (1, 3, 4):
        array = array.transpose(0, 3, 1, 2)
    if array.ndim != 4:
        raise DataError(f"{name}: images must be (N, H, W), (N, H, W, C) or (N, C, H, W), got {array.shape}")
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.floating) and not np.issubdtype(array.dtype, np.integer):
            raise DataError(f"{name}: unsupported image dtype {array.dtype}")
        scale = 255.0 if np.issubdtype(array.dtype, np.floating) and array.max(initial=0) <= 1.0 else 1.0
        array = np.clip(np.rint(array.astype(np.float64) * scale), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(array)


def load_numpy(path: str | Path, images_key: str = "images", labels_key: str = "labels") -> ImageData:
    """``.npz`` with ``images`` (and optional ``labels``) or a bare ``.npy`` image array."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"numpy data file not found: {path}")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read {path}: {err}") from None
    if isinstance(loaded, np.ndarray):
        images, labels = loaded, None
    else:
        with loaded:
            if images_key not in loaded.files:
                raise DataError(f"{path}: no array {images_key!r} (has {', '.join(loaded.files)})")
            images = loaded[images_key]
            labels = loaded[labels_key] if labels_key in loaded.files else None
    images = _to_nchw_uint8(images, str(path))
    if labels is None:
        label_t = torch.full((images.shape[0],), -1, dtype=torch.long)
    else:
        labels = np.asarray(labels).reshape(-1)
        if labels.shape[0] != images.shape[0]:
            raise DataError(f"{path}: {labels.shape[0]} labels for {images.shape[0]} images")
        label_t = torch.from_numpy(labels.astype(np.int64))
    return ImageData(torch.from_numpy(images), label_t, [], path.stem)


def load_image_folder(root: str | Path, image_size: int | None = None, channels: int = 3) -> ImageData:
    """One sub-folder per class (sorted names = class ids); images read with Pillow, resized to a square."""
    from PIL import Image, UnidentifiedImageError

    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder not found: {root}")
    if channels not in (1, 3):
        raise DataError(f"image folder channels must be 1 or 3, got {channels}")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"{root} has no class sub-folders (expected {root}/<class>/<image>.png)")
    arrays: list[np.ndarray] = []
    labels: list[int] = []
    for label, cls in enumerate(classes):
        for file in sorted((root / cls).iterdir()):
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(file) as img:
                    img = img.convert("L" if channels == 1 else "RGB")
                    if image_size is not None and img.size != (image_size, image_size):
                        img = img.resize((image_size, image_size), Image.Resampling.BILINEAR)
                    arr = np.asarray(img, dtype=np.uint8)
            except (UnidentifiedImageError, OSError) as err:
                raise DataError(f"cannot read image {file}: {err}") from None
            arrays.append(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))
            labels.append(label)
    if not arrays:
        raise DataError(f"{root}: no images ({', '.join(IMAGE_SUFFIXES)}) in the class folders")
    if len({a.shape for a in arrays}) > 1:
        raise DataError(f"{root}: images have different sizes; pass image_size to resize them")
    return ImageData(torch.from_numpy(np.stack(arrays)), torch.tensor(labels), classes, root.name)


def split_holdout(data: _Rows, fraction: float, seed: int = 0) -> tuple[_Rows, _Rows]:
    """Seeded (train, test) split for sources that ship without a test split: a random ``fraction``
    of the rows, or of whole sources when the rows name theirs (overlapping windows of one video on
    both sides would leak). Unlabelled data (every label -1) is never evaluated, so all of it trains
    and the test split is empty."""
    from ..evaluation import holdout_split

    if not 0.0 < fraction < 1.0:
        raise DataError(f"test fraction must be in (0, 1), got {fraction}")
    if len(data) and bool((data.labels < 0).all()):
        return data, data.subset([])
    try:
        test, train = holdout_split(len(data), fraction, seed, groups=data.sources)
    except ValueError as err:
        raise DataError(f"{data.name}: cannot hold out a test split: {err}") from None
    return data.subset(train.sort().values), data.subset(test.sort().values)


def load_splits(source: str, *, root: str | None = None, path: str | None = None, test_path: str | None = None,
                image_size: int | None = None, channels: int = 3, test_fraction: float = 0.2, seed: int = 0,
                train_limit: int | None = None, test_limit: int | None = None) -> tuple[ImageData, ImageData]:
    """(train, test) of one configured source: fashion_mnist | image_folder | numpy."""
    if source == "fashion_mnist":
        root = root or FASHION_MNIST_ROOT
        train, test = load_fashion_mnist(root, "train"), load_fashion_mnist(root, "test")
    elif source in ("image_folder", "numpy"):
        if not path:
            raise DataError(f"data source {source!r} needs data.path")
        loader = (lambda p: load_image_folder(p, image_size, channels)) if source == "image_folder" else load_numpy
        train = loader(path)
        if test_path:
            test = loader(test_path)
        else:
            train, test = split_holdout(train, test_fraction, seed)
    else:
        raise DataError(f"unknown data source {source!r}; use fashion_mnist, image_folder or numpy")
    return train.limit(train_limit, seed), test.limit(test_limit, seed + 1)
