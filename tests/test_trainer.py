"""Trainer core: schedules, EMA maths, MoCo queue, optimisers, logging, exact resume."""

import csv
import math

import pytest
import torch
from torch import nn

from representations.core import Runtime
from representations.core.schedules import lr_at, set_lr, warmup_cosine
from representations.core.trainer import Trainer, TrainerConfig, build_optimizer
from representations.modules import EMA, ema_update
from representations.objectives import MoCo, MoCoSaliency

from .pretrain_utils import augment, fashion_subset, generators, needs_fashion, tiny_resnet


def test_warmup_cosine_values():
    assert warmup_cosine(0, 100, 1.0, warmup_steps=10) == pytest.approx(0.1)
    assert warmup_cosine(9, 100, 1.0, warmup_steps=10) == pytest.approx(1.0)
    assert warmup_cosine(10, 100, 1.0, warmup_steps=10) == pytest.approx(1.0)
    mid = 10 + (99 - 10) / 2
    assert warmup_cosine(int(mid), 100, 1.0, 10) == pytest.approx(0.5 * (1 + math.cos(math.pi * 44 / 89)))
    assert warmup_cosine(99, 100, 1.0, 10, final=0.1) == pytest.approx(0.1)
    assert warmup_cosine(0, 1, 0.3) == pytest.approx(0.3)
    assert lr_at("constant", 50, 100, 0.2, 10) == 0.2
    assert lr_at("constant", 4, 100, 0.2, 10) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="unknown lr schedule"):
        lr_at("step", 0, 10, 1.0)
    opt = torch.optim.SGD([{"params": [nn.Parameter(torch.zeros(1))], "lr_scale": 0.5}], lr=1.0)
    set_lr(opt, 0.2)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)


def test_ema_maths_and_momentum_schedule():
    online, target = nn.Linear(3, 2), nn.Linear(3, 2)
    before = target.weight.detach().clone()
    ema_update(target, online, tau=0.25)
    assert torch.allclose(target.weight, 0.75 * before + 0.25 * online.weight)
    ema = EMA(nn.Linear(2, 2), base=0.9, final=1.0, total_steps=10, schedule="cosine")
    assert ema.momentum(0) == pytest.approx(0.9) and ema.momentum(10) == pytest.approx(1.0)
    assert ema.momentum(5) == pytest.approx(0.95)
    with torch.no_grad():
        ema.online.weight.add_(1.0)
    old = ema.target.weight.detach().clone()
    m = ema.update(0)
    assert torch.allclose(ema.target.weight, m * old + (1 - m) * ema.online.weight)


def test_moco_queue_enqueue_and_wraparound():
    obj = MoCo(tiny_resnet(), augment(), dim=4, hidden_dim=8, queue_size=6, generators=generators())
    keys = torch.nn.functional.normalize(torch.arange(16.0).view(4, 4) + 1, dim=1)
    obj._enqueue(keys)
    assert int(obj.queue_ptr) == 4 and torch.equal(obj.queue[:4], keys)
    old_tail = obj.queue[4:].clone()
    obj._enqueue(keys.flip(0))  # 4 more: slots 4, 5, then wrap to 0, 1 (oldest dequeued first)
    assert int(obj.queue_ptr) == 2
    assert torch.equal(obj.queue[4:], keys.flip(0)[:2]) and torch.equal(obj.queue[:2], keys.flip(0)[2:])
    assert not torch.equal(obj.queue[4:], old_tail)
    assert "queue" in obj.state_dict() and "queue_ptr" in obj.state_dict()


def test_optimizers_and_config_validation():
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))
    params = list(model.named_parameters())
    sgd = build_optimizer(params, TrainerConfig(steps=1, optimizer="sgd", momentum=0.8))
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["momentum"] == 0.8
    adamw = build_optimizer(params, TrainerConfig(steps=1, optimizer="adamw", no_decay_1d=True, weight_decay=0.1))
    assert isinstance(adamw, torch.optim.AdamW)
    assert [len(g["params"]) for g in adamw.param_groups] == [1, 3]
    assert adamw.param_groups[1]["weight_decay"] == 0.0
    for bad, match in (({}, "exactly one of steps or epochs"), ({"steps": 1, "optimizer": "lamb"}, "unknown optimizer"),
                       ({"steps": 1, "lr": 0}, "lr must be > 0"), ({"steps": 1, "grad_clip": -1}, "grad_clip")):
        with pytest.raises(ValueError, match=match):
            TrainerConfig(**bad)


