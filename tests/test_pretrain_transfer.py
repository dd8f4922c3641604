"""Carrying a pretrained encoder into RL: SAC encoder_init (+ freeze), the SB3 extractor, frame collection."""

import numpy as np
import pytest
import torch
from gymnasium import spaces

from agents.replay import Batch
from agents.sac import SACAgent, SACConfig
from agents.transfer import apply_encoder_init
from envs.collect import collect_frames, save_frames
from representations.data import load_numpy
from representations.encoders import ConvEncoder, ResNetSmall, save_encoder


def _agent():
    cfg = SACConfig(hidden_dim=32, num_filters=8, num_conv_layers=2, feature_dim=16, image_size=32)
    return SACAgent((9, 36, 36), 2, cfg, generator=torch.Generator().manual_seed(0))


def _pretrained(tmp_path, **kw):
    torch.manual_seed(5)
    args = dict(in_channels=9, image_size=32, num_layers=2, num_filters=8, feature_dim=16)
    return save_encoder(ConvEncoder(**{**args, **kw}), tmp_path / "enc.pt")


def _batch(n=8):
    gen = torch.Generator().manual_seed(1)
    obs = torch.randint(0, 256, (n, 9, 36, 36), generator=gen, dtype=torch.uint8)
    return Batch(obs, torch.rand(n, 2, generator=gen) * 2 - 1, torch.rand(n, 1, generator=gen), torch.ones(n, 1),
                 obs.roll(1, 0))


def test_encoder_init_loads_critic_actor_and_target(tmp_path):
    path = _pretrained(tmp_path)
    agent = _agent()
    info = apply_encoder_init(agent, path, freeze=False)
    src = torch.load(path, weights_only=True)["state_dict"]
    assert info["head_loaded"] and not info["frozen"]
    for enc in (agent.critic.encoder, agent.critic_target.encoder):
        for name, value in src.items():
            assert torch.equal(enc.state_dict()[name], value), name
    assert torch.equal(agent.actor.encoder.convs[0].weight, src["convs.0.weight"])  # tied to the critic


def test_frozen_encoder_does_not_move(tmp_path):
    agent = _agent()
    apply_encoder_init(agent, _pretrained(tmp_path), freeze=True)
    convs = [p.detach().clone() for p in agent.critic.encoder.convs.parameters()]
    fc = agent.critic.encoder.fc.weight.detach().clone()
    for _ in range(2):
        agent.update(_batch())
    assert all(torch.equal(a, b) for a, b in zip(convs, agent.critic.encoder.convs.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(convs, agent.critic_target.encoder.convs.parameters()))
    assert not torch.equal(fc, agent.critic.encoder.fc.weight)
    frozen = {id(p) for p in agent.critic.encoder.convs.parameters()}
    assert not any(id(p) in frozen for g in agent.critic_opt.param_groups for p in g["params"])


def test_encoder_init_rejects_a_mismatch(tmp_path):
    with pytest.raises(ValueError, match="num_filters 16 vs agent 8"):
        apply_encoder_init(_agent(), _pretrained(tmp_path, num_filters=16))
    other = save_encoder(ResNetSmall(in_channels=9, image_size=32, widths=(8,), blocks=(1,)), tmp_path / "r.pt")
    with pytest.raises(ValueError, match="need a ConvEncoder"):
        apply_encoder_init(_agent(), other)
    head = apply_encoder_init(_agent(), _pretrained(tmp_path, image_size=34))
    assert head["head_loaded"] is False  # convs fit, the fc size differs: convs only


def test_sb3_extractor_normalises_once(tmp_path):
    from agents.sb3 import PretrainedExtractor

    path = _pretrained(tmp_path)
    space = spaces.Box(0, 255, (9, 32, 32), np.uint8)
    extractor = PretrainedExtractor(space, str(path), freeze=True)
    raw = torch.randint(0, 256, (3, 9, 32, 32), dtype=torch.uint8)
    reference = ConvEncoder(in_channels=9, image_size=32, num_layers=2, num_filters=8, feature_dim=16)
    reference.load_state_dict(torch.load(path, weights_only=True)["state_dict"])
    expected = reference.eval()(raw)  # the encoder's own /255 on uint8 pixels
    assert extractor.features_dim == 16
    assert torch.allclose(extractor(raw.float() / 255.0), expected, atol=1e-5)  # what SB3 passes in
    assert all(not p.requires_grad for p in extractor.parameters())
    resnet = ResNetSmall(in_channels=9, image_size=32, widths=(8,), blocks=(1,)).eval()
    wrapped = PretrainedExtractor(space, resnet, normalized_images=False)
    assert torch.allclose(wrapped(raw.float()), resnet(raw), atol=1e-5)
    with pytest.raises(ValueError, match="channels"):
        PretrainedExtractor(spaces.Box(0, 255, (3, 32, 32), np.uint8), str(path))


def test_collect_frames_round_trip(tmp_path):
    data = collect_frames("synthetic-reach", 12, image_size=36, frame_stack=3, seed=0, every=2)
    assert data["images"].shape == (12, 9, 36, 36) and data["images"].dtype == np.uint8
    assert (data["labels"] == -1).all() and (np.diff(data["step"][:3]) == 2).all()
    loaded = load_numpy(save_frames(data, tmp_path / "frames.npz"))
    assert loaded.images.shape == (12, 9, 36, 36) and (loaded.labels == -1).all()


def test_encoder_trained_on_normalised_pixels_sees_the_same_input_in_rl_and_sb3(tmp_path):
    """mcrl-pretrain feeds (x/255 - mean)/std; the RL agent and SB3 feed raw pixels: both must match."""
    from agents.sb3 import PretrainedExtractor

    mean, std = 0.449, 0.226
    torch.manual_seed(5)
    encoder = ConvEncoder(in_channels=9, image_size=32, num_layers=2, num_filters=8, feature_dim=16).eval()
    path = save_encoder(encoder, tmp_path / "norm.pt", input_normalisation=(mean, std))
    raw = torch.randint(0, 256, (3, 9, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        expected = encoder((raw.float() / 255 - mean) / std)  # what pretraining computed
        agent = _agent()
        info = apply_encoder_init(agent, path)
        assert info["normalisation_folded"] and info["head_loaded"]
        assert torch.allclose(agent.critic.encoder(raw), expected, atol=1e-4)
        assert not torch.allclose(agent.critic.encoder(raw), encoder(raw), atol=1e-3)  # a fold took place
        extractor = PretrainedExtractor(spaces.Box(0, 255, (9, 32, 32), np.uint8), str(path)).eval()
        assert torch.allclose(extractor(raw.float() / 255), expected, atol=1e-4)
