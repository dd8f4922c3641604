"""SAC core: gradient routing, one optimiser step per parameter, EMA targets, temperature."""

import copy
import math

import numpy as np
import pytest
import torch

from agents.replay import Batch
from agents.sac import SACAgent, SACConfig

RENDER, CROP, A = 40, 32, 2


def tiny_agent(**kw) -> SACAgent:
    cfg = SACConfig(hidden_dim=32, feature_dim=8, num_filters=4, image_size=CROP, **kw)
    return SACAgent((9, CROP, CROP), A, cfg, generator=torch.Generator().manual_seed(0))


def batch(n: int = 8, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    img = lambda: torch.randint(0, 256, (n, 9, RENDER, RENDER), dtype=torch.uint8, generator=g)  # noqa: E731
    return Batch(img(), torch.rand(n, A, generator=g) * 2 - 1, torch.rand(n, 1, generator=g),
                 torch.ones(n, 1), img())


def conv_params(agent):
    return [p for n, p in agent.critic.encoder.named_parameters() if n.startswith("convs")]


def test_actor_conv_layers_are_the_critics():
    agent = tiny_agent()
    for a, c in zip(agent.actor.encoder.convs.parameters(), agent.critic.encoder.convs.parameters()):
        assert a is c
    actor_opt_ids = {id(p) for g in agent.actor_opt.param_groups for p in g["params"]}
    assert not actor_opt_ids & {id(p) for p in conv_params(agent)}


def test_actor_loss_never_reaches_conv_weights():
    agent = tiny_agent()
    obs = agent.crop(batch().obs)
    actor_loss, _, _ = agent.actor_and_alpha_loss(obs)
    actor_loss.backward()
    assert all(p.grad is None for p in conv_params(agent))
    head = agent.actor.encoder.fc.weight.grad
    assert head is not None and head.abs().sum() > 0  # the actor's own fc head does learn


def test_critic_loss_reaches_conv_weights():
    agent = tiny_agent()
    b = batch()
    loss, _ = agent.critic_loss(agent.crop(b.obs), b, agent.crop(b.next_obs))
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in conv_params(agent))
    assert all(p.grad is None for p in agent.critic_target.parameters())


def test_update_changes_convs_only_through_the_critic_step():
    agent = tiny_agent(actor_update_freq=1)
    before = [p.detach().clone() for p in conv_params(agent)]
    agent.critic_opt.step = lambda *a, **k: None  # with the critic step disabled ...
    agent.update(batch())  # ... an update with an actor step must leave the convs untouched
    assert all(torch.equal(b, p) for b, p in zip(before, conv_params(agent)))


def test_each_parameter_gets_one_adam_step_per_update():
    agent = tiny_agent()
    for i in range(4):
        agent.update(batch(seed=i))
    for p in agent.critic.parameters():
        assert int(agent.critic_opt.state[p]["step"]) == 4
    for g in agent.actor_opt.param_groups:
        for p in g["params"]:
            assert int(agent.actor_opt.state[p]["step"]) == 2  # actor every 2 updates
    assert int(agent.alpha_opt.state[agent.log_alpha]["step"]) == 2


def test_targets_move_only_by_ema_with_separate_rates():
    agent = tiny_agent()
    online = copy.deepcopy(agent.critic.state_dict())
    target = copy.deepcopy(agent.critic_target.state_dict())
    with torch.no_grad():
        for p in agent.critic.parameters():
            p.add_(1.0)
    agent.update_targets()
    new = agent.critic_target.state_dict()
    for name, value in new.items():
        if not torch.is_floating_point(value):
            continue
        tau = 0.05 if name.startswith("encoder") else 0.01
        expected = (1 - tau) * target[name] + tau * (online[name] + 1.0)
        assert torch.allclose(value, expected, atol=1e-6), name


def test_target_network_unchanged_by_updates_between_target_steps():
    agent = tiny_agent(target_update_freq=2)
    snapshot = copy.deepcopy(agent.critic_target.state_dict())
    agent.update(batch())  # update 1: no target step
    assert all(torch.equal(snapshot[k], v) for k, v in agent.critic_target.state_dict().items())
    agent.update(batch(seed=1))  # update 2: EMA step
    assert any(not torch.equal(snapshot[k], v) for k, v in agent.critic_target.state_dict().items())


