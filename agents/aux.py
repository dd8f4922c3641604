"""Auxiliary objectives plugged into the SAC update (``aux=[curl,mcurl]``).

Each adapter takes what it needs from the update context (anchor features, the EMA encoder, the
replay buffer) and delegates the maths to ``representations.objectives``. Its own parameters (W, the
transformer) live in its own optimiser; the encoder is stepped once by the critic optimiser on the
summed critic + aux gradient.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from agents.sac import UpdateContext
from representations.modules.sequence import inverse_sqrt_warmup
from representations.objectives.curl import CURLObjective
from representations.objectives.mcurl import MaskedSequenceContrast
from representations.objectives.saliency_curl import SaliencyMasker


class _Aux(nn.Module):
    name = "aux"

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__()
        self.weight = float(settings.get("weight", 1.0))
        self.lr = float(settings.get("lr", 1e-3))

    def make_optimizer(self) -> torch.optim.Optimizer | None:
        params = [p for p in self.parameters() if p.requires_grad]
        return torch.optim.Adam(params, lr=self.lr) if params else None

    def after_step(self, step: int) -> None:
        return None


class CURLAux(_Aux):
    """CURL: anchor = the critic's features of its crop; positive = EMA encoder on a fresh crop."""

    name = "curl"

    def __init__(self, settings: Mapping[str, Any], feature_dim: int) -> None:
        super().__init__(settings)
        self.objective = CURLObjective(feature_dim)

    def compute(self, ctx: UpdateContext) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        agent = ctx.agent
        with torch.no_grad():
            positive = agent.critic_target.encoder(agent.crop(ctx.batch.obs))
        loss, metrics = self.objective(ctx.features, positive)
        return self.weight * loss, metrics


class SaliencyCURLAux(_Aux):
    """CURL with a saliency-masked query and foreground-masked hard negatives (weight alpha)."""

    name = "curl_saliency"

    def __init__(self, settings: Mapping[str, Any], feature_dim: int) -> None:
        super().__init__(settings)
        self.objective = CURLObjective(feature_dim)
        self.masker = SaliencyMasker(grid=int(settings.get("grid", 7)),
                                     query_ratio=tuple(settings.get("query_ratio", (0.05, 0.25))),
                                     negative_ratio=tuple(settings.get("negative_ratio", (0.4, 0.7))),
                                     fill=str(settings.get("fill", "zero")))
        self.alpha = float(settings.get("alpha", 2.0))
        self.hard_mode = str(settings.get("hard_mode", "term"))

    def compute(self, ctx: UpdateContext) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        agent, gen = ctx.agent, ctx.agent.generator
        target = agent.critic_target.encoder
        with torch.no_grad():
            query_saliency = target.conv_features(ctx.obs)
            key_view = agent.crop(ctx.batch.obs)
            key_conv = target.conv_features(key_view)
            positive = target.head(key_conv)
            hard_negative = target(self.masker.hard_negative_view(key_view, key_conv, gen))[:, None, :]
            query_view = self.masker.query_view(ctx.obs, query_saliency, gen)
        anchor = agent.critic.encoder(query_view)
        loss, metrics = self.objective(anchor, positive, hard_negative, self.alpha, self.hard_mode)
        return self.weight * loss, metrics


class MCURLAux(_Aux):
    """M-CURL on sequences sampled from replay inside one episode; transformer lr warm-up."""

    name = "mcurl"

    def __init__(self, settings: Mapping[str, Any], feature_dim: int) -> None:
        super().__init__(settings)
        self.seq_len = int(settings.get("seq_len", 32))
        self.num_seqs = int(settings.get("num_seqs", 16))
        self.warmup = int(settings.get("warmup", 1000))
        self.objective = MaskedSequenceContrast(
            feature_dim, depth=int(settings.get("depth", 2)), heads=int(settings.get("heads", 2)),
            ffn_dim=int(settings.get("ffn_dim", 100)), mask_prob=float(settings.get("mask_prob", 0.5)),
            temperature=float(settings.get("temperature", 1.0)), dropout=float(settings.get("dropout", 0.1)))
        self._scheduler: torch.optim.lr_scheduler.LambdaLR | None = None

    def make_optimizer(self) -> torch.optim.Optimizer | None:
        opt = super().make_optimizer()
        if opt is not None:
            self._scheduler = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda step: inverse_sqrt_warmup(step, self.warmup))
        return opt

    def after_step(self, step: int) -> None:
        if self._scheduler is not None:
            self._scheduler.step()

    def compute(self, ctx: UpdateContext) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        agent = ctx.agent
        if agent.replay is None or not hasattr(agent.replay, "sample_sequences"):
            raise RuntimeError("mcurl needs a pixel replay buffer attached to the agent (agent.replay)")
        seq = agent.replay.sample_sequences(self.num_seqs, self.seq_len)
        frames = agent.crop(seq.obs.flatten(0, 1))
        feats = agent.critic.encoder(frames).view(self.num_seqs, self.seq_len, -1)
        with torch.no_grad():
            targets = agent.critic_target.encoder(frames).view(self.num_seqs, self.seq_len, -1)
        loss, metrics = self.objective(feats, targets, agent.generator)
        return self.weight * loss, metrics


AUX_REGISTRY: dict[str, type[_Aux]] = {cls.name: cls for cls in (CURLAux, SaliencyCURLAux, MCURLAux)}
