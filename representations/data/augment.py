"""Batched, seeded image augmentations on the device (MoCo v2 / SimCLR recipe, plain torch).

All random numbers of one call are drawn in a single ``torch.rand`` for the *global* batch and the
caller's rows are picked out afterwards. A 2-process run that gives each rank a strided share of
the global batch therefore sees exactly the augmentations a 1-process run sees for the same
samples, which is what makes the DDP equivalence test exact.

Crop + flip are one ``grid_sample`` (bilinear) per batch; the crop box of every view is returned
(``CropParams``) so a saliency map computed in one view can be carried into another.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

_DRAWS = 12  # columns of the per-sample uniform draw, fixed so streams never shift


class CropParams(NamedTuple):
    """Per-sample view geometry in normalised [-1, 1] source coordinates.

    A view pixel at normalised position (u, v) comes from source position
    (cx + sx * u, cy + sy * v); ``sx`` is negative for a horizontally flipped view.
    """

    cx: torch.Tensor
    cy: torch.Tensor
    sx: torch.Tensor
    sy: torch.Tensor


@dataclass
class AugmentConfig:
    """Probabilities and ranges; defaults are MoCo v2's (crop scale 0.2-1, jitter 0.4/0.4/0.4/0.1 at
    p=0.8, grey p=0.2, blur sigma 0.1-2 at p=0.5, flip p=0.5)."""

    size: int = 28
    scale: tuple[float, float] = (0.2, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    grey_p: float = 0.2
    blur_p: float = 0.5
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    blur_kernel: int | None = None  # odd; None = about 10% of the image side (at least 3)

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"augment size must be >= 1, got {self.size}")
        lo, hi = self.scale
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f"crop scale must satisfy 0 < low <= high <= 1, got {self.scale}")
        if not 0.0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"crop ratio must satisfy 0 < low <= high, got {self.ratio}")
        for name in ("flip_p", "jitter_p", "grey_p", "blur_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.blur_kernel is not None and (self.blur_kernel < 1 or self.blur_kernel % 2 == 0):
            raise ValueError(f"blur_kernel must be a positive odd number, got {self.blur_kernel}")

    @property
    def kernel(self) -> int:
        if self.blur_kernel is not None:
            return self.blur_kernel
        k = max(3, int(round(self.size * 0.1)))
        return k if k % 2 else k + 1


def _grey(x: torch.Tensor) -> torch.Tensor:
    """Luma of (B, G, 3, H, W) colour groups -> (B, G, 1, H, W)."""
    weights = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype).view(1, 1, 3, 1, 1)
    return (x * weights).sum(dim=2, keepdim=True)


def _hue_rotate(x: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotate chroma in YIQ space by ``angle`` (B,) radians; x is (B, G, 3, H, W).

    A linear stand-in for torchvision's HSV hue shift: same intent (shift colours around the
    wheel, keep luma), cheaper on the device, not numerically identical.
    """
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]],
                          device=x.device, dtype=x.dtype)
    from_yiq = torch.linalg.inv(to_yiq)
    cos, sin = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(cos), torch.zeros_like(cos)
    rot = torch.stack([torch.stack([one, zero, zero], -1), torch.stack([zero, cos, -sin], -1),
                       torch.stack([zero, sin, cos], -1)], -2)  # (B, 3, 3)
    mat = from_yiq @ rot @ to_yiq
    return torch.einsum("bij,bgjhw->bgihw", mat, x)


