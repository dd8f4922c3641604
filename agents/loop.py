"""The RL training loop: act, step, store, update, log, evaluate, checkpoint (x-axis = env steps).

``setup`` builds everything a run needs (or restores it from the newest checkpoint); ``run_loop``
executes it. Checkpoints are written at episode boundaries (the first episode end at or after each
``checkpoint_every`` env steps) together with every RNG state and the logging accumulators, and
finished episodes are persisted to ``replay/`` as they end, so a run killed at any moment and
resumed produces the same numbers as an uninterrupted one (bit-identical on CPU).
"""

from __future__ import annotations

import csv
import shutil
import signal
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from agents.errors import UserError, as_user_error
from agents.evaluation import run_episodes
from agents.factory import build_agent, build_replay, make_env_from_config
from agents.replay_store import ReplayStore
from agents.sac import SACAgent
from agents.seeding import RunSeeds
from agents.train import preset_notice
from representations.core import Checkpointer, CheckpointError, Logger, Runtime
from representations.core.rundir import check_run_dir, check_same_run, save_hydra_record
from representations.core.runtime import available_bytes

EVAL_FIELDS = ["env_step", "return_mean", "return_std", "episodes", "wall_time_s"]
COUNTERS = ("env_step", "agent_step", "episode", "next_eval", "next_log", "next_ckpt", "random_until")


def validate(cfg: DictConfig) -> None:
    """Reject bad settings before anything is written."""
    for key in ("steps", "eval_every", "eval_episodes", "batch_size", "replay_capacity", "log_every",
                "checkpoint_every", "updates_per_step"):
        if int(cfg[key]) <= 0:
            raise UserError(f"{key} must be > 0, got {cfg[key]}")
    if int(cfg.random_agent_steps) < 0:
        raise UserError(f"random_agent_steps must be >= 0, got {cfg.random_agent_steps}")
    if int(cfg.seed) < 0:
        raise UserError(f"seed must be >= 0, got {cfg.seed}")
    if cfg.agent.pixels and int(cfg.env.image_size) > int(cfg.env.render_size):
        raise UserError(f"crop size env.image_size={cfg.env.image_size} is larger than the render "
                        f"env.render_size={cfg.env.render_size}")
    first_update_transitions = int(cfg.random_agent_steps)
    if first_update_transitions > 0 and int(cfg.batch_size) > first_update_transitions:
        raise UserError(f"batch_size {cfg.batch_size} is larger than the filled replay buffer at the first update "
                        f"({first_update_transitions} transitions after random_agent_steps)")