def test_temperature_gradient_matches_hand_computation():
    agent = tiny_agent()
    obs = agent.crop(batch().obs)
    torch.manual_seed(0)
    agent.generator.manual_seed(3)
    _, alpha_loss, metrics = agent.actor_and_alpha_loss(obs)
    alpha_loss.backward()
    entropy = float(metrics["entropy"])
    # d/dlog_alpha of alpha * (-logp - H_target) = alpha * (entropy - H_target), H_target = -|A|.
    expected = math.exp(float(agent.log_alpha.detach())) * (entropy + A)
    assert float(agent.log_alpha.grad) == pytest.approx(expected, rel=1e-4)


def test_squashed_gaussian_log_prob_matches_change_of_variables():
    agent = tiny_agent()
    feats = torch.randn(5, 8)
    g = torch.Generator().manual_seed(1)
    action, logp, _ = agent.actor.sample(feats, g)
    mu, log_std = agent.actor.distribution(feats)
    pre = torch.atanh(action.clamp(-1 + 1e-6, 1 - 1e-6))
    normal = torch.distributions.Normal(mu, log_std.exp())
    expected = (normal.log_prob(pre) - torch.log(1 - action.pow(2) + 1e-12)).sum(-1, keepdim=True)
    assert torch.allclose(logp, expected, atol=1e-3)


def test_act_is_deterministic_in_eval_mode_and_in_range():
    agent = tiny_agent()
    obs = np.random.default_rng(0).integers(0, 256, (9, RENDER, RENDER), dtype=np.uint8)
    a1, a2 = agent.act(obs, deterministic=True), agent.act(obs, deterministic=True)
    assert a1.shape == (A,) and np.array_equal(a1, a2) and np.all(np.abs(a1) <= 1)


def test_state_sac_update_runs():
    agent = SACAgent((5,), A, SACConfig(hidden_dim=16), pixels=False)
    b = Batch(torch.randn(16, 5), torch.rand(16, A), torch.rand(16, 1), torch.ones(16, 1), torch.randn(16, 5))
    metrics = agent.update(b)
    assert math.isfinite(float(metrics["critic_loss"]))


def test_q_values_targets_and_losses_stay_fp32_under_bf16_autocast():
    """Only the encoders run in bf16; a bf16 Q of ~800 would have a step size of 4."""
    autocast = lambda: torch.autocast("cpu", dtype=torch.bfloat16)  # noqa: E731
    cfg = SACConfig(hidden_dim=32, feature_dim=8, num_filters=4, image_size=CROP)
    agent = SACAgent((9, CROP, CROP), A, cfg, generator=torch.Generator().manual_seed(0), autocast=autocast)
    seen = {}

    def record(name):
        return lambda module, args, out: seen.setdefault(name, []).append(out.dtype)

    agent.critic.q1.register_forward_hook(record("q1"))
    agent.critic_target.q2.register_forward_hook(record("target_q2"))
    agent.critic.encoder.convs.register_forward_hook(record("convs"))
    agent.actor.trunk.register_forward_hook(record("actor"))
    b = batch()
    b.reward = b.reward + 800.0  # Q targets near 800
    obs, next_obs = agent.crop(b.obs), agent.crop(b.next_obs)
    loss, feats = agent.critic_loss(obs, b, next_obs)
    assert seen["convs"] == [torch.bfloat16]  # autocast is really on for the encoder
    assert set(seen["q1"]) == set(seen["target_q2"]) == {torch.float32}
    assert loss.dtype == torch.float32 and feats.dtype == torch.float32
    actor_loss, alpha_loss, _ = agent.actor_and_alpha_loss(obs)
    assert actor_loss.dtype == alpha_loss.dtype == torch.float32 and set(seen["actor"]) == {torch.float32}
    metrics = agent.update(b)
    assert all(v.dtype == torch.float32 for v in metrics.values())
