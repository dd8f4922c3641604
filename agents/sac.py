"""SAC with a shared pixel encoder (CURL / SAC-AE design) and pluggable auxiliary objectives.

One update = sample a batch from the agent's replay, critic step (critic loss + every joint aux
loss, summed, so the encoder gets one optimiser step from one gradient), then every
``actor_update_freq`` updates an actor and temperature step on detached conv features, every
``target_update_freq`` updates the EMA targets (Q heads with ``critic_tau``, encoder with
``encoder_tau``), and last the aux objectives with their own encoder step (``separate_step``,
official M-CURL). Aux objectives see only ``AuxInputs``, never the agent.
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


class EncoderView:
    """An encoder as an aux objective sees it: calls run under the agent's autocast (bf16 convs on
    CUDA) and hand back fp32, so every loss downstream is computed in fp32."""

    def __init__(self, module: ConvEncoder, autocast: Callable[[], AbstractContextManager[None]]) -> None:
        self.module = module
        self._autocast = autocast

    def conv_features(self, obs: torch.Tensor) -> torch.Tensor:
        with self._autocast():
            return self.module.conv_features(obs).float()

    def head(self, conv_map: torch.Tensor) -> torch.Tensor:
        with self._autocast():
            return self.module.head(conv_map).float()

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv_features(obs))


@dataclass
class AuxInputs:
    """Everything an auxiliary objective may use in one update; it never sees the agent itself.

    ``anchor`` is the online encoder's features of ``obs`` with gradient (the critic's own pass) for
    objectives trained jointly with the critic; objectives with their own encoder step
    (``separate_step``) run after the SAC update and get ``anchor=None``.
    """

    batch: Batch  # uncropped SAC batch (pixels at render size)
    obs: torch.Tensor  # the critic's random crops of batch.obs
    anchor: torch.Tensor | None
    online: EncoderView  # the critic's encoder (trained)
    target: EncoderView  # its EMA copy (no gradient)
    crop: Callable[[torch.Tensor], torch.Tensor]  # a fresh independent random crop per image
    sequences: Callable[[int, int], Batch] | None  # (num, length) -> runs inside one episode, (N, L, ...)
    random_observations: Callable[[int], torch.Tensor] | None  # n stacked observations, uniform over replay
    generator: torch.Generator | None


class AuxObjective(Protocol):
    """An auxiliary loss; owns its extra parameters and optimiser (see agents/aux.py)."""

    name: str
    separate_step: bool  # True: own optimiser step on the encoder after the SAC update (official M-CURL)

    def compute(self, inputs: AuxInputs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]: ...

    def make_optimizer(self, encoder_params: list[nn.Parameter]) -> torch.optim.Optimizer | None: ...

    def after_step(self) -> None: ...


class SACAgent(nn.Module):
    """Pixel (or state) SAC that samples its own batches from the replay buffer it is given.

    Numerics: only the encoders run under ``autocast`` (bf16 convs/linears on CUDA); the Q heads, the
    targets, TD errors, the policy head and every loss are fp32.
    """

    def __init__(self, obs_shape: Sequence[int], action_dim: int, config: SACConfig | None = None,
                 aux: Sequence[nn.Module] = (), device: str | torch.device = "cpu", pixels: bool = True,
                 generator: torch.Generator | None = None,
                 autocast: Callable[[], AbstractContextManager[None]] = contextlib.nullcontext,
                 replay: Any = None, batch_size: int = 512) -> None:
        super().__init__()
        self.autocast = autocast
        self.cfg = cfg = config or SACConfig()
        self.pixels = pixels
        self.device_ = torch.device(device)
        self.action_dim = action_dim
        self.generator = generator
        self.replay = replay
        self.batch_size = int(batch_size)
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
        if len(self.aux) and not pixels:
            raise ValueError("auxiliary objectives need a pixel agent")
        self.to(self.device_)

        shared = {id(p) for p in self.critic.parameters()}
        actor_params = [p for p in self.actor.parameters() if id(p) not in shared]
        self.actor_opt = torch.optim.Adam(actor_params, lr=cfg.actor_lr, betas=(cfg.actor_beta, 0.999))
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr, betas=(cfg.critic_beta, 0.999))
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.alpha_lr, betas=(cfg.alpha_beta, 0.999))
        encoder_params = list(self.critic.encoder.parameters()) if pixels else []
        self.aux_opts = [a.make_optimizer(encoder_params) for a in self.aux]
        self.update_step = 0

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.exp()

    def _conv(self, encoder: ConvEncoder, obs: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            return encoder.conv_features(obs).float()

    def _features(self, encoder: ConvEncoder | None, obs: torch.Tensor, conv_map: torch.Tensor | None = None
                  ) -> torch.Tensor:
        if encoder is None:
            return obs.float()
        conv_map = self._conv(encoder, obs) if conv_map is None else conv_map
        with self.autocast():
            return encoder.head(conv_map).float()

    def _actor_features(self, obs: torch.Tensor, conv_map: torch.Tensor | None = None) -> torch.Tensor:
        """Actor head on (detached) conv features: the actor loss never reaches the conv layers."""
        if self.actor.encoder is None:
            return obs.float()
        conv_map = (self._conv(self.actor.encoder, obs) if conv_map is None else conv_map).detach()
        with self.autocast():
            return self.actor.encoder.head(conv_map).float()

    # -- acting ----------------------------------------------------------------------------------
    def _prepare(self, obs: np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(obs), device=self.device_)[None]
        if self.pixels:
            x = center_crop(x, self.cfg.image_size)
        return x if self.pixels else x.float()

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """One action in [-1, 1] for one (uncropped) observation; centre crop for pixels."""
        action, _, mean = self.actor.sample(self._actor_features(self._prepare(obs)), self.generator)
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
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(fp32 loss, features of obs with grad)."""
        with torch.no_grad():
            next_action, next_logp, _ = self.actor.sample(self._actor_features(next_obs), self.generator)
            tq1, tq2 = self.critic_target.q_values(self._features(self.critic_target.encoder, next_obs), next_action)
            target_v = torch.min(tq1, tq2) - self.alpha.detach() * next_logp
            target_q = batch.reward.float() + batch.not_done.float() * self.cfg.discount * target_v
        feats = self._features(self.critic.encoder, obs)
        q1, q2 = self.critic.q_values(feats, batch.action.float())
        loss = F.mse_loss(q1, target_q) + F.mse_loss(q2, target_q)
        return loss, feats

    def actor_and_alpha_loss(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        with torch.no_grad():  # one conv pass (post critic step) serves the critic and the actor head
            conv_map = self._conv(self.critic.encoder, obs) if self.pixels else None
            critic_feats = self._features(self.critic.encoder, obs, conv_map)
        action, logp, _ = self.actor.sample(self._actor_features(obs, conv_map), self.generator)
        q1, q2 = self.critic.q_values(critic_feats, action)
        actor_loss = (self.alpha.detach() * logp - torch.min(q1, q2)).mean()
        alpha_loss = (self.alpha * (-logp - self.target_entropy).detach()).mean()
        return actor_loss, alpha_loss, {"entropy": -logp.detach().mean()}

    def aux_inputs(self, batch: Batch, obs: torch.Tensor, anchor: torch.Tensor | None) -> AuxInputs:
        replay = self.replay
        return AuxInputs(
            batch=batch, obs=obs, anchor=anchor,
            online=EncoderView(self.critic.encoder, self.autocast),
            target=EncoderView(self.critic_target.encoder, self.autocast),
            crop=self.crop,
            sequences=getattr(replay, "sample_sequences", None),
            random_observations=getattr(replay, "sample_observations", None),
            generator=self.generator)

    def update(self, batch: Batch | None = None) -> dict[str, torch.Tensor]:
        """One full agent update on a batch sampled from the agent's replay (or the one given).

        Metrics come back as detached tensors (no device sync here); the caller averages them.
        """
        if batch is None:
            if self.replay is None:
                raise RuntimeError("this agent was built without a replay buffer; pass one at construction")
            batch = self.replay.sample(self.batch_size)
        self.update_step += 1
        obs, next_obs = self.crop(batch.obs), self.crop(batch.next_obs)
        metrics: dict[str, torch.Tensor] = {}

        critic_loss, feats = self.critic_loss(obs, batch, next_obs)
        total = critic_loss
        metrics["critic_loss"] = critic_loss.detach()
        joint = [(a, o) for a, o in zip(self.aux, self.aux_opts) if not a.separate_step]
        if joint:
            inputs = self.aux_inputs(batch, obs, feats)
            for aux, _ in joint:
                total = total + self._aux_loss(aux, inputs, metrics)
        self.critic_opt.zero_grad(set_to_none=True)
        for _, opt in joint:
            if opt is not None:
                opt.zero_grad(set_to_none=True)
        total.backward()
        self.critic_opt.step()
        for aux, opt in joint:
            if opt is not None:
                opt.step()
            aux.after_step()

        if self.update_step % self.cfg.actor_update_freq == 0:
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

        for aux, opt in zip(self.aux, self.aux_opts):  # official M-CURL order: after critic, actor, targets
            if aux.separate_step:
                loss = self._aux_loss(aux, self.aux_inputs(batch, obs, None), metrics)
                if opt is not None:
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                aux.after_step()
        return metrics

    @staticmethod
    def _aux_loss(aux: nn.Module, inputs: AuxInputs, metrics: dict[str, torch.Tensor]) -> torch.Tensor:
        loss, aux_metrics = aux.compute(inputs)
        loss = loss.float()
        metrics[f"aux/{aux.name}"] = loss.detach()
        metrics.update({f"aux/{aux.name}_{k}": v for k, v in aux_metrics.items()})
        return loss

    @torch.no_grad()
    def update_targets(self) -> None:
        for t, o in zip(self.critic_target.heads(), self.critic.heads()):
            ema_update(t, o, self.cfg.critic_tau)
        if self.pixels:
            ema_update(self.critic_target.encoder, self.critic.encoder, self.cfg.encoder_tau)

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.actor_opt, self.critic_opt, self.alpha_opt, *[o for o in self.aux_opts if o is not None]]

    def freeze_conv_layers(self) -> None:
        """Stop gradients to the shared conv layers and drop them from every optimiser of the agent."""
        if not self.pixels:
            raise ValueError("freezing conv layers needs a pixel agent")
        frozen = {id(p) for p in self.critic.encoder.convs.parameters()}
        for param in self.critic.encoder.convs.parameters():
            param.requires_grad_(False)
        for opt in self.optimizers():
            for group in opt.param_groups:
                group["params"] = [p for p in group["params"] if id(p) not in frozen]
            for param in [p for p in opt.state if id(p) in frozen]:
                del opt.state[param]

    # -- persistence -----------------------------------------------------------------------------
    def training_state(self) -> dict[str, Any]:
        """Everything needed to resume: weights, optimiser and schedule states, counters, RNG."""
        state: dict[str, Any] = {
            "agent": self.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "alpha_opt": self.alpha_opt.state_dict(),
            "update_step": torch.tensor(self.update_step),
            "sac_config": {k: v for k, v in asdict(self.cfg).items() if k != "extra"},
        }
        if self.generator is not None:
            state["generator"] = self.generator.get_state()
        for i, (aux, opt) in enumerate(zip(self.aux, self.aux_opts)):
            if opt is not None:
                state[f"aux_opt_{i}"] = opt.state_dict()
            state[f"aux_state_{i}"] = aux.schedule_state()
        return state

    def load_training_state(self, state: dict[str, Any], weights_only: bool = False) -> None:
        self.load_state_dict(state["agent"])
        if weights_only:
            return
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.alpha_opt.load_state_dict(state["alpha_opt"])
        for i, (aux, opt) in enumerate(zip(self.aux, self.aux_opts)):
            if opt is not None and f"aux_opt_{i}" in state:
                opt.load_state_dict(state[f"aux_opt_{i}"])
            if f"aux_state_{i}" in state:
                aux.load_schedule_state(state[f"aux_state_{i}"])
        if self.generator is not None and "generator" in state:
            self.generator.set_state(state["generator"].cpu())
        self.update_step = int(state["update_step"])
