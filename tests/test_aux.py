"""Aux objectives inside the SAC update: the explicit contract, gradient routing, optimiser steps,
official M-CURL masking / crops / schedules, and a toy objective added in one file + one YAML."""

import copy
import textwrap

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from agents.aux import CURLAux, MCURLAux, SaliencyCURLAux
from agents.factory import build_aux
from agents.replay import PixelReplay
from agents.sac import AuxInputs, SACAgent, SACConfig
from representations.masking.frames import KEEP, RANDOM, ZERO, mask_observations
from representations.objectives.mcurl import MaskedSequenceContrast

RENDER, CROP, A, FEAT = 40, 32, 2, 16
SETTINGS = {"curl": {}, "curl_saliency": {"grid": 4},
            "mcurl": {"seq_len": 6, "num_seqs": 4, "warmup_env_steps": 20, "dropout": 0.0}}
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


def make_agent(name: str, settings: dict | None = None, **cfg) -> SACAgent:
    torch.manual_seed(0)
    aux = CLASSES[name](settings if settings is not None else SETTINGS[name], feature_dim=FEAT, action_repeat=2)
    return SACAgent((9, CROP, CROP), A, SACConfig(hidden_dim=32, feature_dim=FEAT, num_filters=4, image_size=CROP,
                                                  **cfg), aux=[aux], generator=torch.Generator().manual_seed(0),
                    replay=filled_replay(), batch_size=16)


def aux_loss_only(agent: SACAgent, batch) -> torch.Tensor:
    obs = agent.crop(batch.obs)
    anchor = agent.critic.encoder(obs)
    loss, _ = agent.aux[0].compute(agent.aux_inputs(batch, obs, anchor))
    return loss


def conv_params(agent):
    return list(agent.critic.encoder.convs.parameters())


def test_no_aux_objective_can_reach_the_agent():
    fields = set(AuxInputs.__dataclass_fields__)
    assert fields == {"batch", "obs", "anchor", "online", "target", "crop", "sequences", "random_observations",
                      "generator"}
    import inspect

    import agents.aux

    assert "ctx.agent" not in inspect.getsource(agents.aux) and ".agent" not in inspect.getsource(agents.aux)


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


@pytest.mark.parametrize("name", ["curl", "curl_saliency", "mcurl_joint"])
def test_joint_objectives_give_each_parameter_exactly_one_step_per_update(name):
    agent = make_agent("mcurl", {**SETTINGS["mcurl"], "encoder_step": "joint"}) if name == "mcurl_joint" \
        else make_agent(name)
    target_before = copy.deepcopy(agent.critic_target.state_dict())
    agent.update()  # update 1: samples its own batch; no target step
    for p in agent.critic.parameters():
        assert int(agent.critic_opt.state[p]["step"]) == 1
    aux_opt = agent.aux_opts[0]
    for group in aux_opt.param_groups:
        for p in group["params"]:
            assert int(aux_opt.state[p]["step"]) == 1
    critic_ids = {id(p) for p in agent.critic.parameters()}
    assert not critic_ids & {id(p) for g in aux_opt.param_groups for p in g["params"]}  # no double step
    assert all(torch.equal(target_before[k], v) for k, v in agent.critic_target.state_dict().items())


def test_official_mcurl_steps_the_encoder_again_at_twice_the_rate_after_the_sac_update():
    agent = make_agent("mcurl")
    opt = agent.aux_opts[0]
    own, enc = opt.param_groups
    assert {id(p) for p in enc["params"]} == {id(p) for p in agent.critic.encoder.parameters()}
    assert enc["lr"] == pytest.approx(2 * 1e-3) and own["initial_lr"] == pytest.approx(1e-3)
    order = []
    agent.critic_opt.register_step_post_hook(lambda *a: order.append("critic"))
    opt.register_step_post_hook(lambda *a: order.append("mcurl"))
    agent.update()
    assert order == ["critic", "mcurl"]
    for p in agent.critic.encoder.parameters():  # official: critic optimiser + M-CURL encoder optimiser
        assert int(agent.critic_opt.state[p]["step"]) == 1 and int(opt.state[p]["step"]) == 1


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step")
def test_mcurl_schedules_follow_the_official_formulas():
    """Steps the schedule alone (no optimiser step in between: torch warns, the rates are what is checked)."""
    agent = make_agent("mcurl")  # warm-up = 20 env steps / action repeat 2 = 10 updates
    opt = agent.aux_opts[0]
    assert agent.aux[0].warmup == 10
    own, enc = [], []
    for _ in range(14):
        agent.aux[0].after_step()
        own.append(opt.param_groups[0]["lr"])
        enc.append(opt.param_groups[1]["lr"])
    for step, (o, e) in enumerate(zip(own, enc), start=1):
        ramp = min(step / 10, (10 / step) ** 0.5)  # official InverseSquareRootSchedule (up to its 5e-4 offset)
        anneal = 1.0 if step < 10 else (10 / step) ** 0.5  # official AnneallingSchedule
        assert o == pytest.approx(1e-3 * ramp) and e == pytest.approx(2e-3 * anneal)


