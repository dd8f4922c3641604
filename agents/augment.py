"""Image crops applied to sampled batches on the agent's device (RAD / CURL augmentation)."""

from __future__ import annotations

import torch


def _check(images: torch.Tensor, size: int) -> tuple[int, int]:
    if images.dim() != 4:
        raise ValueError(f"expected a batch (B, C, H, W), got shape {tuple(images.shape)}")
    h, w = images.shape[-2:]
    if size > h or size > w:
        raise ValueError(f"crop size {size} is larger than the rendered image {h}x{w}")
    return h, w


def random_crop(images: torch.Tensor, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """An independent random ``size``x``size`` window per image, by one gather (no Python loop).

    ``unfold`` exposes every window as a view; indexing picks one per image and copies only it.
    """
    h, w = _check(images, size)
    b = images.shape[0]
    if size == h and size == w:
        return images
    dev = images.device
    top = torch.randint(0, h - size + 1, (b,), device=dev, generator=generator)
    left = torch.randint(0, w - size + 1, (b,), device=dev, generator=generator)
    windows = images.unfold(2, size, 1).unfold(3, size, 1)  # (B, C, H-s+1, W-s+1, s, s), a view
    return windows[torch.arange(b, device=dev), :, top, left]


def center_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """The middle ``size``x``size`` window (evaluation and acting)."""
    h, w = _check(images, size)
    top, left = (h - size) // 2, (w - size) // 2
    return images[..., top : top + size, left : left + size]
