"""MoCo v2: query encoder + MLP head, EMA key encoder, a queue of past keys as negatives, T = 0.2.

Logits per query are [q.k+, q.queue (, alpha * q.hard)] / T with the positive in column 0 (MoCo v2
uses the queue, not the other keys of the batch, as negatives); the loss is
``losses.info_nce_logits(batch_negatives=False)`` + cross-entropy, the one place hard negatives are weighted. Subclasses
change only what the query sees and may add hard-negative inputs (``mask_views``), so the masked
variants share everything else with this baseline, random streams included: the augmentation
generator is consumed identically, masks use their own generator.

Multi-process: each rank scores its own queries; the keys of all ranks are gathered and enqueued
in rank order, so every rank holds the same queue. ``bn_splits`` > 1 emulates MoCo's shuffle-BN on
one process: queries are normalised in contiguous chunks and keys in interleaved chunks, so a
query and its key never share BatchNorm statistics.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..core import distributed as dist_utils
from ..data.augment import BatchAugment, CropParams
from ..losses import HARD_MODES, info_nce_logits
from ..modules.ema import EMA
from ..modules.heads import MLPHead
from .base import Batch, Objective, encode_with_map, pooled


@dataclass
class Views:
    """What one MoCo step has computed before masking; masking subclasses read it."""

    query: torch.Tensor  # augmented query views, float in [0, 1]
    key: torch.Tensor  # augmented key views, float in [0, 1]
    query_input: torch.Tensor  # query views in the training input domain (``prepare``)
    key_input: torch.Tensor  # key views in the training input domain: what the key encoder saw
    query_crop: CropParams
    key_crop: CropParams
    rows: torch.Tensor
    global_batch: int
    key_conv_map: torch.Tensor | None = None  # key encoder's last conv map on the key views


@dataclass
class Masked:
    """What a masking variant feeds the encoders, plus the masks that made it (for metrics and
    pictures). ``hard`` is None for plain MoCo and the random-mask baseline."""

    query: torch.Tensor
    hard: torch.Tensor | None = None
    query_mask: torch.Tensor | None = None  # (B, C, H, W) bool, True = filled
    hard_mask: torch.Tensor | None = None
    query_foreground: torch.Tensor | None = None  # (B, grid, grid) bool
    key_foreground: torch.Tensor | None = None


class MoCo(Objective):
    name = "moco"

    def __init__(self, encoder: nn.Module, augment: BatchAugment, *, dim: int = 128, hidden_dim: int = 512,
                 queue_size: int = 4096, temperature: float = 0.2, momentum: float = 0.99,
                 momentum_final: float | None = None, momentum_schedule: str = "constant",
                 bn_splits: int = 1, hard_weight: float = 2.0, hard_mode: str = "logit", **base_kwargs) -> None:
        super().__init__(encoder, **base_kwargs)
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if bn_splits < 1:
            raise ValueError(f"bn_splits must be >= 1, got {bn_splits}")
        if hard_mode not in HARD_MODES:
            raise ValueError(f"hard_mode must be 'logit' or 'term', got {hard_mode!r}")
        self.augment, self.temperature, self.bn_splits = augment, temperature, bn_splits
        self.hard_weight, self.hard_mode = float(hard_weight), hard_mode
        feature_dim = int(encoder.feature_dim)
        self.head = MLPHead(feature_dim, hidden_dim, dim, num_layers=2, norm=None)
        # (encoder, head) as one unregistered module for the EMA: its parameters are already
        # registered as self.encoder / self.head, so the state_dict holds each tensor once.
        query = nn.Sequential(self.encoder, self.head)
        object.__setattr__(self, "query", query)
        self._ema = EMA(query, base=momentum, final=momentum_final, schedule=momentum_schedule)
        self.key = self._ema.target
        queue = F.normalize(torch.randn(queue_size, dim, generator=torch.Generator().manual_seed(queue_size)), dim=1)
        self.register_buffer("queue", queue)
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    def configure(self, total_steps: int, steps_per_epoch: int) -> None:
        del steps_per_epoch
        self._ema.total_steps = total_steps

    def after_step(self, step: int) -> dict[str, float]:
        return {"momentum": self._ema.update(step)}

    # -- pieces ------------------------------------------------------------------------------------
    def _project(self, net: nn.Sequential, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        features, conv_map = encode_with_map(net[0], x)
        return net[1](pooled(features)), conv_map

    def _embed(self, net: nn.Sequential, x: torch.Tensor, interleave: bool
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(normalised projections, last conv map or None); with bn_splits > 1 BatchNorm sees one
        chunk at a time (keys in interleaved chunks, so a key never shares its query's chunk)."""
        splits = self.bn_splits if x.shape[0] % self.bn_splits == 0 else 1
        if splits == 1:
            z, conv_map = self._project(net, x)
            return F.normalize(z.float(), dim=1), conv_map
        b = x.shape[0]
        order = torch.arange(b, device=x.device)
        if interleave:
            order = order.view(b // splits, splits).t().reshape(-1)
        outs, maps = zip(*(self._project(net, chunk) for chunk in x[order].chunk(splits)))
        z = torch.empty(b, outs[0].shape[1], device=x.device, dtype=outs[0].dtype)
        z[order] = torch.cat(outs)
        conv_map = None
        if all(m is not None for m in maps):
            cat = torch.cat(maps)
            conv_map = torch.empty_like(cat)
            conv_map[order] = cat
        return F.normalize(z.float(), dim=1), conv_map

    @torch.no_grad()
    def _enqueue(self, keys: torch.Tensor) -> None:
        keys = dist_utils.all_gather_cat(keys)
        size = self.queue.shape[0]
        keys = keys[-size:]
        idx = (self.queue_ptr + torch.arange(keys.shape[0], device=keys.device)) % size
        self.queue[idx] = keys.to(self.queue.dtype)
        self.queue_ptr.copy_((self.queue_ptr + keys.shape[0]) % size)

    @torch.no_grad()
    def encode_keys(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Key projections (no gradient) and the key encoder's last conv map."""
        return self._embed(self.key, x, interleave=True)

    def mask_views(self, views: Views) -> Masked:
        """What the query encoder sees and the hard-negative inputs (the masking variants override)."""
        return Masked(query=views.query_input)

    def make_views(self, images: torch.Tensor, rows: torch.Tensor | None = None, total: int | None = None
                   ) -> tuple[Views, torch.Tensor]:
        """Augmented views of uint8 images and the key projections (one step's random draws)."""
        if rows is None:
            rows = torch.arange(images.shape[0], device=images.device)
        total = images.shape[0] if total is None else total
        gen = self.generators["augment"]
        q_view, q_crop = self.augment(images, gen, rows, total)
        k_view, k_crop = self.augment(images, gen, rows, total)
        q_in, k_in = self.prepare(q_view), self.prepare(k_view)
        k, conv_map = self.encode_keys(k_in)
        return Views(q_view, k_view, q_in, k_in, q_crop, k_crop, rows, total, conv_map), k

    # -- step --------------------------------------------------------------------------------------
    def forward(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        rows, total = self.random_rows(batch)
        views, k = self.make_views(batch["images"], rows, total)
        masked = self.mask_views(views)
        q, _ = self._embed(self.query, masked.query, interleave=False)
        hard = None if masked.hard is None else self.encode_keys(masked.hard)[0]
        logits, labels = info_nce_logits(q, k, temperature=self.temperature, batch_negatives=False,
                                         extra_negatives=self.queue.clone().detach(), hard_negatives=hard,
                                         hard_negative_weight=self.hard_weight, hard_mode=self.hard_mode)
        loss = F.cross_entropy(logits, labels)  # = losses.info_nce with the same arguments
        self._enqueue(k)
        metrics = {"acc": (logits.detach().argmax(dim=1) == labels).float().mean(),
                   "pos_sim": (q * k).sum(dim=1).mean().detach()}
        if hard is not None:
            metrics["hard_sim"] = (q * hard).sum(dim=1).mean().detach()
        return loss, metrics
