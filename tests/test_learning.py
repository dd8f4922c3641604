"""Slow tier: agents actually learn. Each run is a real ``mcrl-train`` process; returns are compared
with a uniform-random policy measured on the same env in the same test."""

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import envs

pytestmark = pytest.mark.slow

SMALL_PIXEL = ["env=synthetic-reach", "steps=16000", "eval_every=2000", "eval_episodes=10", "batch_size=64",
               "random_agent_steps=200", "agent.hidden_dim=128", "agent.num_filters=16", "progress=false",
               "threads=2", "aux_cfg.mcurl.seq_len=8", "aux_cfg.mcurl.num_seqs=8", "aux_cfg.mcurl.warmup_env_steps=200"]


def random_policy_return(name: str, episodes: int = 20, **kwargs) -> float:
    env = envs.make_env(name, from_pixels=False, seed=123, **kwargs)
    env.action_space.seed(0)
    total = []
    for ep in range(episodes):
        env.reset(seed=ep)
        done, ret = False, 0.0
        while not done:
            _, r, term, trunc, _ = env.step(env.action_space.sample())
            ret += float(r)
            done = term or trunc
        total.append(ret)
    return float(np.mean(total))


def train(args: list[str], run_dir: Path) -> list[float]:
    proc = subprocess.run([sys.executable, "-m", "agents.train", *args, f"hydra.run.dir={run_dir}"],
                          capture_output=True, text=True, timeout=3000)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [float(r["return_mean"]) for r in csv.DictReader((run_dir / "eval.csv").open())]


@pytest.mark.parametrize("agent", ["sac", "curl", "mcurl", "curl_saliency"])
def test_pixel_agents_beat_random_on_synthetic_reach(agent, tmp_path):
    baseline = random_policy_return("synthetic-reach", episode_length=100, action_repeat=2)
    returns = train([f"agent={agent}", *SMALL_PIXEL], tmp_path / agent)
    final = np.mean(returns[-2:])  # last two evaluations, 10 episodes each
    assert final > 1.6 * baseline, f"{agent}: final {final:.1f} vs random {baseline:.1f}; curve {returns}"


def test_state_sac_balances_cartpole(tmp_path):
    baseline = random_policy_return("cartpole-balance", episodes=5)
    returns = train(["agent=state_sac", "env=cartpole-balance", "steps=30000", "eval_every=5000", "eval_episodes=5",
                     "batch_size=128", "random_agent_steps=250", "agent.hidden_dim=256", "progress=false",
                     "threads=2"], tmp_path / "state")
    assert max(returns[-2:]) > 800 and max(returns[-2:]) > 2 * baseline, returns
