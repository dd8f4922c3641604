"""Random patch masks on a grid, applying a cell mask to images, Gaussian blur and high-pass inputs,
and the saliency paper's noise-filling recipe (focal / spatial / channel-wise masks)."""

from __future__ import annotations

import functools
from typing import NamedTuple

import torch
import torch.nn.functional as F

from ._sampling import Ratio, as_device, draw_fractions, normal, round_counts, select_random, uniform

FILLS = ("zero", "mean", "blur", "noise")


def _grid_shape(grid: int | tuple[int, int]) -> tuple[int, int]:
    h, w = (grid, grid) if isinstance(grid, int) else (int(grid[0]), int(grid[1]))
    if h < 1 or w < 1:
        raise ValueError(f"grid must be positive, got {grid!r}")
    return h, w


def random_patch_mask(
    batch: int,
    grid: int | tuple[int, int],
    ratio: Ratio,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Bool (B, h, w), True = masked: exactly round(ratio * h * w) cells per sample, uniformly placed.

    ``ratio`` is a float or a (low, high) range drawn per sample (the count is then per sample).
    """
    h, w = _grid_shape(grid)
    device = as_device(device)
    fraction = draw_fractions(batch, ratio, generator, device)
    counts = round_counts(fraction, h * w, batch, device)
    noise = uniform((batch, h * w), generator, device)
    return select_random(noise, counts).view(batch, h, w)


def upsample_mask(mask: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Nearest-cell upsampling of a (B, h, w) grid mask to (B, height, width).

    Pixel i belongs to cell floor(i * h / height), so grids that do not divide the image still
    cover it with cells differing by at most one pixel in size.
    """
    if mask.dim() != 3:
        raise ValueError(f"mask must be (B, h, w), got shape {tuple(mask.shape)}")
    h, w = mask.shape[1:]
    if (h, w) == (height, width):
        return mask
    if height % h == 0 and width % w == 0:
        sh, sw = height // h, width // w
        return mask[:, :, None, :, None].expand(-1, h, sh, w, sw).reshape(-1, height, width)
    rows = torch.arange(height, device=mask.device) * h // height
    cols = torch.arange(width, device=mask.device) * w // width
    return mask[:, rows][:, :, cols]


def gaussian_kernel1d(kernel_size: int, sigma: float, dtype: torch.dtype = torch.float32,
                      device: torch.device | str | None = None) -> torch.Tensor:
    """Normalised 1-D Gaussian taps (odd ``kernel_size``)."""
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size}")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    radius = kernel_size // 2
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    taps = torch.exp(-(x**2) / (2.0 * sigma**2))
    return (taps / taps.sum()).to(dtype=dtype, device=device)


def _reflect(index: torch.Tensor, n: int) -> torch.Tensor:
    """Mirror indices into [0, n) without repeating the edge (PyTorch/NumPy 'reflect'), any distance."""
    if n == 1:
        return torch.zeros_like(index)
    period = 2 * (n - 1)
    index = index.remainder(period)
    return torch.where(index >= n, period - index, index)


