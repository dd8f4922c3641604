"""Aux objectives inside the SAC update: gradient routing, one step per parameter, losses fall."""

import copy

import numpy as np
import pytest
import torch

from agents.aux import CURLAux, MCURLAux, SaliencyCURLAux
from agents.replay import PixelReplay
from agents.sac import SACAgent, SACConfig, UpdateContext
from representations.objectives.mcurl import MaskedSequenceContrast

RENDER, CROP, A, FEAT = 40, 32, 2, 16
SETTINGS = {"curl": {}, "curl_saliency": {"grid": 4}, "mcurl": {"seq_len": 6, "num_seqs": 4, "warmup": 10}}
CLASSES = {"curl": CURLAux, "curl_saliency": SaliencyCURLAux, "mcurl": MCURLAux}


def filled_replay(seed: int = 0) -> PixelReplay:
    rng = np.random.default_rng(seed)
    replay = PixelReplay(400, (3, RENDER, RENDER), 3, A, seed=seed)
    for _ in range(4):
        replay.start_episode(rng.integers(0, 256, (9, RENDER, RENDER), dtype=np.uint8))
        for _ in range(30):
            replay.add(rng.uniform(-1, 1, A), rng.random(), False,
                       rng.integers(0, 256, (9, RENDER, RENDER), dtype=np.uint8))
    return replay


def make_agent(name: str, **cfg) -> SACAgent:
    torch.manual_seed(0)
    aux = CLASSES[name](SETTINGS[name], FEAT)
    agent = SACAgent((9, CROP, CROP), A, SACConfig(hidden_dim=32, feature_dim=FEAT, num_filters=4, image_size=CROP,
                                                   **cfg), aux=[aux], generator=torch.Generator().manual_seed(0))
    agent.replay = filled_replay()
    return agent


def aux_loss_only(agent: SACAgent, batch) -> torch.Tensor:
    obs = agent.crop(batch.obs)
    conv = agent.critic.encoder.conv_features(obs)
    ctx = UpdateContext(batch, obs, agent.critic.encoder.head(conv), conv, agent, 1)
    loss, _ = agent.aux[0].compute(ctx)
    return loss


def conv_params(agent):
    return list(agent.critic.encoder.convs.parameters())


@pytest.mark.parametrize("name", list(CLASSES))
def test_aux_loss_reaches_convs_and_its_own_parameters_not_the_target_or_actor(name):
    agent = make_agent(name)
    aux_loss_only(agent, agent.replay.sample(16)).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in conv_params(agent))
    own = [p for p in agent.aux[0].parameters()]
    assert own and all(p.grad is not None for p in own if p.requires_grad)
    assert all(p.grad is None for p in agent.critic_target.parameters())
    actor_only = [p for n, p in agent.actor.named_parameters() if not n.startswith("encoder.convs")]
    assert all(p.grad is None for p in actor_only)
    assert all(p.grad is None for p in agent.critic.heads().parameters())


@pytest.mark.parametrize("name", list(CLASSES))
def test_each_parameter_gets_exactly_one_step_per_update(name):
    agent = make_agent(name)
    target_before = copy.deepcopy(agent.critic_target.state_dict())
    agent.update(agent.replay.sample(16))  # update 1: no target step
    for p in agent.critic.parameters():
        assert int(agent.critic_opt.state[p]["step"]) == 1
    aux_opt = agent.aux_opts[0]
    for group in aux_opt.param_groups:
        for p in group["params"]:
            assert int(aux_opt.state[p]["step"]) == 1
    critic_ids = {id(p) for p in agent.critic.parameters()}
    assert not critic_ids & {id(p) for g in aux_opt.param_groups for p in g["params"]}  # no double step
    assert all(torch.equal(target_before[k], v) for k, v in agent.critic_target.state_dict().items())


@pytest.mark.parametrize("name", list(CLASSES))
def test_aux_loss_falls_when_optimised_alone_on_a_fixed_batch(name):
    agent = make_agent(name)
    batch = agent.replay.sample(16)
    fixed_sequences = agent.replay.sample_sequences(4, 6)
    agent.replay.sample_sequences = lambda n, length: fixed_sequences  # the same sequences every step
    params = list(agent.critic.encoder.parameters()) + list(agent.aux[0].parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    losses = []
    for step in range(40):
        agent.generator.manual_seed(step % 2)  # same crops/masks every other step: a fixed problem
        loss = aux_loss_only(agent, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5]), losses


def test_mcurl_masked_positions_follow_the_probability():
    obj = MaskedSequenceContrast(feature_dim=8, heads=2, ffn_dim=16, mask_prob=0.3)
    g = torch.Generator().manual_seed(0)
    _, metrics = obj(torch.randn(256, 32, 8), torch.randn(256, 32, 8), g)
    assert abs(float(metrics["masked_fraction"]) - 0.3) < 0.02


def test_mcurl_transformer_warmup_schedule_and_unused_at_action_time():
    agent = make_agent("mcurl")
    opt = agent.aux_opts[0]
    lrs = []
    for _ in range(3):
        agent.update(agent.replay.sample(16))
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[0] < lrs[1] < lrs[2]  # still warming up
    called = []
    agent.aux[0].objective.transformer.register_forward_hook(lambda *a: called.append(1))
    agent.act(np.zeros((9, RENDER, RENDER), np.uint8))
    assert not called


def test_bad_mask_ratio_is_a_value_error():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        MCURLAux({"mask_prob": 1.5}, FEAT)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        SaliencyCURLAux({"query_ratio": [0.1, 1.2]}, FEAT)


def test_curl_objective_hard_negative_weighting_against_hand_computation():
    from representations.objectives.curl import CURLObjective

    torch.manual_seed(0)
    obj = CURLObjective(4)
    a, p, hn = torch.randn(3, 4), torch.randn(3, 4), torch.randn(3, 1, 4)
    w = obj.W.detach()
    for mode in ("term", "logit"):
        loss, _ = obj(a, p, hn, 2.0, mode)
        expected = 0.0
        for i in range(3):
            pos = [float(a[i] @ w @ p[j]) for j in range(3)]
            s_hn = float(a[i] @ w @ hn[i, 0])
            hard = 2.0 * np.exp(s_hn) if mode == "term" else np.exp(2.0 * s_hn)
            expected += -pos[i] + np.log(np.exp(pos).sum() + hard)
        assert float(loss) == pytest.approx(expected / 3, rel=1e-5)
