"""Actor and critic networks of the CURL / SAC-AE design."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from representations.encoders.conv import ConvEncoder


def orthogonal_init(module: nn.Module) -> None:
    """Orthogonal linear layers; delta-orthogonal convs (identity-like at the kernel centre)."""
    if isinstance(module, nn.Linear):
        nn.init.orthogonal_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Conv2d):
        nn.init.zeros_(module.weight)
        nn.init.zeros_(module.bias)
        mid = module.weight.size(2) // 2
        nn.init.orthogonal_(module.weight[:, :, mid, mid], gain=nn.init.calculate_gain("relu"))


def mlp(in_dim: int, hidden: int, out_dim: int, layers: int = 2) -> nn.Sequential:
    dims = [in_dim] + [hidden] * layers
    mods: list[nn.Module] = []
    for a, b in zip(dims[:-1], dims[1:]):
        mods += [nn.Linear(a, b), nn.ReLU(inplace=True)]
    mods.append(nn.Linear(dims[-1], out_dim))
    return nn.Sequential(*mods)


class Critic(nn.Module):
    """Encoder + two Q heads (clipped double Q). The encoder is None for state inputs."""

    def __init__(self, encoder: ConvEncoder | None, feature_dim: int, action_dim: int, hidden: int = 1024) -> None:
        super().__init__()
        self.encoder = encoder
        self.q1 = mlp(feature_dim + action_dim, hidden, 1)
        self.q2 = mlp(feature_dim + action_dim, hidden, 1)
        self.apply(orthogonal_init)

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        return obs if self.encoder is None else self.encoder(obs)

    def q_values(self, features: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([features, action], dim=-1)
        return self.q1(x), self.q2(x)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.q_values(self.features(obs), action)

    def heads(self) -> nn.ModuleList:
        return nn.ModuleList([self.q1, self.q2])


class Actor(nn.Module):
    """Tanh-squashed Gaussian policy.

    For pixels the actor owns an fc+LayerNorm head over the critic's conv map; the conv layers are
    tied to the critic's and always see ``detach=True``, so the actor loss never reaches them.
    """

    def __init__(self, encoder: ConvEncoder | None, feature_dim: int, action_dim: int, hidden: int = 1024,
                 log_std_min: float = -10.0, log_std_max: float = 2.0) -> None:
        super().__init__()
        self.encoder = encoder
        self.trunk = mlp(feature_dim, hidden, 2 * action_dim)
        self.log_std_min = log_std_min
        self.log_std_max = log_std_max
        self.apply(orthogonal_init)

    def features(self, obs: torch.Tensor, conv_map: torch.Tensor | None = None) -> torch.Tensor:
        """Actor features; pass ``conv_map`` to reuse conv activations already computed (detached here)."""
        if self.encoder is None:
            return obs
        if conv_map is not None:
            return self.encoder.head(conv_map.detach())
        return self.encoder(obs, detach=True)

    def distribution(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, log_std = self.trunk(features).chunk(2, dim=-1)
        log_std = torch.tanh(log_std)
        log_std = self.log_std_min + 0.5 * (self.log_std_max - self.log_std_min) * (log_std + 1)
        return mu, log_std

    def sample(self, features: torch.Tensor, generator: torch.Generator | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(squashed sample, its log-probability, squashed mean)."""
        mu, log_std = self.distribution(features)
        std = log_std.exp()
        noise = torch.randn(mu.shape, device=mu.device, dtype=mu.dtype, generator=generator)
        pre = mu + noise * std
        action = torch.tanh(pre)
        gauss = (-0.5 * noise.pow(2) - log_std).sum(-1, keepdim=True) - 0.5 * math.log(2 * math.pi) * mu.shape[-1]
        # log|d tanh(u)/du| = log(1 - tanh(u)^2), written stably as 2(log2 - u - softplus(-2u)).
        correction = (2 * (math.log(2) - pre - F.softplus(-2 * pre))).sum(-1, keepdim=True)
        return action, gauss - correction, torch.tanh(mu)
