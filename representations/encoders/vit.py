"""Vision Transformer that can run on a subset of its patch tokens (MAE / MiCL style).

Positions are added to every patch token *before* any token is dropped, so a visible subset keeps
its place in the image. After that the blocks are permutation-equivariant: the order of
``visible_idx`` does not change the [CLS] output, only which tokens attention can see does.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from ..modules.patch import PatchEmbed, to_float_pixels
from ..modules.positions import resize_grid_positions
from ..modules.transformer import Block, init_transformer_weights


class ViTOutput(NamedTuple):
    """``cls``: (B, D) for one [CLS], (B, num_cls, D) for several; ``tokens``: (B, n, D) patch outputs
    in the order of ``visible_idx``; ``attention``: last block's weights (B, heads, L, L), L = num_cls + n."""

    cls: torch.Tensor
    tokens: torch.Tensor | None = None
    attention: torch.Tensor | None = None


def gather_tokens(tokens: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """tokens (B, N, D), idx (B, n) long -> (B, n, D)."""
    if idx.dim() != 2 or idx.shape[0] != tokens.shape[0]:
        raise ValueError(f"visible_idx must be (B={tokens.shape[0]}, n), got {tuple(idx.shape)}")
    return torch.gather(tokens, 1, idx.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))


def sincos_2d_positions(grid: tuple[int, int], dim: int) -> torch.Tensor:
    """Fixed (1, rows * cols, dim) MAE / MiCL 2D sin-cos table, row-major over the grid.

    The first half of the channels encodes the column, the second the row; each half is
    [sin(p * w), cos(p * w)] with w_i = 10000^(-i / (dim / 4)), i < dim / 4.
    """
    if dim % 4:
        raise ValueError(f"sin-cos positions need a width divisible by 4, got {dim}")
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim / 4))
    rows, cols = torch.meshgrid(torch.arange(grid[0], dtype=torch.float64),
                                torch.arange(grid[1], dtype=torch.float64), indexing="ij")

    def half(pos: torch.Tensor) -> torch.Tensor:
        angles = pos.reshape(-1, 1) * omega[None]
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)

    return torch.cat([half(cols), half(rows)], dim=1).float()[None]


POSITIONS = ("learned", "sincos")


