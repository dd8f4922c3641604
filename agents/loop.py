"""The RL training loop: act, step, store, update, log, evaluate, checkpoint (x-axis = env steps)."""

from __future__ import annotations

import signal
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from agents.errors import UserError
from agents.evaluation import run_episodes
from agents.factory import build_agent, build_replay, make_env_from_config
from representations.core import Checkpointer, Logger, Runtime

EVAL_FIELDS = ["env_step", "return_mean", "return_std", "episodes", "wall_time_s"]
EVAL_SEED_OFFSET = 10_000


def validate(cfg: DictConfig) -> None:
    """Reject bad settings before anything is written."""
    for key in ("steps", "eval_every", "eval_episodes", "batch_size", "replay_capacity", "log_every",
                "checkpoint_every", "updates_per_step"):
        if int(cfg[key]) <= 0:
            raise UserError(f"{key} must be > 0, got {cfg[key]}")
    if int(cfg.random_agent_steps) < 0:
        raise UserError(f"random_agent_steps must be >= 0, got {cfg.random_agent_steps}")
    if cfg.agent.pixels and int(cfg.env.image_size) > int(cfg.env.render_size):
        raise UserError(f"crop size env.image_size={cfg.env.image_size} is larger than the render "
                        f"env.render_size={cfg.env.render_size}")


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