def test_mask_observations_blanks_or_swaps_whole_stacked_observations():
    obs = torch.randint(1, 255, (2, 3, 9, 5, 5), dtype=torch.uint8)
    codes = torch.tensor([[ZERO, KEEP, RANDOM], [KEEP, RANDOM, ZERO]])
    swaps = torch.randint(0, 255, (2, 9, 5, 5), dtype=torch.uint8)
    out = mask_observations(obs, codes, swaps)
    assert torch.all(out[0, 0] == 0) and torch.all(out[1, 2] == 0)
    assert torch.equal(out[0, 1], obs[0, 1]) and torch.equal(out[1, 0], obs[1, 0])
    assert torch.equal(out[0, 2], swaps[0]) and torch.equal(out[1, 1], swaps[1])
    with pytest.raises(ValueError, match="random observations"):
        mask_observations(obs, codes, swaps[:1])


def test_official_mcurl_masks_pixels_and_crops_input_and_keys_independently():
    agent = make_agent("mcurl")
    aux = agent.aux[0]
    seen = {"online": [], "target": []}
    batch = agent.replay.sample(16)
    inputs = agent.aux_inputs(batch, agent.crop(batch.obs), None)
    online, target = inputs.online, inputs.target
    inputs.online = lambda x: (seen["online"].append(x.clone()), online(x))[1]
    inputs.target = lambda x: (seen["target"].append(x.clone()), target(x))[1]
    fixed = agent.replay.sample_sequences(4, 6)
    inputs.sequences = lambda n, length: fixed
    loss, _ = aux.compute(inputs)
    masked, keys = seen["online"][0], seen["target"][0]
    assert masked.shape == keys.shape == (24, 9, CROP, CROP)
    blank = masked.flatten(1).amax(1) == 0  # fully blanked stacked observations = ZERO positions
    assert 0 < int(blank.sum()) < 24 and not bool((keys.flatten(1).amax(1) == 0).any())
    unmasked = ~blank
    # independent crops: among positions left alone the input and key windows differ somewhere
    assert not torch.equal(masked[unmasked], keys[unmasked])
    assert torch.isfinite(loss)


def test_feature_masking_is_one_config_key_away():
    agent = make_agent("mcurl", {**SETTINGS["mcurl"], "mask_space": "features"})
    assert agent.aux[0].mask_space == "features"
    assert torch.isfinite(aux_loss_only(agent, agent.replay.sample(16)))
    with pytest.raises(ValueError, match="mask_space"):
        MCURLAux({"mask_space": "pixels"}, feature_dim=FEAT)