def _saliency_trainer(run_dir, **overrides):
    obj = MoCoSaliency(tiny_resnet(), augment(), dim=8, hidden_dim=16, queue_size=32, fill="highpass",
                       generators=generators(7))
    cfg = TrainerConfig(**{"steps": 8, "batch_size": 16, "lr": 0.05, "warmup_steps": 2, "log_every": 1,
                           "checkpoint_every": 4, "keep_checkpoints": 2, "progress": False, "grad_clip": 5.0,
                           **overrides})
    runtime = Runtime(device="cpu", seed=7)
    return Trainer(obj, fashion_subset(64), cfg, runtime=runtime, run_dir=run_dir)


@needs_fashion
def test_resume_is_exact(tmp_path):
    """A run stopped at step 4 and resumed gives the uninterrupted run's losses bit for bit."""
    torch.manual_seed(0)
    full = _saliency_trainer(tmp_path / "full")
    full.fit()
    torch.manual_seed(0)
    first = _saliency_trainer(tmp_path / "cut")
    first.fit(until=4)
    torch.manual_seed(123)  # the resumed process starts from other global RNG state: must not matter
    second = _saliency_trainer(tmp_path / "cut")
    summary = second.fit(resume=True)
    assert summary["start_step"] == 4
    assert first.losses + second.losses == full.losses
    assert len(full.losses) == 8
    for name, value in full.objective.state_dict().items():
        assert torch.equal(value, second.objective.state_dict()[name]), name
    rows = list(csv.DictReader((tmp_path / "cut" / "train.csv").open()))
    assert [int(r["step"]) for r in rows] == list(range(1, 9))
    assert {"loss", "lr", "acc", "momentum", "grad_norm", "samples_per_s", "hard_sim"} <= set(rows[0])
    ckpts = sorted(p.name for p in (tmp_path / "cut" / "checkpoints").glob("ckpt_*.pt"))
    assert ckpts == ["ckpt_0000000004.pt", "ckpt_0000000008.pt"]
    assert list((tmp_path / "cut" / "tb").glob("events.out.tfevents.*"))


@needs_fashion
def test_epochs_and_eval_hook(tmp_path):
    calls = []

    def hook(objective, step):
        calls.append((step, objective.training))
        return {"knn_top1": 10.0}

    obj = MoCo(tiny_resnet(), augment(), dim=8, hidden_dim=16, queue_size=32, generators=generators())
    cfg = TrainerConfig(epochs=2, batch_size=16, log_every=2, eval_every=3, progress=False)
    trainer = Trainer(obj, fashion_subset(40), cfg, runtime=Runtime(device="cpu"), run_dir=tmp_path, eval_hook=hook)
    summary = trainer.fit()
    assert trainer.total_steps == 4 and summary["steps"] == 4  # 40 // 16 = 2 steps per epoch
    assert calls == [(3, False)] and obj.training
    rows = list(csv.DictReader((tmp_path / "eval.csv").open()))
    assert rows == [{"step": "3", "knn_top1": "10.0"}]


class _Vectors:
    """A non-image ``PretrainData``: float rows under the key ``vectors``."""

    def __init__(self, vectors: torch.Tensor, labels: torch.Tensor) -> None:
        self.vectors, self.labels = vectors, labels

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    def to(self, device):
        return _Vectors(self.vectors.to(device), self.labels.to(device))

    def batch(self, indices):
        return {"vectors": self.vectors[indices], "labels": self.labels[indices]}