def _blur(x: torch.Tensor, sigma: torch.Tensor, kernel: int) -> torch.Tensor:
    """Per-sample separable Gaussian blur (reflect padding) of (B, C, H, W) with sigmas (B,)."""
    b, c, h, w = x.shape
    radius = kernel // 2
    offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    taps = torch.exp(-(offsets[None] ** 2) / (2 * sigma[:, None] ** 2))
    taps = (taps / taps.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # (B*C, k)
    pad_mode = "reflect" if min(h, w) > radius else "replicate"
    y = F.pad(x.reshape(1, b * c, h, w), (radius, radius, radius, radius), mode=pad_mode)
    y = F.conv2d(y, taps.view(b * c, 1, 1, kernel), groups=b * c)
    y = F.conv2d(y, taps.view(b * c, 1, kernel, 1), groups=b * c)
    return y.view(b, c, h, w)


class BatchAugment:
    """uint8 or float images (B, C, H, W) -> float views in [0, 1] of side ``config.size``.

    Colour ops act on groups of 3 channels (stacked RGB frames get one jitter for all frames);
    images whose channel count is not a multiple of 3 get brightness and contrast only.
    """

    def __init__(self, config: AugmentConfig | None = None) -> None:
        self.config = config or AugmentConfig()

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None,
                 rows: torch.Tensor | None = None, global_batch: int | None = None
                 ) -> tuple[torch.Tensor, CropParams]:
        """Augment ``images``; ``rows`` (B,) are their positions in a global batch of ``global_batch``."""
        if images.dim() != 4:
            raise ValueError(f"augment expects (B, C, H, W) images, got {tuple(images.shape)}")
        batch = images.shape[0]
        total = batch if global_batch is None else int(global_batch)
        draw_on = generator.device if generator is not None else images.device
        u = torch.rand(total, _DRAWS, generator=generator, device=draw_on).to(images.device)
        if rows is not None:
            u = u[rows.to(images.device)]
        elif total != batch:
            raise ValueError("rows must be given when global_batch differs from the batch size")
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        x, crop = self._crop_flip(x, u)
        x = self._colour(x, u)
        x = self._maybe_blur(x, u)
        return x.clamp_(0.0, 1.0), crop

    def _crop_flip(self, x: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, CropParams]:
        cfg = self.config
        area = cfg.scale[0] + (cfg.scale[1] - cfg.scale[0]) * u[:, 0]
        log_lo, log_hi = math.log(cfg.ratio[0]), math.log(cfg.ratio[1])
        aspect = torch.exp(log_lo + (log_hi - log_lo) * u[:, 1])
        half_w = torch.sqrt(area * aspect).clamp(max=1.0)  # box half-width in [-1, 1] units
        half_h = torch.sqrt(area / aspect).clamp(max=1.0)
        cx = (2 * u[:, 2] - 1) * (1 - half_w)
        cy = (2 * u[:, 3] - 1) * (1 - half_h)
        flip = torch.where(u[:, 4] < cfg.flip_p, -1.0, 1.0).to(x.dtype)
        sx = half_w * flip
        theta = torch.zeros(x.shape[0], 2, 3, device=x.device, dtype=x.dtype)
        theta[:, 0, 0], theta[:, 0, 2] = sx, cx
        theta[:, 1, 1], theta[:, 1, 2] = half_h, cy
        grid = F.affine_grid(theta, [x.shape[0], x.shape[1], cfg.size, cfg.size], align_corners=False)
        out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        return out, CropParams(cx, cy, sx, half_h)

    def _colour(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        b, c, h, w = x.shape
        colour = c % 3 == 0
        groups = x.view(b, c // 3, 3, h, w) if colour else x.view(b, c, 1, h, w)
        jitter = (u[:, 5] < cfg.jitter_p).view(b, 1, 1, 1, 1)

        def factor(col: int, amount: float) -> torch.Tensor:
            return (1.0 + amount * (2 * u[:, col] - 1)).view(b, 1, 1, 1, 1)

        out = (groups * factor(6, cfg.brightness)).clamp(0.0, 1.0)
        luma = _grey(out) if colour else out
        mean = luma.mean(dim=(1, 2, 3, 4), keepdim=True)
        out = ((out - mean) * factor(7, cfg.contrast) + mean).clamp(0.0, 1.0)
        if colour:
            luma = _grey(out)
            out = ((out - luma) * factor(8, cfg.saturation) + luma).clamp(0.0, 1.0)
            angle = cfg.hue * (2 * u[:, 9] - 1) * 2 * math.pi
            out = _hue_rotate(out, angle).clamp(0.0, 1.0)
        out = torch.where(jitter, out, groups)
        if colour and cfg.grey_p > 0:
            grey = (u[:, 10] < cfg.grey_p).view(b, 1, 1, 1, 1)
            out = torch.where(grey, _grey(out).expand_as(out), out)
        return out.reshape(b, c, h, w)

    def _maybe_blur(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        if cfg.blur_p <= 0:
            return x
        lo, hi = cfg.blur_sigma
        # The same column decides (u < p) and, rescaled, the sigma: one draw fewer, no correlation
        # problem since sigma only matters where the blur is applied.
        apply = u[:, 11] < cfg.blur_p
        sigma = lo + (hi - lo) * (u[:, 11] / max(cfg.blur_p, 1e-12)).clamp(max=1.0)
        blurred = _blur(x, sigma.to(x.dtype), cfg.kernel)
        return torch.where(apply.view(-1, 1, 1, 1), blurred, x)


def view_to_view_grid(src: CropParams, dst: CropParams, grid: tuple[int, int]) -> torch.Tensor:
    """Sampling grid (B, h, w, 2) that reads a map of view ``src`` at the cell centres of view ``dst``.

    Use with ``grid_sample(src_map, grid, align_corners=False)``; points of ``dst`` outside the
    ``src`` view fall outside [-1, 1] (zeros padding gives them the map's floor value 0).
    """
    h, w = grid
    device = dst.cx.device
    v = (torch.arange(h, device=device, dtype=dst.cx.dtype) * 2 + 1) / h - 1
    u = (torch.arange(w, device=device, dtype=dst.cx.dtype) * 2 + 1) / w - 1
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    x = dst.cx.view(-1, 1, 1) + dst.sx.view(-1, 1, 1) * uu  # source-image coordinates
    y = dst.cy.view(-1, 1, 1) + dst.sy.view(-1, 1, 1) * vv
    us = (x - src.cx.view(-1, 1, 1)) / src.sx.view(-1, 1, 1)
    vs = (y - src.cy.view(-1, 1, 1)) / src.sy.view(-1, 1, 1)
    return torch.stack([us, vs], dim=-1)