@functools.lru_cache(maxsize=32)
def _blur_matrix(n: int, kernel_size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(n, n) matrix M with (M @ x) = 1-D Gaussian convolution of x with reflect padding."""
    taps = gaussian_kernel1d(kernel_size, sigma, torch.float64)
    radius = kernel_size // 2
    rows = torch.arange(n)[:, None].expand(n, kernel_size)
    cols = _reflect(rows + torch.arange(-radius, radius + 1)[None, :], n)
    matrix = torch.zeros(n, n, dtype=torch.float64)
    matrix.index_put_((rows.reshape(-1), cols.reshape(-1)), taps.repeat(n), accumulate=True)
    return matrix.to(dtype=dtype, device=device)


def _compute_dtype(images: torch.Tensor) -> torch.dtype:
    return images.dtype if images.is_floating_point() else torch.float32


def _cast_back_(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Float results (a temporary, modified in place) back to ``like``'s dtype; integer dtypes are
    rounded and clamped to their range."""
    if like.is_floating_point():
        return values.to(like.dtype)
    info = torch.iinfo(like.dtype)
    return values.round_().clamp_(info.min, info.max).to(like.dtype)


def _blur(x: torch.Tensor, kernel_size: int, sigma: float) -> torch.Tensor:
    """Blur of a floating tensor over its last two dims (two matrix products, see gaussian_blur)."""
    height, width = x.shape[-2:]
    rows = _blur_matrix(height, kernel_size, float(sigma), x.dtype, x.device)
    cols = _blur_matrix(width, kernel_size, float(sigma), x.dtype, x.device)
    return torch.matmul(rows, torch.matmul(x, cols.T))


def gaussian_blur(images: torch.Tensor, kernel_size: int = 31, sigma: float = 10.0) -> torch.Tensor:
    """Separable Gaussian blur over the last two dims (reflect padding); returns the input dtype.

    Each separable pass is the depthwise 1-D convolution written as a product with a banded
    (n, n) matrix that folds the reflect padding in; on CPU this is several times faster than
    ``conv2d(groups=C)`` with the same result. Integer (uint8) inputs are blurred in float32 and
    rounded back.
    """
    if images.dim() < 2:
        raise ValueError(f"images must have at least 2 dims (..., H, W), got shape {tuple(images.shape)}")
    return _cast_back_(_blur(images.to(_compute_dtype(images)), kernel_size, sigma), images)


def fast_blur(images: torch.Tensor, kernel_size: int = 31, sigma: float = 10.0) -> torch.Tensor:
    """A wide Gaussian blur computed at reduced resolution: area-downsample by f = floor(sigma / 4),
    blur with sigma / f, bilinear upsample. A sigma-10 blur has no detail a 2-4x coarser grid misses,
    and the work falls by about f^3 (the separable passes shrink with the side, the image with its
    area). f = 1 (sigma < 8) is the exact ``gaussian_blur``. Float output (float32 for integers).
    """
    x = images.to(_compute_dtype(images))
    factor = max(1, int(sigma // 4))
    height, width = x.shape[-2:]
    if factor == 1 or min(height, width) < 2 * factor:
        return _blur(x, kernel_size, sigma)
    small = F.interpolate(x.reshape(-1, 1, height, width), scale_factor=1.0 / factor, mode="area")
    small_kernel = max(3, (kernel_size // factor) | 1)
    small = _blur(small, small_kernel, sigma / factor)
    return F.interpolate(small, size=(height, width), mode="bilinear", align_corners=False).view_as(x)


def high_pass(images: torch.Tensor, kernel: int = 11, sigma: float = 5.0) -> torch.Tensor:
    """x - blur(x): keeps edges and texture, drops the low frequencies that masking edges perturb.

    Returns a float tensor (float32 for integer input) on the input's scale, with signed values.
    """
    if images.dim() < 2:
        raise ValueError(f"images must have at least 2 dims (..., H, W), got shape {tuple(images.shape)}")
    x = images.to(_compute_dtype(images))
    return _blur(x, kernel, sigma).neg_().add_(x)


def _stats_dtype(images: torch.Tensor) -> torch.dtype:
    return torch.float64 if images.dtype == torch.float64 else torch.float32


def _channel_mean(images: torch.Tensor) -> torch.Tensor:
    """(B, C, 1, 1) mean over pixels, accumulated in float32 (float64 for float64 input).

    Byte images take exact int16 row sums first (a row of <= 128 bytes cannot overflow), which on
    CPU is about twice as fast as a casting float reduction over all pixels.
    """
    height, width = images.shape[-2:]
    if images.dtype in (torch.uint8, torch.int8) and width <= 128:
        rows = images.to(torch.int16).sum(dim=-1, dtype=torch.int16)
        return rows.sum(dim=-1, keepdim=True, dtype=torch.float32)[..., None] / (height * width)
    return images.sum(dim=(-2, -1), keepdim=True, dtype=_stats_dtype(images)) / (height * width)


def _channel_mean_std(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, C) mean and population std of a floating (B, C, H, W) tensor from one sum and one norm
    (E[x^2] - mean^2 in the accumulation dtype; ample for pixel-scale data, far cheaper than
    ``std_mean`` on CPU)."""
    hw = x.shape[-1] * x.shape[-2]
    mean = x.sum(dim=(-2, -1)) / hw
    mean_sq = torch.linalg.vector_norm(x, dim=(-2, -1)).square_() / hw
    return mean, (mean_sq - mean.square()).clamp_(min=0.0).sqrt_()


def apply_patch_mask(
    images: torch.Tensor,
    mask: torch.Tensor,
    fill: str = "zero",
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Fill the masked cells of (B, C, H, W) images; ``mask`` is a (B, h, w) bool grid (True = masked).

    fill: "zero"; "mean" (per-image per-channel mean); "blur" (Gaussian k31 sigma10 of the image, so
    the masked region keeps low frequencies and adds no sharp edges; ``fast_blur``); "noise" (Gaussian noise with
    the per-image per-channel mean and std, drawn only for masked pixels). Returns a new tensor of
    the input dtype (integer inputs rounded and clamped).
    """
    if fill not in FILLS:
        raise ValueError(f"unknown fill {fill!r}; expected one of {', '.join(FILLS)}")
    if images.dim() != 4:
        raise ValueError(f"images must be (B, C, H, W), got shape {tuple(images.shape)}")
    if mask.dim() != 3 or mask.shape[0] != images.shape[0]:
        raise ValueError(
            f"mask must be (B, h, w) with B={images.shape[0]} matching the images, got {tuple(mask.shape)}"
        )
    pixel_mask = upsample_mask(mask.to(device=images.device, dtype=torch.bool), *images.shape[-2:])[:, None]
    integer = not images.is_floating_point()
    if fill == "zero":
        # For integers a multiply is the fastest single pass; floats keep masked_fill (no NaN * 0).
        return images * ~pixel_mask if integer else images.masked_fill(pixel_mask, 0.0)
    if fill == "mean":
        value = _cast_back_(_channel_mean(images), images)
        if integer:  # one of the two products is zero at every pixel: exact, no overflow
            return images * ~pixel_mask + value * pixel_mask
        return torch.where(pixel_mask, value, images)
    if fill == "blur":
        return torch.where(pixel_mask, _cast_back_(fast_blur(images, 31, 10.0), images), images)
    return _noise_fill(images, pixel_mask, generator)


def _noise_fill(images: torch.Tensor, pixel_mask: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Gaussian noise with each image-channel's mean and std, drawn only where masked.

    Values are drawn in row-major order of the masked elements, so the result depends only on the
    generator, not the device.
    """
    batch, channels = images.shape[:2]
    x = images if images.is_floating_point() else images.to(torch.float32)
    mean, std = _channel_mean_std(x)
    per_image = pixel_mask.flatten(1).sum(dim=1)
    count = int(per_image.sum()) * channels
    draws = normal((count,), generator, images.device).to(x.dtype)
    # Masked elements of image b, channel c form one contiguous run of length n_b in row-major order.
    stats = torch.stack([mean.flatten(), std.flatten()], dim=1)
    stats = stats.repeat_interleave(per_image.repeat_interleave(channels), dim=0, output_size=count)
    values = torch.addcmul(stats[:, 0], stats[:, 1], draws)
    return images.masked_scatter(pixel_mask.expand_as(images), _cast_back_(values, images))


# ------------------------------------------------------------------ the high-pass noise recipe


class NoiseRecipe(NamedTuple):
    """The official high-pass strategy's masking (Chin et al., ``Dataset/random_mask_hp.py``).

    Per image: with ``focal_p`` a focal mask (query: everything outside a random square of side
    ``focal_side`` x the image side becomes noise; negative: such a square becomes noise); else
    with ``spatial_p`` the grid cells are masked in all channels at once, otherwise each channel
    draws its own cells (channel-wise; 0.8 x 0.7 = 0.56 of the images). Noise is N(0, ``noise_std``)
    on normalised pixels, one cell-sized patch per call repeated in every masked cell.
    """

    noise_std: float
    focal_side: float
    focal_outside: bool  # True: the query's focal mask (keep a square); False: the negative's
    focal_p: float = 0.2
    spatial_p: float = 0.3


QUERY_RECIPE = NoiseRecipe(noise_std=0.18, focal_side=200 / 224, focal_outside=True)
NEGATIVE_RECIPE = NoiseRecipe(noise_std=0.14, focal_side=130 / 224, focal_outside=False)
RECIPE_DRAWS = 4  # uniform draws per image: focal?, spatial?, focal square top, left


def noise_recipe_fill(images: torch.Tensor, cell_masks: torch.Tensor, recipe: NoiseRecipe, draws: torch.Tensor,
                      noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(filled images, pixel mask (B, C, H, W)) of normalised (B, C, H, W) images.

    ``cell_masks`` (B, C, h, w): one independent grid mask per channel (channel 0's is used for all
    channels in the spatial case); ``draws`` (B, 4) U[0, 1) per image (``RECIPE_DRAWS``);
    ``noise`` (C, ph, pw) N(0, 1) cell patch, scaled by the recipe's std and tiled over the image.
    Draws come from the caller so a multi-process run can take them for its global batch.
    """
    b, c, height, width = images.shape
    if cell_masks.shape[:2] != (b, c) or cell_masks.dim() != 4:
        raise ValueError(f"cell_masks must be (B={b}, C={c}, h, w), got {tuple(cell_masks.shape)}")
    if draws.shape != (b, RECIPE_DRAWS):
        raise ValueError(f"draws must be ({b}, {RECIPE_DRAWS}), got {tuple(draws.shape)}")
    h, w = cell_masks.shape[-2:]
    spatial = (draws[:, 1] < recipe.spatial_p).view(b, 1, 1, 1)
    cells = torch.where(spatial, cell_masks[:, :1].expand_as(cell_masks), cell_masks)
    pixels = upsample_mask(cells.reshape(b * c, h, w), height, width).view(b, c, height, width)
    side_h = max(1, round(recipe.focal_side * height))
    side_w = max(1, round(recipe.focal_side * width))
    top = (draws[:, 2] * (height - side_h + 1)).long().clamp_(max=height - side_h).view(b, 1, 1)
    left = (draws[:, 3] * (width - side_w + 1)).long().clamp_(max=width - side_w).view(b, 1, 1)
    ys = torch.arange(height, device=images.device).view(1, -1, 1)
    xs = torch.arange(width, device=images.device).view(1, 1, -1)
    square = (ys >= top) & (ys < top + side_h) & (xs >= left) & (xs < left + side_w)  # (B, H, W)
    focal_pixels = (~square if recipe.focal_outside else square)[:, None].expand(b, c, height, width)
    focal = (draws[:, 0] < recipe.focal_p).view(b, 1, 1, 1)
    pixels = torch.where(focal, focal_pixels, pixels)
    ph, pw = noise.shape[-2:]
    tiled = noise.to(images.dtype).repeat(1, -(-height // ph), -(-width // pw))[:, :height, :width]
    return torch.where(pixels, recipe.noise_std * tiled[None], images), pixels