class _MeanObjective(nn.Module):
    """Records what the Trainer hands it; loss = squared norm of a linear map of the rows."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Linear(3, 2)
        self.seen: list[dict] = []

    def configure(self, total_steps, steps_per_epoch):
        pass

    def after_step(self, step):
        return {}

    def generator_states(self):
        return {}

    def forward(self, batch):
        self.seen.append({k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in batch.items()})
        return self.encoder(batch["vectors"]).pow(2).mean(), {}


def test_trainer_takes_any_pretrain_data(tmp_path):
    """Any object with len / to / batch trains: step s sees exactly the StepSampler's rows of s."""
    from representations.data import ImageData, PretrainData, StepSampler

    data = _Vectors(torch.arange(30.0).view(10, 3), torch.arange(10) % 3)
    assert isinstance(data, PretrainData)
    assert isinstance(ImageData(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(2)), PretrainData)
    obj = _MeanObjective()
    cfg = TrainerConfig(steps=5, batch_size=4, log_every=1, progress=False, tensorboard=False)
    Trainer(obj, data, cfg, runtime=Runtime(device="cpu", seed=3), run_dir=tmp_path).fit()
    sampler = StepSampler(10, 4, seed=3)  # the reference order, built independently of the Trainer
    assert [b["step"] for b in obj.seen] == list(range(5))
    for step, batch in enumerate(obj.seen):
        idx = sampler.indices(step)
        assert torch.equal(batch["vectors"], data.vectors[idx]) and torch.equal(batch["labels"], data.labels[idx])
        assert batch["global_batch"] == 4 and torch.equal(batch["rows"], torch.arange(4))


class _DecayOnly(_MeanObjective):
    """Zero gradient everywhere: an AdamW step then only applies decoupled weight decay."""

    def forward(self, batch):
        return 0.0 * self.encoder(batch["vectors"]).sum(), {}


def test_weight_decay_follows_a_cosine_to_its_final_value(tmp_path):
    """DINO's schedule: wd_t = final + (wd - final)(1 + cos(pi t / (T - 1))) / 2, applied at step t."""
    data = _Vectors(torch.arange(30.0).view(10, 3), torch.arange(10) % 3)
    obj = _DecayOnly()
    before = obj.encoder.weight.detach().clone()
    cfg = TrainerConfig(steps=6, batch_size=4, optimizer="adamw", lr=0.1, schedule="constant", weight_decay=0.04,
                        weight_decay_final=0.4, no_decay_1d=True, log_every=0, progress=False, tensorboard=False)
    Trainer(obj, data, cfg, runtime=Runtime(device="cpu", seed=0), run_dir=tmp_path).fit()
    factor = 1.0
    for t in range(6):  # hand computation of the schedule
        wd = 0.4 + (0.04 - 0.4) * (1 + math.cos(math.pi * t / 5)) / 2
        factor *= 1 - 0.1 * wd
    assert torch.allclose(obj.encoder.weight, before * factor, rtol=1e-5)
    with pytest.raises(ValueError, match="weight_decay_final"):
        TrainerConfig(steps=1, weight_decay_final=-1.0)


def test_method_optim_sets_lr_scaling_clip_and_weight_decay_schedule():
    """m2crl's official optimiser: lr 5e-4 per 256 clips, grad clip 3, weight decay 0.04 -> 0.4."""
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from representations.pretrain.build import trainer_config

    with initialize_config_module(config_module="configs", version_base="1.3"):
        cfg = OmegaConf.to_container(compose(config_name="pretrain", overrides=[
            "method=m2crl", "data=video", "encoder=video_vit", "batch_size=32"]), resolve=True)
    loop = trainer_config(cfg)
    assert loop.lr == pytest.approx(5e-4 * 32 / 256) and loop.grad_clip == 3.0
    assert (loop.weight_decay, loop.weight_decay_final) == (0.04, 0.4)
    loop = trainer_config({**cfg, "lr": 1e-3, "grad_clip": 1.0})  # overrides win, and are per 256 clips too
    assert loop.lr == pytest.approx(1e-3 * 32 / 256) and loop.grad_clip == 1.0
    moco = trainer_config({**cfg, "method": {"optim": {"lr": 0.03}}})
    assert moco.lr == 0.03 and moco.grad_clip is None and moco.weight_decay_final is None
