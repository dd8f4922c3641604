"""MoCo v2: query encoder + MLP head, EMA key encoder, a queue of past keys as negatives, T = 0.2.

Logits per query are [q.k+, q.queue] / T with the positive in column 0 (MoCo v2 uses the queue,
not the other keys of the batch, as negatives). Subclasses change only what the query sees
(``query_input``) and may add one hard-negative key per query (``hard_negatives``), so the masked
variants share everything else with this baseline, random streams included: the augmentation
generator is consumed identically, masks use their own generator.

Multi-process: each rank scores its own queries; the keys of all ranks are gathered and enqueued
in rank order, so every rank holds the same queue. ``bn_splits`` > 1 emulates MoCo's shuffle-BN on
one process: queries are normalised in contiguous chunks and keys in interleaved chunks, so a
query and its key never share BatchNorm statistics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..core import distributed as dist_utils
from ..data.augment import BatchAugment, CropParams
from ..modules.ema import EMA
from ..modules.heads import MLPHead
from .base import Batch, Objective


def moco_logits(query: torch.Tensor, key: torch.Tensor, queue: torch.Tensor, temperature: float,
                hard: torch.Tensor | None = None, hard_weight: float = 1.0,
                hard_mode: str = "logit") -> torch.Tensor:
    """(B, 1 + K [+ 1]) logits of L2-normalised ``query``/``key`` (B, D) against ``queue`` (K, D).

    Column 0 is the positive. ``hard`` (B, D) adds one negative per query: with ``hard_mode``
    "logit" its similarity is multiplied by ``hard_weight`` inside the exponent (the convention of
    ``representations.losses.info_nce``'s ``extra_negative_weight``); with "term" the term
    exp(s / T) is multiplied by ``hard_weight`` (log-weight added to the logit).
    """
    positive = (query * key).sum(dim=1, keepdim=True)
    negatives = query @ queue.t()
    parts = [positive, negatives]
    if hard is not None:
        sim = (query * hard).sum(dim=1, keepdim=True)
        if hard_mode == "logit":
            parts.append(sim * hard_weight)
        elif hard_mode == "term":
            parts.append(sim + temperature * math.log(hard_weight))
        else:
            raise ValueError(f"hard_mode must be 'logit' or 'term', got {hard_mode!r}")
    return torch.cat(parts, dim=1) / temperature


@dataclass
class Views:
    """What one MoCo step has computed so far; masking subclasses read it."""

    query: torch.Tensor  # augmented query views, float in [0, 1]
    key: torch.Tensor  # augmented key views (prepared: after the input filter)
    query_crop: CropParams
    key_crop: CropParams
    rows: torch.Tensor
    global_batch: int
    key_conv_map: torch.Tensor | None = None  # key encoder's last conv map on the key views
    key_raw: torch.Tensor | None = None  # key views before the input filter


class MoCo(Objective):
    name = "moco"

    def __init__(self, encoder: nn.Module, augment: BatchAugment, *, dim: int = 128, hidden_dim: int = 512,
                 queue_size: int = 4096, temperature: float = 0.2, momentum: float = 0.99,
                 momentum_final: float | None = None, momentum_schedule: str = "constant",
                 bn_splits: int = 1, **base_kwargs) -> None:
        super().__init__(encoder, **base_kwargs)
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if bn_splits < 1:
            raise ValueError(f"bn_splits must be >= 1, got {bn_splits}")
        self.augment, self.temperature, self.bn_splits = augment, temperature, bn_splits
        feature_dim = int(encoder.feature_dim)
        self.head = MLPHead(feature_dim, hidden_dim, dim, num_layers=2, norm=None)
        # (encoder, head) as one unregistered module for the EMA: its parameters are already
        # registered as self.encoder / self.head, so the state_dict holds each tensor once.
        query = nn.Sequential(self.encoder, self.head)
        object.__setattr__(self, "query", query)
        self._ema = EMA(query, base=momentum, final=momentum_final, schedule=momentum_schedule)
        self.key = self._ema.target
        self.hard_weight, self.hard_mode = 1.0, "logit"
        queue = F.normalize(torch.randn(queue_size, dim, generator=torch.Generator().manual_seed(queue_size)), dim=1)
        self.register_buffer("queue", queue)
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    def configure(self, total_steps: int) -> None:
        self._ema.total_steps = total_steps

    def after_step(self, step: int) -> dict[str, float]:
        return {"momentum": self._ema.update(step)}

    # -- pieces ------------------------------------------------------------------------------------
    def _embed(self, net: nn.Sequential, x: torch.Tensor, interleave: bool
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(normalised projections, last conv map or None); with bn_splits > 1 BatchNorm sees one
        chunk at a time (keys in interleaved chunks, so a key never shares its query's chunk)."""
        splits = self.bn_splits if x.shape[0] % self.bn_splits == 0 else 1
        if splits == 1:
            z = net[1](self.encode(net[0], x))
            return F.normalize(z.float(), dim=1), getattr(net[0], "last_conv_map", None)
        b = x.shape[0]
        order = torch.arange(b, device=x.device)
        if interleave:
            order = order.view(b // splits, splits).t().reshape(-1)
        outs, maps = [], []
        for chunk in x[order].chunk(splits):
            outs.append(net[1](self.encode(net[0], chunk)))
            maps.append(getattr(net[0], "last_conv_map", None))
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

    def query_input(self, views: Views) -> torch.Tensor:
        """What the query encoder sees (the masking variants override this)."""
        return self.prepare(views.query)

    def hard_negatives(self, views: Views) -> torch.Tensor | None:
        """(B, D) normalised hard-negative keys, or None (plain MoCo)."""
        del views
        return None

    # -- step --------------------------------------------------------------------------------------
    def forward(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        images = batch["images"]
        rows, total = self.random_rows(batch)
        gen = self.generators["augment"]
        q_view, q_crop = self.augment(images, gen, rows, total)
        k_view, k_crop = self.augment(images, gen, rows, total)
        k_prepared = self.prepare(k_view)
        k, conv_map = self.encode_keys(k_prepared)
        views = Views(q_view, k_prepared, q_crop, k_crop, rows, total, conv_map, k_view)
        q, _ = self._embed(self.query, self.query_input(views), interleave=False)
        hard = self.hard_negatives(views)
        logits = self.logits(q, k, hard)
        labels = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
        loss = F.cross_entropy(logits, labels)
        self._enqueue(k)
        metrics = {
            "acc": (logits.argmax(dim=1) == 0).float().mean().detach(),
            "pos_sim": (q * k).sum(dim=1).mean().detach(),
        }
        if hard is not None:
            metrics["hard_sim"] = (q * hard).sum(dim=1).mean().detach()
        return loss, metrics

    def logits(self, q: torch.Tensor, k: torch.Tensor, hard: torch.Tensor | None) -> torch.Tensor:
        return moco_logits(q, k, self.queue.clone().detach(), self.temperature, hard, self.hard_weight,
                           self.hard_mode)