class _Averager:
    """Sums metric tensors on device; converts to floats only when a row is written."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    def add(self, metrics: dict[str, torch.Tensor]) -> None:
        for k, v in metrics.items():
            self.sums[k] = self.sums[k] + v if k in self.sums else v.clone()
            self.counts[k] = self.counts.get(k, 0) + 1

    def pop(self) -> dict[str, float]:
        out = {k: float(v) / self.counts[k] for k, v in self.sums.items()}
        self.sums, self.counts = {}, {}
        return out

    def state(self) -> dict[str, Any]:
        return {"sums": dict(self.sums), "counts": dict(self.counts)}

    def load(self, state: dict[str, Any]) -> None:
        self.sums, self.counts = dict(state["sums"]), {k: int(v) for k, v in state["counts"].items()}


@dataclass
class Session:
    """One run, set up: what the loop reads and mutates."""

    cfg: DictConfig
    run_dir: Path
    runtime: Runtime
    seeds: RunSeeds
    env: gym.Env
    eval_env: gym.Env
    agent: SACAgent
    replay: Any
    store: ReplayStore
    ckpt: Checkpointer
    logger: Logger
    explore_rng: np.random.Generator
    config: dict[str, Any]
    counters: dict[str, int]
    resumed: bool
    averager: _Averager = field(default_factory=_Averager)
    recent: deque = field(default_factory=lambda: deque(maxlen=100))
    recent_len: deque = field(default_factory=lambda: deque(maxlen=100))  # env steps, as SB3's ep_len_mean
    saved_at: int = -1

    # -- persistence -----------------------------------------------------------------------------
    def save(self) -> None:
        """A checkpoint of everything the rest of the run depends on (call at an episode boundary)."""
        state = {"agent": self.agent.training_state(),
                 "rng": {"torch": torch.get_rng_state(), "exploration": self.explore_rng.bit_generator.state,
                         "replay": self.replay.rng_state()},
                 "logging": {"averager": self.averager.state(), "recent": list(self.recent),
                             "recent_len": list(self.recent_len)}}
        if torch.cuda.is_available():
            state["rng"]["cuda"] = torch.cuda.get_rng_state_all()
        self.logger.flush()  # every event up to this step is on disk before the checkpoint names it
        counters = {**self.counters, "wall_time_s": round(self.logger.elapsed(), 3)}
        self.ckpt.save(self.counters["env_step"], state, counters, self.config)
        self.saved_at = self.counters["env_step"]

    def restore(self, state: dict[str, Any]) -> None:
        s = state["state"]
        self.agent.load_training_state(s["agent"])
        self.counters.update({k: int(state["counters"][k]) for k in COUNTERS})
        torch.set_rng_state(s["rng"]["torch"].cpu())
        if "cuda" in s["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([t.cpu() for t in s["rng"]["cuda"]])
        self.explore_rng.bit_generator.state = s["rng"]["exploration"]
        self.averager.load(s["logging"]["averager"])
        self.recent.extend(float(r) for r in s["logging"]["recent"])
        self.recent_len.extend(int(n) for n in s["logging"].get("recent_len", []))
        episodes = self.counters["episode"]
        self.store.prune_from(episodes)
        self.store.restore(self.replay, episodes)
        self.replay.set_rng_state(s["rng"]["replay"])


def _fresh_counters(cfg: DictConfig) -> dict[str, int]:
    return {"env_step": 0, "agent_step": 0, "episode": 0, "next_eval": int(cfg.eval_every),
            "next_log": int(cfg.log_every), "next_ckpt": int(cfg.checkpoint_every),
            "random_until": int(cfg.random_agent_steps)}


# settings a resume must share with the run it continues (anything else, e.g. steps, may change)
RESUME_KEYS = ("agent", "env", "aux_cfg", "seed", "batch_size", "replay_capacity", "encoder_init", "freeze_encoder")


def check_resume_config(requested: dict[str, Any], saved: dict[str, Any]) -> None:
    """Refuse to continue a run under another agent, architecture or task; name the keys that differ."""
    check_same_run(requested, saved, RESUME_KEYS)


def check_replay_memory(cfg: DictConfig, env: gym.Env, runtime: Runtime) -> None:
    """Refuse a replay buffer that cannot fit before allocating it (one line instead of an OOM kill)."""
    capacity = int(cfg.replay_capacity)
    shape = env.observation_space.shape
    action_dim = int(env.action_space.shape[0])
    if cfg.agent.pixels:
        frame = int(np.prod(shape)) // int(cfg.env.frame_stack)
        per = frame + action_dim * 4 + 16
        storage = runtime.torch_device if str(cfg.replay_device) == "auto" else torch.device(str(cfg.replay_device))
    else:
        per = (2 * int(shape[0]) + action_dim + 2) * 4
        storage = torch.device("cpu")
    need = capacity * per
    free = available_bytes(storage)
    if free is not None and need > 0.9 * free:
        raise UserError(f"replay_capacity={capacity} needs {need / 2**30:.1f} GiB on {storage.type} but only "
                        f"{free / 2**30:.1f} GiB is available; lower replay_capacity")


def setup(cfg: DictConfig, run_dir: Path) -> Session:
    """Validate, build envs / agent / replay, and restore the newest checkpoint when resuming.

    Everything that can refuse the run is checked before the first byte is written to ``run_dir``,
    so a refused run or resume leaves an existing run exactly as it was.
    """
    validate(cfg)
    check_run_dir(run_dir)
    seeds = RunSeeds(int(cfg.seed))
    runtime = Runtime(device=cfg.device, precision=cfg.precision, compile=cfg.compile, seed=int(cfg.seed),
                      num_threads=cfg.threads)
    pixels = bool(cfg.agent.pixels)
    env = make_env_from_config(cfg.env, pixels, seeds.episode_seed("train_env", 0))
    eval_env = make_env_from_config(cfg.env, pixels, seeds.episode_seed("eval_env", 0))
    repeat = int(env.unwrapped.action_repeat)
    cfg.env.action_repeat = repeat  # resolved value goes into config.yaml and checkpoints
    if "mcurl" in (cfg.agent.aux or []):
        seq_len = int(cfg.aux_cfg.mcurl.seq_len)
        episode_agent_steps = int(cfg.env.episode_length) // repeat
        if seq_len > episode_agent_steps:
            raise UserError(f"mcurl seq_len {seq_len} is longer than an episode ({episode_agent_steps} agent steps)")
    if cfg.freeze_encoder and not cfg.encoder_init:
        raise UserError("freeze_encoder=true needs encoder_init=PATH (a pretrained encoder to keep fixed)")
    ckpt = Checkpointer(run_dir / "checkpoints", keep=int(cfg.keep_checkpoints))
    store = ReplayStore(run_dir / "replay")
    if not cfg.resume and ((run_dir / "eval.csv").exists() or ckpt.latest()):
        raise UserError(f"{run_dir} already holds a run; pass resume=true to continue it or choose another "
                        "hydra.run.dir (nothing was overwritten)")
    with as_user_error(CheckpointError, prefix="resume=true: "):
        state = ckpt.load_latest(runtime.torch_device, fallback=True) if cfg.resume else None
    config = OmegaConf.to_container(cfg, resolve=True)
    if state is not None:
        check_resume_config(config, state["config"])
        done = int(state["counters"]["env_step"])
        if int(cfg.steps) <= done:
            raise UserError(f"steps={cfg.steps} but the run's checkpoint is already at env step {done}; "
                            f"pass steps > {done} to continue it (nothing was changed)")
    check_replay_memory(cfg, env, runtime)

    action_dim = int(env.action_space.shape[0])
    replay = build_replay(env.observation_space, action_dim, int(cfg.env.frame_stack), int(cfg.replay_capacity),
                          pixels, runtime, str(cfg.replay_device), seeds.numpy_rng("replay"))
    agent = build_agent(cfg.agent, cfg.env, env.observation_space, action_dim, runtime, cfg.aux_cfg, replay=replay,
                        batch_size=int(cfg.batch_size),
                        generator=seeds.torch_generator("agent", runtime.torch_device))
    loaded = None
    if cfg.encoder_init:
        from agents.transfer import apply_encoder_init

        loaded = apply_encoder_init(agent, str(cfg.encoder_init), bool(cfg.freeze_encoder))

    # -- validated: from here on the run dir is written --------------------------------------------
    had_run = (run_dir / "eval.csv").exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    if state is None:
        store.clear()  # a fresh start owns the folder: stale episodes of a run without checkpoint go
        if (run_dir / "tb").is_dir():
            shutil.rmtree(run_dir / "tb")
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    save_hydra_record(run_dir, cfg)

    counters = _fresh_counters(cfg)
    resume_step = int(state["counters"]["env_step"]) if state is not None else (-1 if cfg.resume else None)
    elapsed = float(state["counters"].get("wall_time_s", 0.0)) if state is not None else 0.0
    logger = Logger(run_dir, total=int(cfg.steps), unit="env_step", csv_fields={"eval": EVAL_FIELDS},
                    progress=bool(cfg.progress), resume_step=resume_step, initial=max(resume_step or 0, 0),
                    elapsed=elapsed)
    session = Session(cfg, run_dir, runtime, seeds, env, eval_env, agent, replay, store, ckpt, logger,
                      seeds.numpy_rng("exploration"), config, counters, resumed=state is not None)
    if state is not None or (cfg.resume and had_run):
        _record_resume(run_dir, "resumed" if state is not None else "restarted",
                       int(state["counters"]["env_step"]) if state is not None else 0)
    if state is not None:
        session.restore(state)
        logger.message(f"resumed from the checkpoint at env step {counters['env_step']} (episode "
                       f"{counters['episode']}, {replay.num_transitions} transitions reloaded into the replay buffer)")
    elif cfg.resume:
        logger.message(f"resume=true but {run_dir / 'checkpoints'} holds no checkpoint: starting from scratch "
                       "(earlier log rows were discarded)")
    logger.message(f"run dir: {run_dir} | {runtime.describe()} | action repeat {repeat}")
    if (notice := preset_notice(_hydra_choice("preset"), runtime.torch_device.type)) is not None:
        logger.message(f"mcrl-train: {notice}")
    if loaded:
        logger.message(f"encoder initialised from {loaded['path']} (frozen: {loaded['frozen']}, "
                       f"head loaded: {loaded['head_loaded']})")
    return session


def _hydra_choice(group: str) -> str | None:
    """The option hydra composed for ``group`` (None outside hydra)."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().runtime.choices.get(group) if HydraConfig.initialized() else None


