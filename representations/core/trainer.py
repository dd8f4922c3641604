"""The pretraining loop shared by every method: one objective, one optimiser, steps or epochs.

Per step: lr from the schedule -> batch of the step (``StepSampler`` rows read through the data's
``PretrainData.batch``, so images, skeletons and video share the loop) -> ``objective(batch)`` under
the runtime's autocast -> backward -> optional clipping -> optimiser step -> ``objective.after_step``
(EMA / momentum encoders). Rank 0 alone writes logs, evaluations and checkpoints.

Exact resume: the schedule, the sampler position and the momentum are functions of the step, and
a checkpoint holds the objective's state_dict (queues and key encoders are buffers/modules there),
the optimiser, the objective's generator states and torch's global RNG. On CPU a resumed run
therefore produces the same losses as the uninterrupted run.
"""

from __future__ import annotations

import math
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from representations.core.errors import TrainingDiverged, UserError

from ..data.protocol import PretrainData
from ..data.sampler import StepSampler
from ..objectives.base import Objective
from . import distributed as dist_utils
from .checkpoint import Checkpointer
from .distributed import DistContext
from .logger import Logger
from .runtime import Runtime
from .schedules import SCHEDULES, lr_at, set_lr, set_weight_decay, warmup_cosine

OPTIMIZERS = ("sgd", "adamw")
EvalHook = Callable[[Objective, int], dict[str, float]]


@dataclass
class TrainerConfig:
    """Loop settings; ``batch_size`` is the GLOBAL batch (split evenly over ranks)."""

    steps: int | None = None
    epochs: int | None = None
    batch_size: int = 256
    optimizer: str = "sgd"
    lr: float = 0.06
    momentum: float = 0.9
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 5e-4
    weight_decay_final: float | None = None  # cosine from weight_decay to this over the run (DINO); None = constant
    no_decay_1d: bool = False  # exclude biases and norm weights from weight decay (ViT practice)
    schedule: str = "cosine"
    warmup_steps: int = 0
    final_lr: float = 0.0
    grad_clip: float | None = None
    log_every: int = 50
    eval_every: int = 0
    checkpoint_every: int = 0
    keep_checkpoints: int = 3
    progress: bool = True
    tensorboard: bool = True
    sync_bn: bool = False
    timing_skip: int = 5  # first steps left out of the median step time (allocations, compilation)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.steps is None) == (self.epochs is None):
            raise UserError("give exactly one of steps or epochs")
        for key in ("steps", "epochs"):
            value = getattr(self, key)
            if value is not None and int(value) < 1:
                raise UserError(f"{key} must be >= 1, got {value}")
        if self.batch_size < 1:
            raise UserError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.optimizer not in OPTIMIZERS:
            raise UserError(f"unknown optimizer {self.optimizer!r}; use one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise UserError(f"unknown lr schedule {self.schedule!r}; use one of {', '.join(SCHEDULES)}")
        if not self.lr > 0:
            raise UserError(f"lr must be > 0, got {self.lr}")
        if self.weight_decay_final is not None and self.weight_decay_final < 0:
            raise UserError(f"weight_decay_final must be >= 0 or null, got {self.weight_decay_final}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise UserError(f"grad_clip must be > 0 or null, got {self.grad_clip}")
        for key in ("log_every", "eval_every", "checkpoint_every", "warmup_steps"):
            if int(getattr(self, key)) < 0:
                raise UserError(f"{key} must be >= 0, got {getattr(self, key)}")


def build_optimizer(params: list[tuple[str, nn.Parameter]], cfg: TrainerConfig) -> torch.optim.Optimizer:
    """SGD with momentum or AdamW over the trainable parameters (optionally no decay on 1-D ones)."""
    decay = [p for n, p in params if not (cfg.no_decay_1d and p.dim() <= 1)]
    no_decay = [p for n, p in params if cfg.no_decay_1d and p.dim() <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay, "decayed": True}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas))