@pytest.mark.parametrize("name", list(CLASSES))
def test_aux_loss_falls_when_optimised_alone_on_a_fixed_batch(name):
    agent = make_agent(name)
    batch = agent.replay.sample(16)
    fixed_sequences = agent.replay.sample_sequences(4, 6)
    agent.replay.sample_sequences = lambda n, length: fixed_sequences  # the same sequences every step
    fixed_swaps = agent.replay.sample_observations(24)
    agent.replay.sample_observations = lambda n: fixed_swaps[:n]  # and the same random replacements
    params = list(agent.critic.encoder.parameters()) + list(agent.aux[0].parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    losses = []
    for step in range(80 if name == "mcurl" else 40):  # masked pixels + two crops: a harder fixed problem
        agent.generator.manual_seed(step % 2)  # same crops/masks every other step: a fixed problem
        torch.manual_seed(step % 2)
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


def test_mcurl_contrast_matches_the_official_logits():
    """Official compute_logits: x[masked] @ label.T over all N*L positions, target = own position."""
    torch.manual_seed(0)
    obj = MaskedSequenceContrast(feature_dim=8, heads=1, ffn_dim=16, dropout=0.0).eval()
    feats, targets = torch.randn(3, 5, 8), torch.randn(3, 5, 8)
    selected = torch.rand(3, 5) < 0.5
    selected[0, 0] = True
    loss, _ = obj.contrast(feats, targets, selected)
    x = obj.transformer(feats).reshape(15, 8)
    label = targets.reshape(15, 8)
    idx = torch.arange(15)[selected.reshape(-1)]
    logits = x[idx] @ label.T
    want = torch.nn.functional.cross_entropy(logits, idx)
    assert float(loss.detach()) == pytest.approx(float(want.detach()), rel=1e-5)


def test_mcurl_transformer_unused_at_action_time():
    agent = make_agent("mcurl")
    called = []
    agent.aux[0].objective.transformer.register_forward_hook(lambda *a: called.append(1))
    agent.act(np.zeros((9, RENDER, RENDER), np.uint8))
    assert not called


def test_bad_settings_are_value_errors():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        MCURLAux({"mask_prob": 1.5}, feature_dim=FEAT)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        SaliencyCURLAux({"query_ratio": [0.1, 1.2]}, feature_dim=FEAT)
    with pytest.raises(ValueError, match="logit"):
        SaliencyCURLAux({"hard_mode": "term"}, feature_dim=FEAT)


def test_curl_objective_hard_negative_weighting_against_hand_computation():
    from representations.objectives.curl import CURLObjective

    torch.manual_seed(0)
    obj = CURLObjective(4)
    a, p, hn = torch.randn(3, 4), torch.randn(3, 4), torch.randn(3, 1, 4)
    w = obj.W.detach()
    loss, _ = obj(a, p, hn, 2.0, "logit")
    expected = 0.0
    for i in range(3):
        pos = [float(a[i] @ w @ p[j]) for j in range(3)]
        s_hn = float(a[i] @ w @ hn[i, 0])
        expected += -pos[i] + np.log(np.exp(pos).sum() + np.exp(2.0 * s_hn))  # alpha inside the logit
    assert float(loss.detach()) == pytest.approx(expected / 3, rel=1e-5)


TOY = """
import torch
from agents.aux import AuxBase


class MeanFeature(AuxBase):
    # Toy objective: pull the mean anchor feature towards a learnable goal.

    name = "toy"

    def __init__(self, settings, **kwargs):
        super().__init__(settings, **kwargs)
        self.goal = torch.nn.Parameter(torch.zeros(self.feature_dim))

    def compute(self, inputs):
        loss = (inputs.anchor.mean(0) - self.goal).pow(2).sum()
        return self.weight * loss, {"norm": self.goal.detach().norm()}
"""


def test_a_new_objective_is_one_python_file_plus_one_yaml(tmp_path, monkeypatch):
    (tmp_path / "toy_aux.py").write_text(textwrap.dedent(TOY))
    (tmp_path / "toy.yaml").write_text("_target_: toy_aux.MeanFeature\nweight: 0.5\nlr: 0.01\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    settings = {"toy": OmegaConf.to_container(OmegaConf.load(tmp_path / "toy.yaml"))}
    (toy,) = build_aux(["toy"], settings, FEAT, action_repeat=2)
    assert toy.weight == 0.5 and toy.lr == 0.01
    agent = SACAgent((9, CROP, CROP), A, SACConfig(hidden_dim=32, feature_dim=FEAT, num_filters=4, image_size=CROP),
                     aux=[toy], generator=torch.Generator().manual_seed(0), replay=filled_replay(), batch_size=8)
    metrics = agent.update()
    assert "aux/toy" in metrics and "aux/toy_norm" in metrics
    assert float(toy.goal.detach().abs().sum()) > 0  # its own optimiser stepped it


def test_the_cli_composes_the_settings_of_an_objective_train_yaml_does_not_list(monkeypatch):
    import agents.train as train_cli

    real = train_cli._options
    monkeypatch.setattr(train_cli, "_options", lambda group: [*real(group), "toy"] if group == "aux" else real(group))
    out = train_cli.rewrite_overrides(["aux=[curl,toy]"])
    assert out == ["agent.aux=[curl,toy]", "+aux@aux_cfg.toy=toy", "agent.name=sac+curl+toy"]
