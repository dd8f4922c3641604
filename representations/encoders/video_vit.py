"""Video ViT for masked video pretraining (M2CRL): tubelet tokens, joint or divided attention.

Tokens are indexed time-major: flat index t * N + s, with t over tubelet steps T' = T / tubelet
and s over the row-major patch grid (N cells). Positions are a learned spatial table plus a learned
temporal table, each resized when a view has another size or frame count (multi-crop local views).
Masks follow the library convention: True = masked.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from ..modules.patch import MaskToken, TubeletEmbed, to_float_pixels
from ..modules.positions import resize_grid_positions, resize_sequence_positions
from ..modules.transformer import (
    MLP,
    Attention,
    Block,
    DropPath,
    drop_path_rates,
    init_transformer_weights,
    scale_rows,
)
from .vit import gather_tokens


class VideoViTOutput(NamedTuple):
    """``cls`` (B, D); ``tokens`` (B, L, D) time-major; ``attention`` last-layer [CLS]->patch
    weights (B, heads, T', N), zero at tokens that were dropped by ``visible_idx``."""

    cls: torch.Tensor
    tokens: torch.Tensor | None = None
    attention: torch.Tensor | None = None


class DividedBlock(nn.Module):
    """TimeSformer block: temporal attention per location (through ``temporal_fc``), spatial attention
    per frame, then MLP.

    The [CLS] token (B, D) joins each frame's spatial attention and its per-frame updates are
    averaged, which is what makes its attention readable per frame. Patch tokens are (B, T', n, D).
    Stochastic depth draws where TimeSformer's does: per (clip, location) on the temporal branch, per
    (clip, frame) on the spatial one, per clip on the MLP.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm_t = nn.LayerNorm(dim, eps=1e-6)
        self.attn_t = Attention(dim, heads, qkv_bias)
        self.temporal_fc = nn.Linear(dim, dim)
        self.norm_s = nn.LayerNorm(dim, eps=1e-6)
        self.attn_s = Attention(dim, heads, qkv_bias)
        self.norm_mlp = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLP(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(
        self, cls: torch.Tensor, x: torch.Tensor, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        b, t, n, d = x.shape
        xt = x.transpose(1, 2).reshape(b * n, t, d)
        xt = xt + self.temporal_fc(self.drop_path(self.attn_t(self.norm_t(xt))[0]))
        x = xt.reshape(b, n, t, d).transpose(1, 2)
        seq = torch.cat([cls[:, None, None, :].expand(b, t, 1, d), x], dim=2).reshape(b * t, 1 + n, d)
        out, weights = self.attn_s(self.norm_s(seq), None, need_weights)
        out = self.drop_path(out).reshape(b, t, 1 + n, d)
        cls = cls + out[:, :, 0].mean(dim=1)
        x = x + out[:, :, 1:]
        keep = self.drop_path.scale(b, x)
        cls = cls + scale_rows(self.mlp(self.norm_mlp(cls)), keep)
        x = x + scale_rows(self.mlp(self.norm_mlp(x)), keep)
        if weights is not None:
            weights = weights.reshape(b, t, *weights.shape[1:])
        return cls, x, weights


class VideoViT(nn.Module):
    """Video (B, C, T, H, W) -> [CLS] features (B, width); ``feature_dim`` = ``width``.

    ``attention="joint"`` attends over all space-time tokens at once; ``"divided"`` alternates
    temporal and spatial attention (cheaper for long clips); its ``temporal_fc`` starts at zero, as
    TimeSformer's, so at initialisation no patch token mixes across time. ``drop_path``: stochastic
    depth rising linearly from 0 to this rate over the blocks. ``mask_token=True`` adds a learned token
    that replaces masked tubelets (``forward(video, mask=...)``) before positions are added.
    uint8 video is scaled to [0, 1]; float video is used as given.
    """

    def __init__(
        self,
        image_size: int = 224,
        patch_size: int = 16,
        num_frames: int = 8,
        tubelet_size: int = 2,
        in_channels: int = 3,
        width: int = 384,
        depth: int = 12,
        heads: int = 6,
        mlp_ratio: float = 4.0,
        attention: str = "joint",
        mask_token: bool = False,
        qkv_bias: bool = True,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        if attention not in ("joint", "divided"):
            raise ValueError(f"attention must be 'joint' or 'divided', got {attention!r}")
        if width % heads:
            raise ValueError(f"width {width} is not divisible by {heads} heads")
        if depth < 1:
            raise ValueError(f"VideoViT needs depth >= 1, got {depth}")
        self.init_kwargs = dict(
            image_size=image_size, patch_size=patch_size, num_frames=num_frames,
            tubelet_size=tubelet_size, in_channels=in_channels, width=width, depth=depth, heads=heads,
            mlp_ratio=mlp_ratio, attention=attention, mask_token=mask_token, qkv_bias=qkv_bias,
            drop_path=drop_path,
        )
        self.patch_embed = TubeletEmbed(in_channels, patch_size, tubelet_size, width)
        steps, rows, cols = self.patch_embed.grid_size(num_frames, image_size, image_size)
        self.grid, self.time_steps = (rows, cols), steps
        self.patch_size, self.tubelet_size = patch_size, tubelet_size
        self.attention, self.feature_dim, self.heads = attention, width, heads
        self.spatial_pos = nn.Parameter(torch.zeros(1, rows * cols, width))
        self.temporal_pos = nn.Parameter(torch.zeros(1, steps, width))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.mask_token = MaskToken(width) if mask_token else None
        block = Block if attention == "joint" else DividedBlock
        self.blocks = nn.ModuleList(block(width, heads, mlp_ratio, qkv_bias, rate)
                                    for rate in drop_path_rates(drop_path, depth))
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.apply(init_transformer_weights)
        for blk in self.blocks:
            if isinstance(blk, DividedBlock):
                nn.init.zeros_(blk.temporal_fc.weight)
                nn.init.zeros_(blk.temporal_fc.bias)
        for p in (self.spatial_pos, self.temporal_pos, self.cls_token):
            nn.init.trunc_normal_(p, std=0.02, a=-0.04, b=0.04)

    def token_grid(self, video: torch.Tensor) -> tuple[int, int, int]:
        """(T', rows, cols) of a clip, with a clear error for sizes the tubelet does not divide."""
        return self.patch_embed.grid_size(*video.shape[-3:])

    def patchify(self, video: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> (B, T'*N, tubelet*p*p*C) pixel targets in token order."""
        b, c = video.shape[:2]
        steps, rows, cols = self.token_grid(video)
        k, p = self.tubelet_size, self.patch_size
        x = video.reshape(b, c, steps, k, rows, p, cols, p).permute(0, 2, 4, 6, 3, 5, 7, 1)
        return x.reshape(b, steps * rows * cols, k * p * p * c)

    def _positions(self, steps: int, rows: int, cols: int) -> torch.Tensor:
        spatial = resize_grid_positions(self.spatial_pos, self.grid, (rows, cols))
        temporal = resize_sequence_positions(self.temporal_pos, steps)
        return temporal[0, :, None, :] + spatial[0, None, :, :]  # (T', N, D)

    def _expand_mask(self, mask: torch.Tensor, batch: int, steps: int, cells: int) -> torch.Tensor:
        if self.mask_token is None:
            raise ValueError("this VideoViT has no mask token; build it with mask_token=True to pass mask=")
        if mask.dtype != torch.bool:
            raise ValueError(f"mask must be bool (True = masked), got {mask.dtype}")
        flat = mask.reshape(batch, -1)
        if flat.shape[1] == cells:
            return flat[:, None, :].expand(batch, steps, cells)
        if flat.shape[1] == steps * cells:
            return flat.reshape(batch, steps, cells)
        raise ValueError(
            f"mask has {flat.shape[1]} cells per sample; expected {cells} (a tube) or {steps * cells} "
            f"({steps} tubelet steps x {cells} patches)"
        )

    def forward(
        self,
        video: torch.Tensor,
        mask: torch.Tensor | None = None,
        visible_idx: torch.Tensor | None = None,
        return_tokens: bool = False,
        return_attention: bool = False,
    ) -> torch.Tensor | VideoViTOutput:
        """[CLS] (B, D), or a ``VideoViTOutput`` when tokens or attention are asked for.

        ``mask`` (B, N) tube or (B, T', N) bool: masked tokens become the learned mask token.
        ``visible_idx`` (B, n) long keeps only some tokens: flat space-time indices for joint
        attention, spatial indices into N (the same cells in every step, a tube) for divided.
        """
        if video.dim() != 5:
            raise ValueError(f"VideoViT expects (B, C, T, H, W) video, got {tuple(video.shape)}")
        steps, rows, cols = self.token_grid(video)
        cells = rows * cols
        x = self.patch_embed(to_float_pixels(video))  # (B, T', N, D)
        batch, dim = x.shape[0], x.shape[-1]
        if mask is not None:
            x = self.mask_token(x, self._expand_mask(mask, batch, steps, cells))
        x = x + self._positions(steps, rows, cols)
        cls = self.cls_token.expand(batch, -1, -1)
        weights: torch.Tensor | None = None
        if self.attention == "joint":
            x = x.reshape(batch, steps * cells, dim)
            if visible_idx is not None:
                x = gather_tokens(x, visible_idx)
            x = torch.cat([cls, x], dim=1)
            for i, block in enumerate(self.blocks):
                x, w = block(x, None, return_attention and i == len(self.blocks) - 1)
                weights = w if w is not None else weights
            x = self.norm(x)
            cls_out, tokens = x[:, 0], x[:, 1:]
            if weights is not None:
                weights = self._scatter(weights[:, :, 0, 1:], visible_idx, steps * cells)
                weights = weights.reshape(batch, self.heads, steps, cells)
        else:
            if visible_idx is not None:
                idx = visible_idx[:, None, :, None].expand(batch, steps, visible_idx.shape[1], dim)
                x = torch.gather(x, 2, idx)
            cls = cls[:, 0]
            for i, block in enumerate(self.blocks):
                cls, x, w = block(cls, x, return_attention and i == len(self.blocks) - 1)
                weights = w if w is not None else weights
            cls_out, tokens = self.norm(cls), self.norm(x).flatten(1, 2)
            if weights is not None:  # (B, T', heads, 1+n, 1+n) -> (B, heads, T', n)
                weights = weights[:, :, :, 0, 1:].transpose(1, 2)
                weights = self._scatter(weights, visible_idx, cells)
        if not (return_tokens or return_attention):
            return cls_out
        return VideoViTOutput(cls_out, tokens if return_tokens else None, weights)

    @staticmethod
    def _scatter(weights: torch.Tensor, idx: torch.Tensor | None, total: int) -> torch.Tensor:
        """Put weights over kept tokens (B, ..., n) back on the full token axis (B, ..., total), zeros elsewhere."""
        if idx is None:
            return weights
        view = (idx.shape[0],) + (1,) * (weights.dim() - 2) + (idx.shape[1],)
        full = weights.new_zeros(*weights.shape[:-1], total)
        return full.scatter(-1, idx.reshape(view).expand_as(weights), weights)