def train(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Run one training job into ``run_dir``; returns the final eval row."""
    validate(cfg)
    runtime = Runtime(device=cfg.device, precision=cfg.precision, compile=cfg.compile, seed=int(cfg.seed),
                      num_threads=cfg.threads)
    pixels = bool(cfg.agent.pixels)
    env = make_env_from_config(cfg.env, pixels, int(cfg.seed))
    eval_env = make_env_from_config(cfg.env, pixels, int(cfg.seed) + EVAL_SEED_OFFSET)
    repeat = int(env.unwrapped.action_repeat)
    cfg.env.action_repeat = repeat  # resolved value goes into config.yaml and checkpoints
    if "mcurl" in (cfg.agent.aux or []):
        seq_len = int(cfg.aux_cfg.mcurl.seq_len)
        episode_agent_steps = int(cfg.env.episode_length) // repeat
        if seq_len > episode_agent_steps:
            raise UserError(f"mcurl seq_len {seq_len} is longer than an episode ({episode_agent_steps} agent steps)")
    first_update_transitions = int(cfg.random_agent_steps)
    if first_update_transitions > 0 and int(cfg.batch_size) > first_update_transitions:
        raise UserError(f"batch_size {cfg.batch_size} is larger than the filled replay buffer at the first update "
                        f"({first_update_transitions} transitions after random_agent_steps)")
    if not cfg.resume and ((run_dir / "eval.csv").exists() or Checkpointer(run_dir / "checkpoints").latest()):
        raise UserError(f"{run_dir} already holds a run; pass resume=true to continue it or choose another "
                        "hydra.run.dir (nothing was overwritten)")
    run_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    config = OmegaConf.to_container(cfg, resolve=True)

    action_dim = int(env.action_space.shape[0])
    agent = build_agent(cfg.agent, cfg.env, env.observation_space, action_dim, runtime, cfg.aux_cfg)
    replay = build_replay(env.observation_space, action_dim, int(cfg.env.frame_stack), int(cfg.replay_capacity),
                          pixels, runtime, str(cfg.replay_device), runtime.component_seed("replay") % 2**32)
    agent.replay = replay
    if cfg.encoder_init:
        from agents.transfer import apply_encoder_init

        loaded = apply_encoder_init(agent, str(cfg.encoder_init), bool(cfg.freeze_encoder))
    elif cfg.freeze_encoder:
        raise UserError("freeze_encoder=true needs encoder_init=PATH (a pretrained encoder to keep fixed)")
    else:
        loaded = None
    ckpt = Checkpointer(run_dir / "checkpoints", keep=int(cfg.keep_checkpoints))

    env_step = agent_step = episode = 0
    if cfg.resume and (state := ckpt.load_latest(runtime.torch_device)) is not None:
        agent.load_training_state(state["state"]["agent"])
        env_step, agent_step, episode = (int(state["counters"][k]) for k in ("env_step", "agent_step", "episode"))
    resumed_at = env_step if cfg.resume else None
    logger = Logger(run_dir, total=int(cfg.steps), unit="env_step", csv_fields={"eval": EVAL_FIELDS},
                    progress=bool(cfg.progress), resume_step=resumed_at, initial=env_step)
    if resumed_at:
        logger.message(f"resumed from env step {env_step} (replay buffer starts empty)")
    logger.message(f"run dir: {run_dir} | {runtime.describe()} | action repeat {repeat}")
    if loaded:
        logger.message(f"encoder initialised from {loaded['path']} (frozen: {loaded['frozen']}, "
                       f"head loaded: {loaded['head_loaded']})")

    def save() -> None:
        ckpt.save(env_step, {"agent": agent.training_state()},
                  {"env_step": env_step, "agent_step": agent_step, "episode": episode}, config)

    def evaluate() -> dict[str, float]:
        video = run_dir / "videos" / f"eval_{env_step:09d}.gif" if cfg.save_video else None
        returns = run_episodes(agent, eval_env, int(cfg.eval_episodes), int(cfg.seed) + EVAL_SEED_OFFSET, video)
        row = {"env_step": env_step, "return_mean": float(returns.mean()), "return_std": float(returns.std()),
               "episodes": len(returns), "wall_time_s": round(logger.elapsed(), 2)}
        logger.row("eval", row)
        logger.scalars({"eval/mean_reward": row["return_mean"], "eval/std_reward": row["return_std"]}, env_step)
        logger.progress(env_step, eval=row["return_mean"])
        return row

    rng = runtime.numpy_rng("exploration")
    env.action_space.seed(int(rng.integers(2**31)))
    averager, recent = _Averager(), deque(maxlen=100)
    next_eval = (env_step // int(cfg.eval_every) + 1) * int(cfg.eval_every)
    next_log = env_step + int(cfg.log_every)
    next_ckpt = env_step + int(cfg.checkpoint_every)
    random_until = agent_step + int(cfg.random_agent_steps) if resumed_at is None else agent_step + max(
        int(cfg.batch_size), 1)
    last_eval: dict[str, float] = {}
    interrupted = False

    def on_sigterm(signum: int, frame: Any) -> None:  # SLURM pre-emption: leave a checkpoint
        raise KeyboardInterrupt

    previous_handler = signal.signal(signal.SIGTERM, on_sigterm)
    obs, _ = env.reset(seed=int(cfg.seed) + episode)
    replay.start_episode(obs)
    ep_return, step_timer, step_mark = 0.0, logger.elapsed(), env_step
    try:
        if resumed_at is None:
            last_eval = evaluate()  # the untrained policy: every curve starts at env step 0
        while env_step < int(cfg.steps):
            if agent_step < random_until and resumed_at is None:
                action = env.action_space.sample()
            else:
                action = agent.act(obs)
            if agent_step >= random_until:
                for _ in range(int(cfg.updates_per_step)):
                    averager.add(agent.update(replay.sample(int(cfg.batch_size))))
            obs, reward, terminated, truncated, _ = env.step(action)
            replay.add(action, float(reward), bool(terminated), obs)
            env_step += repeat
            agent_step += 1
            ep_return += float(reward)
            if terminated or truncated:
                recent.append(ep_return)
                episode += 1
                logger.scalars({"rollout/ep_rew_mean": float(np.mean(recent)), "time/episodes": episode}, env_step)
                obs, _ = env.reset(seed=int(cfg.seed) + episode)
                replay.start_episode(obs)
                ep_return = 0.0
            if env_step >= next_eval:  # evaluate before checkpointing at the same step
                last_eval = evaluate()
                next_eval += int(cfg.eval_every)
            if env_step >= next_log:
                now = logger.elapsed()
                fps = (env_step - step_mark) / max(now - step_timer, 1e-9)
                step_timer, step_mark = now, env_step
                row = {"env_step": env_step, "agent_step": agent_step, "episode": episode, "fps": round(fps, 1)}
                row.update(averager.pop())
                logger.row("train", row)
                logger.scalars({f"train/{k}": v for k, v in row.items()
                                if k not in ("env_step", "agent_step", "episode", "fps")}, env_step)
                logger.scalars({"time/fps": fps}, env_step)
                next_log += int(cfg.log_every)
            if env_step >= next_ckpt:
                save()
                next_ckpt += int(cfg.checkpoint_every)
            logger.progress(env_step)
        if last_eval.get("env_step") != env_step:
            last_eval = evaluate()
        save()
    except KeyboardInterrupt:
        interrupted = True
        save()
        logger.message(f"interrupted at env step {env_step}: checkpoint saved; resume with resume=true "
                       f"hydra.run.dir={run_dir}")
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        logger.close()
        env.close()
        eval_env.close()
    if interrupted:
        raise SystemExit(130)
    return last_eval