class ViT(nn.Module):
    """Images (B, C, H, W) -> [CLS] features; ``feature_dim`` = ``width``.

    uint8 images are scaled to [0, 1] here; float images are used as given. Other image sizes that
    the patch divides are accepted: the position table is resized bicubically. ``positions``:
    "learned" or "sincos" (fixed 2D sin-cos, not trained, as MAE / MiCL).
    """

    def __init__(
        self,
        image_size: int = 32,
        patch_size: int = 4,
        in_channels: int = 3,
        width: int = 192,
        depth: int = 12,
        heads: int = 3,
        mlp_ratio: float = 4.0,
        num_cls: int = 1,
        qkv_bias: bool = True,
        positions: str = "learned",
    ) -> None:
        super().__init__()
        if image_size % patch_size or image_size < patch_size:
            raise ValueError(
                f"image_size {image_size} is not a positive multiple of patch_size {patch_size}"
            )
        if num_cls < 1:
            raise ValueError(f"ViT needs num_cls >= 1, got {num_cls}")
        if depth < 0:
            raise ValueError(f"ViT depth must be >= 0, got {depth}")
        if positions not in POSITIONS:
            raise ValueError(f"positions must be 'learned' or 'sincos', got {positions!r}")
        if width % heads:
            raise ValueError(f"width {width} is not divisible by {heads} heads")
        self.init_kwargs = dict(
            image_size=image_size, patch_size=patch_size, in_channels=in_channels, width=width,
            depth=depth, heads=heads, mlp_ratio=mlp_ratio, num_cls=num_cls, qkv_bias=qkv_bias,
            positions=positions,
        )
        self.image_size, self.patch_size, self.num_cls = image_size, patch_size, num_cls
        self.grid = (image_size // patch_size, image_size // patch_size)
        self.num_patches = self.grid[0] * self.grid[1]
        self.feature_dim = width
        self.heads = heads
        self.patch_embed = PatchEmbed(in_channels, patch_size, width)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_patches, width))
        self.cls_tokens = nn.Parameter(torch.zeros(1, num_cls, width))
        self.blocks = nn.ModuleList(Block(width, heads, mlp_ratio, qkv_bias) for _ in range(depth))
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.apply(init_transformer_weights)
        if positions == "sincos":  # a parameter that never trains, so checkpoints keep one layout
            self.pos_embed.data.copy_(sincos_2d_positions(self.grid, width))
            self.pos_embed.requires_grad_(False)
        else:
            nn.init.trunc_normal_(self.pos_embed, std=0.02, a=-0.04, b=0.04)
        nn.init.trunc_normal_(self.cls_tokens, std=0.02, a=-0.04, b=0.04)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Patch embeddings plus positions, (B, N, D), N in row-major grid order."""
        x = self.patch_embed(to_float_pixels(images))
        grid = self.patch_embed.grid_size(images.shape[-2], images.shape[-1])
        return x + resize_grid_positions(self.pos_embed, self.grid, grid)

    def patchify(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, N, p*p*C) pixel targets in token order (for pixel reconstruction)."""
        b, c, h, w = images.shape
        p = self.patch_size
        rows, cols = self.patch_embed.grid_size(h, w)
        x = images.reshape(b, c, rows, p, cols, p).permute(0, 2, 4, 3, 5, 1)
        return x.reshape(b, rows * cols, p * p * c)

    def _run(
        self, x: torch.Tensor, attn_mask: torch.Tensor | None, need_weights: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        weights = None
        for i, block in enumerate(self.blocks):
            last = i == len(self.blocks) - 1
            x, w = block(x, attn_mask, need_weights and last)
            if w is not None:
                weights = w
        return self.norm(x), weights

    def forward(
        self,
        images: torch.Tensor,
        visible_idx: torch.Tensor | None = None,
        return_tokens: bool = False,
        return_attention: bool = False,
    ) -> torch.Tensor | ViTOutput:
        """[CLS] features, or a ``ViTOutput`` when tokens or attention are asked for.

        ``visible_idx`` (B, n) long selects the patch tokens that enter the transformer.
        ``return_attention`` needs depth >= 1 (there is no attention otherwise).
        """
        if return_attention and not self.blocks:
            raise ValueError("return_attention needs a ViT with depth >= 1")
        x = self.embed(images)
        if visible_idx is not None:
            x = gather_tokens(x, visible_idx)
        x = torch.cat([self.cls_tokens.expand(x.shape[0], -1, -1), x], dim=1)
        x, weights = self._run(x, None, return_attention)
        cls = x[:, 0] if self.num_cls == 1 else x[:, : self.num_cls]
        if not (return_tokens or return_attention):
            return cls
        return ViTOutput(cls, x[:, self.num_cls :] if return_tokens else None, weights)

    def forward_groups(
        self, images: torch.Tensor, groups: list[torch.Tensor] | tuple[torch.Tensor, ...]
    ) -> torch.Tensor:
        """Run disjoint token groups independently in one call; returns (B, G, D) [CLS] outputs.

        Group g gets [CLS] token g when ``num_cls == G``, otherwise all groups share [CLS] 0. Each
        group attends only to itself, so the result equals G separate ``forward`` calls. Equal-sized
        groups are folded into the batch; unequal ones share one sequence with a block-diagonal mask.
        """
        if len(groups) < 1:
            raise ValueError("forward_groups needs at least one index group")
        num_groups = len(groups)
        if self.num_cls not in (1, num_groups):
            raise ValueError(f"ViT has {self.num_cls} [CLS] tokens; use 1 or one per group ({num_groups})")
        x = self.embed(images)
        batch, dim = x.shape[0], x.shape[-1]
        cls_idx = list(range(num_groups)) if self.num_cls == num_groups else [0] * num_groups
        cls = [self.cls_tokens[:, i : i + 1].expand(batch, -1, -1) for i in cls_idx]
        parts = [torch.cat([c, gather_tokens(x, idx)], dim=1) for c, idx in zip(cls, groups)]
        sizes = [p.shape[1] for p in parts]
        if len(set(sizes)) == 1:
            folded = torch.cat(parts, dim=0)  # (G*B, 1+n, D), group-major
            out, _ = self._run(folded, None, False)
            return out[:, 0].reshape(num_groups, batch, dim).transpose(0, 1)
        seq = torch.cat(parts, dim=1)
        owner = torch.repeat_interleave(
            torch.arange(num_groups, device=seq.device), torch.tensor(sizes, device=seq.device)
        )
        attn_mask = owner[:, None] == owner[None, :]
        out, _ = self._run(seq, attn_mask, False)
        starts = [sum(sizes[:g]) for g in range(num_groups)]
        return out[:, starts]
