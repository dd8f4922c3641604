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
    """An independent random ``size``x``size`` window per image, by one gather (no Python loop)."""
    h, w = _check(images, size)
    b = images.shape[0]
    if size == h and size == w:
        return images
    dev = images.device
    top = torch.randint(0, h - size + 1, (b,), device=dev, generator=generator)
    left = torch.randint(0, w - size + 1, (b,), device=dev, generator=generator)
    offsets = torch.arange(size, device=dev)
    rows = (top[:, None] + offsets)[:, :, None]  # (B, S, 1)
    cols = (left[:, None] + offsets)[:, None, :]  # (B, 1, S)
    batch = torch.arange(b, device=dev)[:, None, None]
    # Advanced indexing on (B, H, W, C) gives (B, S, S, C); move channels back to dim 1.
    return images.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2).contiguous()


def center_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """The middle ``size``x``size`` window (evaluation and acting)."""
    h, w = _check(images, size)
    top, left = (h - size) // 2, (w - size) // 2
    return images[..., top : top + size, left : left + size]