def _record_resume(run_dir: Path, kind: str, env_step: int) -> None:
    """Append to resumes.csv, so sweeps (benchmarks/dmc100k.py) can say which runs were resumed."""
    path = run_dir / "resumes.csv"
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(["kind", "env_step", "unix_time"])
        writer.writerow([kind, env_step, round(time.time(), 1)])


def evaluate(s: Session) -> dict[str, float]:
    """Deterministic-policy episodes on the eval env, same start states at every evaluation."""
    step = s.counters["env_step"]
    video = s.run_dir / "videos" / f"eval_{step:09d}.mp4" if s.cfg.save_video else None
    seeds = [s.seeds.episode_seed("eval_env", i) for i in range(int(s.cfg.eval_episodes))]
    n = len(seeds)
    returns = run_episodes(s.agent, s.eval_env, seeds, video,
                           on_episode=lambda done: s.logger.progress(step, evaluating=f"{done}/{n} episodes"))
    s.logger.clear_postfix("evaluating")
    s.logger.resume_rate()
    row = {"env_step": step, "return_mean": float(returns.mean()), "return_std": float(returns.std()),
           "episodes": len(returns), "wall_time_s": round(s.logger.elapsed(), 2)}
    s.logger.row("eval", row)
    s.logger.scalars({"eval/mean_reward": row["return_mean"], "eval/std_reward": row["return_std"]}, step)
    s.logger.progress(step, eval=row["return_mean"])
    return row


