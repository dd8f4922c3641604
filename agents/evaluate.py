"""``mcrl-eval RUN_DIR_OR_CHECKPOINT``: deterministic-policy episodes from a saved agent."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from omegaconf import OmegaConf

from agents.errors import UserError, exit_on_user_error
from agents.evaluation import VIDEO_SUFFIXES, run_episodes
from agents.factory import build_agent, make_env_from_config
from agents.seeding import RunSeeds
from representations.core import Checkpointer, CheckpointError, Runtime, load_checkpoint


def find_checkpoint(path: Path) -> Path:
    if path.is_file():
        return path
    if path.is_dir():
        for folder in (path, path / "checkpoints"):
            latest = Checkpointer(folder).latest()
            if latest is not None:
                return latest
        raise UserError(f"no checkpoint (ckpt_*.pt) found in {path} or {path / 'checkpoints'}")
    raise UserError(f"no such run directory or checkpoint: {path}")


def check_video_path(path: Path) -> None:
    """Refuse a --video target that cannot be written, before any episode runs."""
    if path.is_dir():
        raise UserError(f"--video {path} is a directory; give a file name such as {path / 'episode.mp4'}")
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise UserError(f"--video {path}: write .mp4 or .gif, got {path.suffix or 'no suffix'!r}")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"--video {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"--video {path}: {parent} is not writable")


@exit_on_user_error("mcrl-eval")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mcrl-eval", description=__doc__)
    parser.add_argument("path", type=Path, help="a run directory or a ckpt_*.pt file")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=None, help="reset seed of the first episode, then +1 per episode "
                        "(default: the run's own eval start states)")
    parser.add_argument("--video", type=Path, default=None, help="write the first episode here, 256 px (.mp4 or .gif)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    if args.episodes <= 0:
        raise UserError(f"--episodes must be > 0, got {args.episodes}")
    if args.video is not None:
        check_video_path(args.video)
    ckpt_path = find_checkpoint(args.path)
    try:
        state = load_checkpoint(ckpt_path)
    except CheckpointError as err:
        raise UserError(str(err)) from err
    cfg = OmegaConf.create(state["config"])
    runtime = Runtime(device=args.device, seed=int(cfg.seed))
    run_seeds = RunSeeds(int(cfg.seed))
    env = make_env_from_config(cfg.env, bool(cfg.agent.pixels), run_seeds.episode_seed("eval_env", 0))
    agent = build_agent(cfg.agent, cfg.env, env.observation_space, int(env.action_space.shape[0]), runtime,
                        cfg.get("aux_cfg"))
    agent.load_training_state(state["state"]["agent"], weights_only=True)
    agent.eval()
    if args.seed is not None:
        seeds = [args.seed + i for i in range(args.episodes)]
    else:  # the training run's own evaluation start states
        seeds = [run_seeds.episode_seed("eval_env", i) for i in range(args.episodes)]
    returns = run_episodes(agent, env, seeds, args.video)
    env.close()
    step = int(state["counters"].get("env_step", -1))
    print(f"{cfg.agent.name} on {cfg.env.name} (env step {step}, {ckpt_path.name}): "
          f"return {returns.mean():.1f} ± {returns.std():.1f} over {args.episodes} episodes")
    if args.video is not None:
        print(f"video: {args.video}")


if __name__ == "__main__":
    main()
