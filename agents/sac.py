"""SAC with a shared pixel encoder (CURL / SAC-AE design) and pluggable auxiliary objectives.

One update = critic step (critic loss + every aux loss, summed, so the encoder gets exactly one
optimiser step from one gradient), then every ``actor_update_freq`` updates an actor and temperature
step on detached conv features, and every ``target_update_freq`` updates the EMA targets (Q heads
with ``critic_tau``, encoder with ``encoder_tau``).
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from agents.augment import center_crop, random_crop
from agents.networks import Actor, Critic
from agents.replay import Batch
from representations.encoders.conv import ConvEncoder
from representations.modules.ema import ema_update


@dataclass
class SACConfig:
    """Defaults are the CURL reference settings (DESIGN.md)."""

    hidden_dim: int = 1024
    feature_dim: int = 50
    num_conv_layers: int = 4
    num_filters: int = 32
    discount: float = 0.99
    init_temperature: float = 0.1
    alpha_lr: float = 1e-4
    alpha_beta: float = 0.5
    actor_lr: float = 1e-3
    critic_lr: float = 1e-3
    actor_beta: float = 0.9
    critic_beta: float = 0.9
    critic_tau: float = 0.01
    encoder_tau: float = 0.05
    actor_update_freq: int = 2
    target_update_freq: int = 2
    image_size: int = 84  # crop size seen by the encoder
    log_std_min: float = -10.0
    log_std_max: float = 2.0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class UpdateContext:
    """What an auxiliary objective may use during one agent update."""

    batch: Batch  # uncropped sample (pixels at render size)
    obs: torch.Tensor  # the critic's cropped observations
    features: torch.Tensor  # encoder(obs) with gradient (anchor features)
    conv_map: torch.Tensor  # last conv map of obs, with gradient
    agent: SACAgent
    step: int


class AuxObjective(Protocol):
    """An auxiliary loss trained jointly with the critic; owns its extra parameters and optimiser."""

    name: str

    def compute(self, ctx: UpdateContext) -> tuple[torch.Tensor, dict[str, torch.Tensor]]: ...

    def make_optimizer(self) -> torch.optim.Optimizer | None: ...

    def after_step(self, step: int) -> None: ...


class SACAgent(nn.Module):
    def __init__(self, obs_shape: Sequence[int], action_dim: int, config: SACConfig | None = None,
                 aux: Sequence[nn.Module] = (), device: str | torch.device = "cpu", pixels: bool = True,
                 generator: torch.Generator | None = None,
                 autocast: Callable[[], AbstractContextManager[None]] = contextlib.nullcontext) -> None:
        super().__init__()
        self.autocast = autocast
        self.cfg = cfg = config or SACConfig()
        self.pixels = pixels
        self.device_ = torch.device(device)
        self.action_dim = action_dim
        self.generator = generator
        if pixels:
            enc_kwargs = dict(in_channels=obs_shape[0], image_size=cfg.image_size, num_layers=cfg.num_conv_layers,
                              num_filters=cfg.num_filters, feature_dim=cfg.feature_dim)
            critic_enc: ConvEncoder | None = ConvEncoder(**enc_kwargs)
            actor_enc: ConvEncoder | None = ConvEncoder(**enc_kwargs)
            feat = cfg.feature_dim
        else:
            critic_enc = actor_enc = None
            feat = int(np.prod(obs_shape))
        self.critic = Critic(critic_enc, feat, action_dim, cfg.hidden_dim)
        self.actor = Actor(actor_enc, feat, action_dim, cfg.hidden_dim, cfg.log_std_min, cfg.log_std_max)
        if pixels:
            self.actor.encoder.copy_conv_weights_from(self.critic.encoder)
        self.critic_target = copy.deepcopy(self.critic)
        self.critic_target.requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.tensor(math.log(cfg.init_temperature)))
        self.target_entropy = -float(action_dim)
        self.aux = nn.ModuleList(aux)
        self.to(self.device_)

        shared = {id(p) for p in self.critic.parameters()}
        actor_params = [p for p in self.actor.parameters() if id(p) not in shared]
        self.actor_opt = torch.optim.Adam(actor_params, lr=cfg.actor_lr, betas=(cfg.actor_beta, 0.999))
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr, betas=(cfg.critic_beta, 0.999))
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.alpha_lr, betas=(cfg.alpha_beta, 0.999))
        self.aux_opts = [a.make_optimizer() for a in self.aux]
        self.update_step = 0
        self.replay: Any = None  # set by the training loop; sequence-based aux objectives sample from it

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.exp()

    # -- acting ----------------------------------------------------------------------------------
    def _prepare(self, obs: np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(obs), device=self.device_)[None]
        if self.pixels:
            x = center_crop(x, self.cfg.image_size)
        return x if self.pixels else x.float()

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """One action in [-1, 1] for one (uncropped) observation; centre crop for pixels."""
        action, _, mean = self.actor.sample(self.actor.features(self._prepare(obs)), self.generator)
        return (mean if deterministic else action)[0].float().cpu().numpy()

    # -- learning --------------------------------------------------------------------------------
    def compile_encoders(self) -> None:
        """torch.compile the conv stacks in place (state_dict keys stay the same)."""
        for enc in (self.critic.encoder, self.critic_target.encoder):
            if enc is not None:
                enc.convs.forward = torch.compile(enc.convs.forward)

    def crop(self, obs: torch.Tensor) -> torch.Tensor:
        return random_crop(obs, self.cfg.image_size, self.generator) if self.pixels else obs.float()

    def critic_loss(self, obs: torch.Tensor, batch: Batch, next_obs: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(loss, features of obs with grad, conv map of obs with grad)."""
        with torch.no_grad():
            next_action, next_logp, _ = self.actor.sample(self.actor.features(next_obs), self.generator)
            tq1, tq2 = self.critic_target(next_obs, next_action)
            target_v = torch.min(tq1, tq2) - self.alpha.detach() * next_logp
            target_q = batch.reward + batch.not_done * self.cfg.discount * target_v
        if self.pixels:
            conv_map = self.critic.encoder.conv_features(obs)
            feats = self.critic.encoder.head(conv_map)
        else:
            conv_map, feats = None, obs
        q1, q2 = self.critic.q_values(feats, batch.action)
        loss = F.mse_loss(q1.float(), target_q.float()) + F.mse_loss(q2.float(), target_q.float())
        return loss, feats, conv_map

    def actor_and_alpha_loss(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        with torch.no_grad():  # one conv pass (post critic step) serves the critic and the actor head
            conv_map = self.critic.encoder.conv_features(obs) if self.pixels else None
            critic_feats = self.critic.encoder.head(conv_map) if self.pixels else obs
        action, logp, _ = self.actor.sample(self.actor.features(obs, conv_map), self.generator)
        q1, q2 = self.critic.q_values(critic_feats, action)
        actor_loss = (self.alpha.detach() * logp - torch.min(q1, q2)).mean()
        alpha_loss = (self.alpha * (-logp - self.target_entropy).detach()).mean()
        return actor_loss, alpha_loss, {"entropy": -logp.detach().mean()}

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One full agent update on an uncropped batch.

        Metrics come back as detached tensors (no device sync here); the caller averages them.
        """
        self.update_step += 1
        obs, next_obs = self.crop(batch.obs), self.crop(batch.next_obs)
        metrics: dict[str, torch.Tensor] = {}

        with self.autocast():  # bf16 forward passes on CUDA (Runtime's policy); backward outside
            critic_loss, feats, conv_map = self.critic_loss(obs, batch, next_obs)
            total = critic_loss
            metrics["critic_loss"] = critic_loss.detach()
            if len(self.aux):
                ctx = UpdateContext(batch, obs, feats, conv_map, self, self.update_step)
                for aux in self.aux:
                    loss, aux_metrics = aux.compute(ctx)
                    total = total + loss.float()
                    metrics[f"aux/{aux.name}"] = loss.detach()
                    metrics.update({f"aux/{aux.name}_{k}": v for k, v in aux_metrics.items()})
        self.critic_opt.zero_grad(set_to_none=True)
        for opt in self.aux_opts:
            if opt is not None:
                opt.zero_grad(set_to_none=True)
        total.backward()
        self.critic_opt.step()
        for aux, opt in zip(self.aux, self.aux_opts):
            if opt is not None:
                opt.step()
            aux.after_step(self.update_step)

        if self.update_step % self.cfg.actor_update_freq == 0:
            with self.autocast():
                actor_loss, alpha_loss, extra = self.actor_and_alpha_loss(obs)
            self.actor_opt.zero_grad(set_to_none=True)
            actor_loss.backward()
            self.actor_opt.step()
            self.alpha_opt.zero_grad(set_to_none=True)
            alpha_loss.backward()
            self.alpha_opt.step()
            metrics.update(actor_loss=actor_loss.detach(), alpha_loss=alpha_loss.detach(), **extra)
        metrics["alpha"] = self.alpha.detach()

        if self.update_step % self.cfg.target_update_freq == 0:
            self.update_targets()
        return metrics

    @torch.no_grad()
    def update_targets(self) -> None:
        for t, o in zip(self.critic_target.heads(), self.critic.heads()):
            ema_update(t, o, self.cfg.critic_tau)
        if self.pixels:
            ema_update(self.critic_target.encoder, self.critic.encoder, self.cfg.encoder_tau)

    # -- persistence -----------------------------------------------------------------------------
    def training_state(self) -> dict[str, Any]:
        """Everything needed to resume: weights, optimiser states and the update counter."""
        state: dict[str, Any] = {
            "agent": self.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "alpha_opt": self.alpha_opt.state_dict(),
            "update_step": torch.tensor(self.update_step),
            "sac_config": {k: v for k, v in asdict(self.cfg).items() if k != "extra"},
        }
        for i, opt in enumerate(self.aux_opts):
            if opt is not None:
                state[f"aux_opt_{i}"] = opt.state_dict()
        return state

    def load_training_state(self, state: dict[str, Any], weights_only: bool = False) -> None:
        self.load_state_dict(state["agent"])
        if weights_only:
            return
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.alpha_opt.load_state_dict(state["alpha_opt"])
        for i, opt in enumerate(self.aux_opts):
            if opt is not None and f"aux_opt_{i}" in state:
                opt.load_state_dict(state[f"aux_opt_{i}"])
        self.update_step = int(state["update_step"])
