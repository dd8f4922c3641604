"""1 vs 2 torch threads for a CURL update on a CPU (the choice of ``threads`` in configs/preset/cpu.yaml).

Builds the CPU preset's agent (curl, synthetic-reach 32x32 crops, batch 64, hidden 128, 16 filters)
and, optionally, the paper-scale one (84x84 crops, batch 512, hidden 1024, 32 filters), fills a
replay with random frames, and times ``agent.update()`` (sampling, crops, every loss and step) in
alternating blocks of ``--block`` updates at 1 and at 2 threads; reports the median seconds per
update of each setting over ``--trials`` blocks and the machine's load average, since on a shared
machine the answer depends on what else runs. Writes benchmarks/results/threads_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from agents.factory import build_agent, build_replay, make_env_from_config
from representations.core import Runtime
from representations.core.atomic import atomic_write_json


def build(preset: str):
    with initialize_config_module("configs", version_base="1.3"):
        cfg = compose("train", overrides=[f"preset={preset}"] + ([] if preset == "cpu" else ["env=synthetic-reach",
                      "env.render_size=100", "env.image_size=84"]))
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    runtime = Runtime(device="cpu", seed=0)
    env = make_env_from_config(cfg.env, True, 0)
    cfg.env.action_repeat = int(env.unwrapped.action_repeat)
    action_dim = int(env.action_space.shape[0])
    replay = build_replay(env.observation_space, action_dim, int(cfg.env.frame_stack), 5000, True, runtime, "cpu",
                          0)
    rng = np.random.default_rng(0)
    while replay.num_transitions < 2 * int(cfg.batch_size):
        obs, _ = env.reset(seed=int(rng.integers(1 << 30)))
        replay.start_episode(obs)
        done = False
        while not done:
            obs, reward, term, trunc, _ = env.step(env.action_space.sample())
            replay.add(env.action_space.sample(), float(reward), bool(term), obs)
            done = term or trunc
    agent = build_agent(cfg.agent, cfg.env, env.observation_space, action_dim, runtime, cfg.aux_cfg, replay=replay,
                        batch_size=int(cfg.batch_size))
    return agent, cfg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--presets", nargs="+", default=["cpu"])
    parser.add_argument("--block", type=int, default=5)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "threads_cpu.json")
    args = parser.parse_args()
    results = {}
    for preset in args.presets:
        agent, cfg = build(preset)
        for threads in (1, 2):  # warm-up at both counts
            torch.set_num_threads(threads)
            for _ in range(2):
                agent.update()
        times: dict[int, list[float]] = {1: [], 2: []}
        for trial in range(args.trials):
            for threads in ((1, 2) if trial % 2 == 0 else (2, 1)):
                torch.set_num_threads(threads)
                start = time.perf_counter()
                for _ in range(args.block):
                    agent.update()
                times[threads].append((time.perf_counter() - start) / args.block)
        med = {t: statistics.median(v) for t, v in times.items()}
        results[preset] = {"batch_size": int(cfg.batch_size), "image_size": int(cfg.env.image_size),
                           "hidden_dim": int(cfg.agent.hidden_dim), "num_filters": int(cfg.agent.num_filters),
                           "s_per_update": {str(t): v for t, v in med.items()},
                           "all_s_per_update": {str(t): v for t, v in times.items()},
                           "two_over_one": med[2] / med[1]}
        print(preset, json.dumps(results[preset]["s_per_update"]), f"2/1 = {med[2] / med[1]:.2f}")
    payload = {"benchmark": "threads", "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
               "loadavg_at_end": os.getloadavg(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")},
               "torch": torch.__version__, "block": args.block, "trials": args.trials, "results": results,
               "command": "python benchmarks/threads.py " + " ".join(f"--presets {' '.join(args.presets)}".split())}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, payload)


if __name__ == "__main__":
    main()
