"""Start a pixel SAC agent from a pretrained ConvEncoder (``mcrl-train encoder_init=PATH``).

The critic's encoder receives the weights; the actor shares the critic's conv layers (tied
parameters), so it sees them too; the critic target's encoder gets a copy. With ``freeze=True`` the
conv layers stop receiving gradients and are removed from every optimiser, so neither the critic
loss nor an auxiliary loss moves them; the fc + LayerNorm head stays trainable.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from agents.errors import UserError, as_user_error
from agents.sac import SACAgent
from representations.encoders import ConvEncoder, input_normalisation, load_pretrained

_CONV_KEYS = ("in_channels", "num_layers", "num_filters")


def apply_encoder_init(agent: SACAgent, path: str | os.PathLike[str], freeze: bool = False) -> dict[str, Any]:
    """Load ``path`` (a ``save_encoder`` file of a ConvEncoder) into ``agent``; returns what was loaded.

    The conv stack must match the agent's (channels, layers, filters); the fc + LayerNorm head is
    loaded too when its shapes match (same image size and feature_dim), otherwise it keeps its
    initialisation and ``{"head_loaded": False}`` says so.
    """
    if not agent.pixels:
        raise UserError("encoder_init needs a pixel agent (this one uses states)")
    # the file is the user's: whatever unpickling a text file or a foreign checkpoint raises is a bad input
    with as_user_error(Exception, prefix=f"encoder_init={path} is not a pretrained encoder file: "):
        pretrained = load_pretrained(path)
    if not isinstance(pretrained, ConvEncoder):
        raise UserError(f"{path} holds a {type(pretrained).__name__}; SAC agents need a ConvEncoder (encoder=conv)")
    target: ConvEncoder = agent.critic.encoder
    mine, theirs = target.init_kwargs, pretrained.init_kwargs
    mismatched = [k for k in _CONV_KEYS if mine[k] != theirs[k]]
    if mismatched:
        detail = ", ".join(f"{k} {theirs[k]} vs agent {mine[k]}" for k in mismatched)
        raise UserError(f"pretrained encoder does not fit the agent: {detail}")
    stats = input_normalisation(path)
    if stats is not None:  # trained on normalised pixels; the agent feeds uint8 frames scaled to [0, 1]
        pretrained.fold_input_normalisation(*stats)
    device = next(target.parameters()).device
    state = {k: v.to(device) for k, v in pretrained.state_dict().items()}
    own = target.state_dict()
    head_ok = all(k in own and own[k].shape == v.shape for k, v in state.items())
    with torch.no_grad():
        for (_, param), (_, src) in zip(_conv_params(target), _conv_params(pretrained)):
            param.copy_(src.to(device))
        if head_ok:
            for name in ("fc.weight", "fc.bias", "norm.weight", "norm.bias"):
                if name in state:
                    own[name].copy_(state[name])
        agent.critic_target.encoder.load_state_dict(target.state_dict())
    if freeze:
        freeze_convs(agent)
    return {"path": str(path), "head_loaded": head_ok, "frozen": freeze, "normalisation_folded": stats is not None,
            "conv_params": sum(p.numel() for _, p in _conv_params(target))}


def _conv_params(encoder: ConvEncoder) -> list[tuple[str, nn.Parameter]]:
    return [(f"convs.{n}", p) for n, p in encoder.convs.named_parameters()]


def freeze_convs(agent: SACAgent) -> None:
    """Keep the shared conv layers fixed; the agent removes them from its own optimisers."""
    agent.freeze_conv_layers()