class _Meter:
    """Sums detached metric tensors on the device; one host sync per log row."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor | float] = {}
        self.count = 0

    def add(self, values: dict[str, torch.Tensor | float]) -> None:
        for k, v in values.items():
            v = v.detach().float() if isinstance(v, torch.Tensor) else float(v)
            self.sums[k] = self.sums[k] + v if k in self.sums else v
        self.count += 1

    def pop(self) -> dict[str, float]:
        out = {k: float(v) / max(self.count, 1) for k, v in self.sums.items()}
        self.sums, self.count = {}, 0
        return out


class Trainer:
    """Runs one objective on one ``PretrainData`` into ``run_dir``; ``fit()`` returns a summary dict."""

    def __init__(self, objective: Objective, data: PretrainData, config: TrainerConfig, *, runtime: Runtime,
                 run_dir: str | Path, dist: DistContext | None = None, eval_hook: EvalHook | None = None,
                 run_config: dict[str, Any] | None = None) -> None:
        self.objective, self.data, self.cfg, self.runtime = objective, data, config, runtime
        self.run_dir = Path(run_dir)
        self.dist = dist or DistContext()
        self.eval_hook = eval_hook
        self.run_config = dict(run_config or {})
        if config.batch_size % self.dist.world_size:
            raise UserError(f"batch_size {config.batch_size} is not divisible by {self.dist.world_size} processes")
        self.sampler = StepSampler(len(data), config.batch_size // self.dist.world_size, seed=runtime.seed,
                                   rank=self.dist.rank, world_size=self.dist.world_size)
        self.total_steps = int(config.steps) if config.steps is not None else \
            int(config.epochs) * self.sampler.steps_per_epoch
        self.checkpointer = Checkpointer(self.run_dir / "checkpoints", keep=config.keep_checkpoints)
        self.losses: list[float] = []  # every logged loss (rank-averaged), for tests and summaries

    # -- state -------------------------------------------------------------------------------------
    def _state(self, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available() and self.runtime.torch_device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.runtime.torch_device)
        return {"objective": self.objective.state_dict(), "optimizer": optimizer.state_dict(),
                "generators": self.objective.generator_states(), "rng": rng}

    def _restore(self, ckpt: dict[str, Any], optimizer: torch.optim.Optimizer) -> int:
        state = ckpt["state"]
        self.objective.load_state_dict(state["objective"])
        optimizer.load_state_dict(state["optimizer"])
        self.objective.load_generator_states(state["generators"])
        torch.set_rng_state(state["rng"]["torch"])
        if "cuda" in state["rng"] and self.runtime.torch_device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.runtime.torch_device)
        return int(ckpt["counters"]["step"])

    def _save(self, step: int, optimizer: torch.optim.Optimizer) -> None:
        if self.dist.is_main:
            counters = {"step": step, "epoch": step / self.sampler.steps_per_epoch,
                        "samples": step * self.cfg.batch_size}
            self.checkpointer.save(step, self._state(optimizer), counters, self.run_config)
        dist_utils.barrier()

    # -- loop --------------------------------------------------------------------------------------
    def fit(self, resume: bool = False, until: int | None = None) -> dict[str, Any]:
        """Train to ``total_steps`` (from the newest checkpoint when ``resume``).

        ``until`` stops early after that step, with a checkpoint, exactly as an interrupted job
        would leave the run directory (used by time-sliced jobs and the resume test).
        """
        cfg, device = self.cfg, self.runtime.torch_device
        objective = self.objective
        objective.configure(self.total_steps, self.sampler.steps_per_epoch)
        if cfg.sync_bn and self.dist.enabled:
            nn.SyncBatchNorm.convert_sync_batchnorm(objective)
        objective.to(device).train()
        if self.runtime.compile:
            objective.encoder.compile()
        params = [(n, p) for n, p in objective.named_parameters() if p.requires_grad]
        optimizer = build_optimizer(params, cfg)
        model: nn.Module = objective
        if self.dist.enabled:
            ids = [self.dist.local_rank] if device.type == "cuda" else None
            with warnings.catch_warnings():  # torch 2.13 deprecates the name; the behaviour is what we want
                warnings.simplefilter("ignore", FutureWarning)
                # No buffer broadcast: queues are identical on every rank by construction, and rank 0's
                # BatchNorm statistics must not overwrite the others' at every forward.
                model = DistributedDataParallel(objective, device_ids=ids, broadcast_buffers=False)

        start = 0
        if resume:
            ckpt = self.checkpointer.load_latest(map_location=device, fallback=True)
            if ckpt is not None:
                start = self._restore(ckpt, optimizer)
        logger = None
        if self.dist.is_main:
            logger = Logger(self.run_dir, total=self.total_steps, unit="step", tensorboard=cfg.tensorboard,
                            progress=cfg.progress, resume_step=start if resume else None, initial=start)
        data = self.data.to(device)
        rows = self.sampler.rows.to(device)
        meter, durations = _Meter(), []
        interval_start, interval_steps = time.perf_counter(), 0
        summary: dict[str, Any] = {"start_step": start}
        stop = self.total_steps if until is None else min(int(until), self.total_steps)
        try:
            for step in range(start, stop):
                began = time.perf_counter()
                lr = lr_at(cfg.schedule, step, self.total_steps, cfg.lr, cfg.warmup_steps, cfg.final_lr)
                set_lr(optimizer, lr)
                if cfg.weight_decay_final is not None:
                    set_weight_decay(optimizer, warmup_cosine(step, self.total_steps, cfg.weight_decay, 0,
                                                              cfg.weight_decay_final))
                idx = self.sampler.indices(step).to(device)
                batch = {**data.batch(idx), "rows": rows, "global_batch": self.sampler.global_batch, "step": step}
                if hasattr(data, "prefetch") and step + 1 < stop:  # a streamed set decodes the next batch now
                    data.prefetch(self.sampler.indices(step + 1))
                with self.runtime.autocast():
                    loss, metrics = model(batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip is not None:
                    metrics["grad_norm"] = nn.utils.clip_grad_norm_([p for _, p in params], cfg.grad_clip)
                optimizer.step()
                metrics.update(objective.after_step(step + 1))
                meter.add({"loss": loss, "lr": lr, **metrics})
                done = step + 1
                durations.append(time.perf_counter() - began)
                interval_steps += 1
                if cfg.log_every and (done % cfg.log_every == 0 or done == self.total_steps):
                    row = dist_utils.reduce_mean(meter.pop())
                    if not math.isfinite(row["loss"]):
                        raise TrainingDiverged(f"the loss became {row['loss']} at step {done}; "
                                                 f"lower the learning rate or enable grad_clip")
                    elapsed = time.perf_counter() - interval_start
                    row["samples_per_s"] = interval_steps * self.sampler.global_batch / max(elapsed, 1e-9)
                    interval_start, interval_steps = time.perf_counter(), 0
                    self.losses.append(row["loss"])
                    if logger is not None:
                        logger.scalars({f"pretrain/{k}": v for k, v in row.items()}, done)
                        logger.row("train", {"step": done, "epoch": round(done / self.sampler.steps_per_epoch, 4),
                                             **row})
                        logger.progress(done, loss=f"{row['loss']:.4f}", samples_per_s=f"{row['samples_per_s']:.0f}")
                if self.eval_hook is not None and cfg.eval_every and done % cfg.eval_every == 0:
                    self._evaluate(done, logger)
                    interval_start = time.perf_counter()
                if (cfg.checkpoint_every and done % cfg.checkpoint_every == 0) or done == stop:
                    if logger is not None:
                        logger.flush()  # every event up to this step is on disk before the checkpoint names it
                    self._save(done, optimizer)
                    interval_start = time.perf_counter()
        finally:
            if logger is not None:
                logger.close()
        timed = durations[cfg.timing_skip:] if len(durations) > cfg.timing_skip else durations
        summary.update(steps=self.total_steps, final_loss=self.losses[-1] if self.losses else float("nan"),
                       train_time_s=float(sum(durations)),
                       step_time_s=float(statistics.median(timed)) if timed else float("nan"))
        return summary

    def _evaluate(self, step: int, logger: Logger | None) -> None:
        if self.dist.is_main and self.eval_hook is not None:
            self.objective.eval()
            try:
                values = self.eval_hook(self.objective, step)
            finally:
                self.objective.train()
            if logger is not None and values:
                logger.scalars({f"pretrain/eval/{k}": v for k, v in values.items()}, step)
                logger.row("eval", {"step": step, **values})
                logger.message(f"step {step}: " + ", ".join(f"{k} {v:.2f}" for k, v in values.items()))
            if logger is not None:
                logger.resume_rate()  # the evaluation's minutes stay out of the bar's rate and ETA
        dist_utils.barrier()
