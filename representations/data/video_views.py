"""M2CRL / SVT multi-view clip sampling: 2 global and L local views per clip, batched on the device.

Temporal sampling follows the official code: global view 1 spans the clip without its last
``global_offset`` share, view 2 without its first (so they overlap but differ), each with its own
frame count (8 and 16 in the paper); every local view takes its own frame count from a random
window of ``local_span`` of the clip (1/8 in the paper). Frames are picked at evenly spaced
positions. Spatial and colour augmentation is ``BatchAugment`` on the frames folded into channel
groups, so one crop, flip, jitter and grey decision covers all frames of a view (temporal
consistency) while every view and clip draws its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from .augment import AugmentConfig, BatchAugment


@dataclass
class MultiViewConfig:
    """Defaults = the paper / official code (224 and 96 px, 8 and 16 global frames, 8 locals of 2-16 frames,
    crop scales 0.4-1 and 0.05-0.4, flip 0.5, jitter 0.4/0.4/0.2 at p 0.8, grey 0.2, no blur: the
    official blur and solarisation are no-ops)."""

    global_size: int = 224
    local_size: int = 96
    global_frames: tuple[int, ...] = (8, 16)
    local_frames: tuple[int, ...] = (2, 2, 4, 4, 8, 8, 16, 16)
    global_offset: float = 0.025  # official: 5 frames of a ~200-frame video
    local_span: float = 0.125
    global_scale: tuple[float, float] = (0.4, 1.0)
    local_scale: tuple[float, float] = (0.05, 0.4)
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.0
    grey_p: float = 0.2
    blur_p: float = 0.0

    def __post_init__(self) -> None:
        self.global_frames = tuple(int(f) for f in self.global_frames)
        self.local_frames = tuple(int(f) for f in self.local_frames)
        self.global_scale = tuple(float(s) for s in self.global_scale)  # type: ignore[assignment]
        self.local_scale = tuple(float(s) for s in self.local_scale)  # type: ignore[assignment]
        if len(self.global_frames) < 1:
            raise ValueError("need at least one global view")
        if min(self.global_frames + self.local_frames) < 1:
            raise ValueError(f"every view needs >= 1 frame, got {self.global_frames} and {self.local_frames}")
        if not 0.0 <= self.global_offset < 0.5:
            raise ValueError(f"global_offset must be in [0, 0.5), got {self.global_offset}")
        if not 0.0 < self.local_span <= 1.0:
            raise ValueError(f"local_span must be in (0, 1], got {self.local_span}")

    def augment_config(self, size: int, scale: tuple[float, float]) -> AugmentConfig:
        return AugmentConfig(size=size, scale=scale, flip_p=self.flip_p, jitter_p=self.jitter_p,
                             brightness=self.brightness, contrast=self.contrast, saturation=self.saturation,
                             hue=self.hue, grey_p=self.grey_p, blur_p=self.blur_p)


class Views(NamedTuple):
    """Float views in [0, 1], each (B, C, T_v, S, S): the global ones first, then the local ones."""

    globals: list[torch.Tensor]
    locals: list[torch.Tensor]


def frame_positions(start: torch.Tensor, stop: torch.Tensor, count: int) -> torch.Tensor:
    """(B, count) frame indices evenly spaced over [start, stop] (inclusive, truncated like torch.linspace().long())."""
    steps = torch.linspace(0.0, 1.0, count, device=start.device)
    return (start[:, None] + (stop - start)[:, None] * steps[None]).long()


def take_frames(clips: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """clips (B, C, T, H, W), idx (B, n) -> (B, C, n, H, W)."""
    b, c, _, h, w = clips.shape
    gather = idx[:, None, :, None, None].expand(b, c, idx.shape[1], h, w)
    return torch.gather(clips, 2, gather)


def fold_frames(video: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) -> (B, T*C, H, W) with frame-major channel groups (what BatchAugment jitters as one)."""
    b, c, t, h, w = video.shape
    return video.permute(0, 2, 1, 3, 4).reshape(b, t * c, h, w)


def unfold_frames(x: torch.Tensor, channels: int) -> torch.Tensor:
    b, tc, h, w = x.shape
    return x.reshape(b, tc // channels, channels, h, w).permute(0, 2, 1, 3, 4)


class MultiViewSampler:
    """uint8 clips (B, C, T, H, W) -> ``Views``; random draws for the global batch, indexed by ``rows``."""

    def __init__(self, config: MultiViewConfig | None = None) -> None:
        self.config = config or MultiViewConfig()
        cfg = self.config
        self.global_augment = BatchAugment(cfg.augment_config(cfg.global_size, cfg.global_scale))
        self.local_augment = BatchAugment(cfg.augment_config(cfg.local_size, cfg.local_scale))

    def __call__(self, clips: torch.Tensor, generator: torch.Generator | None = None,
                 rows: torch.Tensor | None = None, global_batch: int | None = None) -> Views:
        if clips.dim() != 5:
            raise ValueError(f"expected clips (B, C, T, H, W), got {tuple(clips.shape)}")
        cfg = self.config
        batch, channels, length = clips.shape[:3]
        total = batch if global_batch is None else int(global_batch)
        rows = torch.arange(batch, device=clips.device) if rows is None else rows.to(clips.device)
        last = torch.full((batch,), float(length - 1), device=clips.device)
        offset = cfg.global_offset * (length - 1)
        globals_: list[torch.Tensor] = []
        for g, count in enumerate(cfg.global_frames):
            start = torch.full_like(last, offset if g % 2 else 0.0)
            stop = last - (0.0 if g % 2 else offset)
            frames = take_frames(clips, frame_positions(start, stop, count))
            globals_.append(self._augment(self.global_augment, frames, generator, rows, total))
        span = max(cfg.local_span * (length - 1), 0.0)
        locals_: list[torch.Tensor] = []
        for count in cfg.local_frames:
            u = torch.rand(total, generator=generator,
                           device=generator.device if generator is not None else clips.device)
            start = u.to(clips.device)[rows] * (length - 1 - span)
            frames = take_frames(clips, frame_positions(start, start + span, count))
            locals_.append(self._augment(self.local_augment, frames, generator, rows, total))
        return Views(globals_, locals_)

    @staticmethod
    def _augment(augment: BatchAugment, frames: torch.Tensor, generator: torch.Generator | None,
                 rows: torch.Tensor, total: int) -> torch.Tensor:
        out, _ = augment(fold_frames(frames), generator, rows, total)
        return unfold_frames(out, frames.shape[1])
