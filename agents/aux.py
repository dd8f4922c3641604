"""Auxiliary objectives plugged into the SAC update (``aux=[curl,mcurl]``).

Contract: an objective is an ``AuxObjective`` (``agents/sac.py``) built as
``cls(settings, feature_dim=..., action_repeat=..., num_conv_layers=...)``; it gets everything it may use through
``AuxInputs`` (anchor features, online/target encoders, a crop function, a sequence sampler, random
replay observations, the generator) and never the agent. ``configs/aux/<name>.yaml`` names its class
with ``_target_``, so a new objective is one Python file plus one YAML.

Encoder stepping: by default the encoder is stepped once, by the critic optimiser, on the summed
critic + aux gradient (``separate_step=False``). An objective with ``separate_step=True`` (official
M-CURL) gets its own optimiser over its parameters *and* the encoder's (at ``encoder_lr_scale`` x
its lr) and is stepped after the SAC update, as the official code does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from agents.sac import AuxInputs
from representations.core.errors import UserError
from representations.masking.frames import RANDOM, apply_bert_replacement, mask_observations
from representations.modules.sequence import constant_then_inverse_sqrt, inverse_sqrt_warmup
from representations.objectives.curl import CURLObjective
from representations.objectives.mcurl import MaskedSequenceContrast
from representations.objectives.saliency_curl import SaliencyMasker


class AuxBase(nn.Module):
    """Shared plumbing: loss weight, own Adam optimiser, optional per-group LR schedules."""

    name = "aux"
    separate_step = False

    def __init__(self, settings: Mapping[str, Any], *, feature_dim: int, action_repeat: int = 1,
                 num_conv_layers: int = 4) -> None:
        super().__init__()
        self.weight = float(settings.get("weight", 1.0))
        self.lr = float(settings.get("lr", 1e-3))
        self.feature_dim, self.action_repeat, self.num_conv_layers = feature_dim, action_repeat, num_conv_layers
        self._scheduler: torch.optim.lr_scheduler.LambdaLR | None = None

    def compute(self, inputs: AuxInputs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def param_groups(self, encoder_params: list[nn.Parameter]) -> list[dict[str, Any]]:
        """Optimiser groups: its own trainable parameters (the encoder only with ``separate_step``)."""
        own = [p for p in self.parameters() if p.requires_grad]
        return [{"params": own, "lr": self.lr}] if own else []

    def schedules(self) -> list[Callable[[int], float]] | None:
        """One LR multiplier per group of :meth:`param_groups`, or None for constant rates."""
        return None

    def make_optimizer(self, encoder_params: list[nn.Parameter]) -> torch.optim.Optimizer | None:
        groups = self.param_groups(encoder_params)
        if not groups:
            return None
        opt = torch.optim.Adam(groups)
        if (lambdas := self.schedules()) is not None:
            self._scheduler = torch.optim.lr_scheduler.LambdaLR(opt, lambdas)
        return opt

    def after_step(self) -> None:
        if self._scheduler is not None:
            self._scheduler.step()

    def schedule_state(self) -> dict[str, int]:
        return {"last_epoch": self._scheduler.last_epoch} if self._scheduler is not None else {}

    def load_schedule_state(self, state: Mapping[str, int]) -> None:
        if self._scheduler is not None and "last_epoch" in state:
            self._scheduler.last_epoch = int(state["last_epoch"])


class CURLAux(AuxBase):
    """CURL: anchor = the critic's features of its crop; positive = EMA encoder on a fresh crop."""

    name = "curl"

    def __init__(self, settings: Mapping[str, Any], **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self.objective = CURLObjective(self.feature_dim)

    def compute(self, inputs: AuxInputs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        with torch.no_grad():
            positive = inputs.target(inputs.crop(inputs.batch.obs))
        loss, metrics = self.objective(inputs.anchor, positive)
        return self.weight * loss, metrics


class SaliencyCURLAux(AuxBase):
    """CURL with a saliency-masked query and foreground-masked hard negatives (weight alpha)."""

    name = "curl_saliency"

    def __init__(self, settings: Mapping[str, Any], **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self.objective = CURLObjective(self.feature_dim)
        self.masker = SaliencyMasker(grid=int(settings.get("grid", 7)),
                                     query_ratio=tuple(settings.get("query_ratio", (0.05, 0.25))),
                                     negative_ratio=tuple(settings.get("negative_ratio", (0.4, 0.7))),
                                     fill=str(settings.get("fill", "zero")),
                                     num_layers=self.num_conv_layers)
        self.alpha = float(settings.get("alpha", 2.0))
        self.hard_mode = str(settings.get("hard_mode", "logit"))
        if self.hard_mode != "logit":
            raise UserError(f"curl_saliency hard_mode must be 'logit' (alpha inside the logit), "
                             f"got {self.hard_mode!r}")

    def compute(self, inputs: AuxInputs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        gen, target = inputs.generator, inputs.target
        with torch.no_grad():
            query_saliency = target.conv_features(inputs.obs)
            key_view = inputs.crop(inputs.batch.obs)
            key_conv = target.conv_features(key_view)
            positive = target.head(key_conv)
            hard_negative = target(self.masker.hard_negative_view(key_view, key_conv, gen))[:, None, :]
            query_view = self.masker.query_view(inputs.obs, query_saliency, gen)
        anchor = inputs.online(query_view)
        loss, metrics = self.objective(anchor, positive, hard_negative, self.alpha, self.hard_mode)
        return self.weight * loss, metrics


class MCURLAux(AuxBase):
    """M-CURL on sequences sampled from replay inside one episode (official defaults, see docs/parity.md).

    ``mask_space=observation``: the stacked observation is blanked / swapped for a random replay
    observation before the CNN; ``features``: the CNN features are zeroed / swapped. The masked input
    and the key sequence are cropped independently.
    """

    name = "mcurl"

    def __init__(self, settings: Mapping[str, Any], **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self.seq_len = int(settings.get("seq_len", 32))
        self.num_seqs = int(settings.get("num_seqs", 16))
        self.mask_space = str(settings.get("mask_space", "observation"))
        if self.mask_space not in ("observation", "features"):
            raise UserError(f"mcurl mask_space must be 'observation' or 'features', got {self.mask_space!r}")
        step = str(settings.get("encoder_step", "separate"))
        if step not in ("separate", "joint"):
            raise UserError(f"mcurl encoder_step must be 'separate' or 'joint', got {step!r}")
        self.separate_step = step == "separate"
        self.encoder_lr_scale = float(settings.get("encoder_lr_scale", 2.0))
        self.encoder_annealing = bool(settings.get("encoder_annealing", True))
        self.warmup = max(1, int(settings.get("warmup_env_steps", 24000)) // max(1, self.action_repeat))
        self.objective = MaskedSequenceContrast(
            self.feature_dim, depth=int(settings.get("depth", 2)), heads=int(settings.get("heads", 1)),
            ffn_dim=int(settings.get("ffn_dim", 100)), mask_prob=float(settings.get("mask_prob", 0.5)),
            temperature=float(settings.get("temperature", 1.0)), dropout=float(settings.get("dropout", 0.1)))

    def param_groups(self, encoder_params: list[nn.Parameter]) -> list[dict[str, Any]]:
        groups = super().param_groups(encoder_params)
        if self.separate_step and encoder_params:
            groups.append({"params": list(encoder_params), "lr": self.encoder_lr_scale * self.lr})
        return groups

    def schedules(self) -> list[Callable[[int], float]]:
        warm = self.warmup
        lambdas: list[Callable[[int], float]] = [lambda s: inverse_sqrt_warmup(s, warm)]
        if self.separate_step:
            lambdas.append((lambda s: constant_then_inverse_sqrt(s, warm)) if self.encoder_annealing
                           else (lambda s: 1.0))
        return lambdas

    def compute(self, inputs: AuxInputs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if inputs.sequences is None:
            raise RuntimeError("mcurl needs a pixel replay buffer that samples sequences")
        n, length, gen = self.num_seqs, self.seq_len, inputs.generator
        seq = inputs.sequences(n, length).obs  # (N, L, C, H, W), uncropped
        keys_view = inputs.crop(seq.flatten(0, 1))
        selected, codes = self.objective.plan(n, length, gen, seq.device)
        if self.mask_space == "observation":
            n_random = int((codes == RANDOM).sum())
            if n_random and inputs.random_observations is None:
                raise RuntimeError("mcurl mask_space=observation needs random replay observations")
            replacements = inputs.random_observations(n_random) if n_random else None
            masked = mask_observations(seq, codes, replacements)
            feats = inputs.online(inputs.crop(masked.flatten(0, 1))).view(n, length, -1)
        else:
            feats = inputs.online(inputs.crop(seq.flatten(0, 1))).view(n, length, -1)
            feats = apply_bert_replacement(feats, codes, gen)
        with torch.no_grad():
            targets = inputs.target(keys_view).view(n, length, -1)
        loss, metrics = self.objective.contrast(feats, targets, selected)
        return self.weight * loss, metrics


BUILTIN: dict[str, type[AuxBase]] = {cls.name: cls for cls in (CURLAux, SaliencyCURLAux, MCURLAux)}
