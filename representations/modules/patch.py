"""Patch / tubelet embeddings and the learned mask token used by masked encoders."""

from __future__ import annotations

import torch
from torch import nn


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def to_float_pixels(images: torch.Tensor) -> torch.Tensor:
    """The one input convention of every encoder: uint8 pixels are scaled to [0, 1] here; float inputs
    are used as given (already in the model's domain, e.g. normalised by a pretraining method)."""
    return images.float() / 255.0 if images.dtype == torch.uint8 else images


class PatchEmbed(nn.Module):
    """(B, C, H, W) -> (B, N, D) with one strided conv; N = (H/p) * (W/p), row-major over the grid."""

    def __init__(self, in_channels: int, patch_size: int | tuple[int, int], dim: int) -> None:
        super().__init__()
        self.patch_size = _pair(patch_size)
        self.in_channels = in_channels
        self.dim = dim
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=self.patch_size, stride=self.patch_size)

    def grid_size(self, height: int, width: int) -> tuple[int, int]:
        """Patch grid (rows, cols) for an image; a clear error when the sides do not divide."""
        ph, pw = self.patch_size
        if height % ph or width % pw or height < ph or width < pw:
            raise ValueError(
                f"image size {height}x{width} is not a positive multiple of the patch size {ph}x{pw}; "
                "crop or resize the images, or pick a patch size that divides them"
            )
        return height // ph, width // pw

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1] != self.in_channels:
            raise ValueError(
                f"PatchEmbed expects (B, {self.in_channels}, H, W) images, got {tuple(images.shape)}"
            )
        self.grid_size(images.shape[-2], images.shape[-1])
        return self.proj(images).flatten(2).transpose(1, 2)


class TubeletEmbed(nn.Module):
    """(B, C, T, H, W) -> (B, T', N, D): a Conv3d over tubelet x patch x patch, T' = T / tubelet."""

    def __init__(
        self, in_channels: int, patch_size: int | tuple[int, int], tubelet_size: int, dim: int
    ) -> None:
        super().__init__()
        if tubelet_size < 1:
            raise ValueError(f"tubelet_size must be >= 1, got {tubelet_size}")
        self.patch_size = _pair(patch_size)
        self.tubelet_size = tubelet_size
        self.in_channels = in_channels
        self.dim = dim
        kernel = (tubelet_size, *self.patch_size)
        self.proj = nn.Conv3d(in_channels, dim, kernel_size=kernel, stride=kernel)

    def grid_size(self, frames: int, height: int, width: int) -> tuple[int, int, int]:
        """(T', rows, cols) for a clip; a clear error when frames or sides do not divide."""
        ph, pw = self.patch_size
        if frames % self.tubelet_size or frames < self.tubelet_size:
            raise ValueError(
                f"{frames} frames is not a positive multiple of the tubelet size {self.tubelet_size}"
            )
        if height % ph or width % pw or height < ph or width < pw:
            raise ValueError(
                f"frame size {height}x{width} is not a positive multiple of the patch size {ph}x{pw}"
            )
        return frames // self.tubelet_size, height // ph, width // pw

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        if video.dim() != 5 or video.shape[1] != self.in_channels:
            raise ValueError(
                f"TubeletEmbed expects (B, {self.in_channels}, T, H, W) video, got {tuple(video.shape)}"
            )
        self.grid_size(*video.shape[-3:])
        out = self.proj(video)  # (B, D, T', h, w)
        return out.flatten(3).permute(0, 2, 3, 1)


class MaskToken(nn.Module):
    """A learned vector that replaces the tokens at masked positions (True = masked).

    Replacement is a ``torch.where``, so unmasked tokens pass through bit-identical and the gradient
    reaches the token only through the positions it fills.
    """

    def __init__(self, dim: int, init_std: float = 0.02) -> None:
        super().__init__()
        self.token = nn.Parameter(torch.zeros(dim))
        nn.init.trunc_normal_(self.token, std=init_std, a=-2 * init_std, b=2 * init_std)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """tokens (..., D), mask (...) bool broadcastable to tokens' leading dims."""
        if mask.dtype != torch.bool:
            raise ValueError(f"mask must be a bool tensor (True = masked), got {mask.dtype}")
        return torch.where(mask.unsqueeze(-1), self.token.to(tokens.dtype), tokens)