def _random_action(s: Session) -> np.ndarray:
    space = s.env.action_space
    return s.explore_rng.uniform(space.low, space.high).astype(space.dtype)


def run_loop(s: Session) -> dict[str, Any]:
    """Run ``s`` to ``cfg.steps`` env steps; returns the final eval row."""
    cfg, c, agent, replay, logger = s.cfg, s.counters, s.agent, s.replay, s.logger
    repeat = int(cfg.env.action_repeat)
    last_eval: dict[str, Any] = {}
    interrupted = False

    def on_sigterm(signum: int, frame: Any) -> None:  # SLURM pre-emption
        raise KeyboardInterrupt

    previous_handler = signal.signal(signal.SIGTERM, on_sigterm)
    obs, _ = s.env.reset(seed=s.seeds.episode_seed("train_env", c["episode"]))
    replay.start_episode(obs)
    ep_return, ep_len, step_timer, step_mark = 0.0, 0, logger.elapsed(), c["env_step"]
    try:
        if not s.resumed:
            last_eval = evaluate(s)  # the untrained policy: every curve starts at env step 0
        while c["env_step"] < int(cfg.steps):
            action = _random_action(s) if c["agent_step"] < c["random_until"] else agent.act(obs)
            if c["agent_step"] >= c["random_until"]:
                for _ in range(int(cfg.updates_per_step)):
                    s.averager.add(agent.update())
            obs, reward, terminated, truncated, _ = s.env.step(action)
            replay.add(action, float(reward), bool(terminated), obs)
            c["env_step"] += repeat
            c["agent_step"] += 1
            ep_return += float(reward)
            ep_len += 1
            done = terminated or truncated
            if done:
                s.store.write(c["episode"], replay.episode_arrays())
                c["episode"] += 1
                s.recent.append(ep_return)
                s.recent_len.append(ep_len * repeat)
                logger.scalars({"rollout/ep_rew_mean": float(np.mean(s.recent)),
                                "rollout/ep_len_mean": float(np.mean(s.recent_len)), "time/episodes": c["episode"]},
                               c["env_step"])
            if c["env_step"] >= c["next_eval"]:  # evaluate before checkpointing at the same step
                last_eval = evaluate(s)
                c["next_eval"] += int(cfg.eval_every)
            if c["env_step"] >= c["next_log"]:
                now = logger.elapsed()
                fps = (c["env_step"] - step_mark) / max(now - step_timer, 1e-9)
                step_timer, step_mark = now, c["env_step"]
                row = {"env_step": c["env_step"], "agent_step": c["agent_step"], "episode": c["episode"],
                       "fps": round(fps, 1), **s.averager.pop()}
                logger.row("train", row)
                logger.scalars({f"train/{k}": v for k, v in row.items()
                                if k not in ("env_step", "agent_step", "episode", "fps")}, c["env_step"])
                logger.scalars({"time/fps": fps}, c["env_step"])
                c["next_log"] += int(cfg.log_every)
            if done:
                if c["env_step"] >= c["next_ckpt"]:  # at an episode boundary: nothing in flight
                    while c["next_ckpt"] <= c["env_step"]:
                        c["next_ckpt"] += int(cfg.checkpoint_every)
                    s.save()
                obs, _ = s.env.reset(seed=s.seeds.episode_seed("train_env", c["episode"]))
                replay.start_episode(obs)
                ep_return, ep_len = 0.0, 0
            logger.progress(c["env_step"])
        if last_eval.get("env_step") != c["env_step"]:
            last_eval = evaluate(s)
        if s.saved_at != c["env_step"]:
            s.save()  # the final state (mid-episode when steps is not a multiple of the episode length)
    except KeyboardInterrupt:
        interrupted = True
        latest = s.ckpt.latest()
        where = f"the checkpoint {latest.name}" if latest else "the start (no checkpoint yet)"
        logger.message(f"interrupted at env step {c['env_step']}: resume=true hydra.run.dir={s.run_dir} continues "
                       f"from {where}; checkpoints are taken at episode ends so the resumed run is exact")
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        logger.close()
        s.env.close()
        s.eval_env.close()
    if interrupted:
        raise SystemExit(130)
    return last_eval


def train(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Run one training job into ``run_dir``; returns the final eval row."""
    return run_loop(setup(cfg, run_dir))
