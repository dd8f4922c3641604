"""A run interrupted (SIGTERM / SIGKILL) and resumed leaves no holes: every scalar once at every logged
step, CSV rows on their grids, wall time cumulative; a truncated newest checkpoint falls back."""

import csv
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from .pretrain_utils import needs_fashion
from .test_cli_errors import TINY

SETTINGS = [*TINY, "steps=300", "eval_every=100", "checkpoint_every=100"]


def rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.open()))


def interrupted_and_resumed(root: Path, sig: signal.Signals) -> tuple[Path, str]:
    run_dir = root / f"run_{sig.name}"
    cmd = [sys.executable, "-m", "agents.train", *SETTINGS, f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not list((run_dir / "checkpoints").glob("ckpt_*.pt")) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # let it run past the checkpoint: the rows after it must be dropped on resume
    proc.send_signal(sig)
    proc.wait(timeout=60)
    checkpoints = sorted((run_dir / "checkpoints").glob("ckpt_*.pt"))
    assert checkpoints, "the run never wrote a checkpoint"
    wall_at_ckpt = {int(r["env_step"]): float(r["wall_time_s"]) for r in rows(run_dir / "eval.csv")}
    resumed = subprocess.run([*cmd, "resume=true"], cwd=root, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    return run_dir, str(wall_at_ckpt)


def tensorboard_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@pytest.mark.parametrize("sig", [signal.SIGTERM, pytest.param(signal.SIGKILL, marks=pytest.mark.slow)],
                         ids=["sigterm", "sigkill"])
def test_resumed_run_has_every_scalar_once_at_every_logged_step(sig, tmp_path):
    run_dir, _ = interrupted_and_resumed(tmp_path, sig)
    evals, train = rows(run_dir / "eval.csv"), rows(run_dir / "train.csv")
    assert [int(r["env_step"]) for r in evals] == [0, 100, 200, 300]
    assert [int(r["env_step"]) for r in train] == list(range(50, 301, 50))  # the log_every grid
    wall = [float(r["wall_time_s"]) for r in evals]
    assert wall == sorted(wall) and wall[0] < wall[-1]  # cumulative across the restart, never back to 0
    scalars = tensorboard_scalars(run_dir)
    tb = {tag: [step for step, _ in values] for tag, values in scalars.items()}
    assert tb["eval/mean_reward"] == [0, 100, 200, 300]
    assert tb["rollout/ep_rew_mean"] == [100, 200, 300]  # one episode = 100 env steps
    assert scalars["rollout/ep_len_mean"] == [(100, 100.0), (200, 100.0), (300, 100.0)]  # env steps, as SB3
    assert tb["time/fps"] == list(range(50, 301, 50))
    train_tags = [t for t in tb if t.startswith("train/")]
    assert "train/critic_loss" in train_tags
    for tag in train_tags:  # columns start once updates do (after the random steps), then at every row
        steps = tb[tag]
        assert max(Counter(steps).values()) == 1, (tag, steps)
        assert steps == [s for s in range(50, 301, 50) if s >= steps[0]], (tag, steps)
    first = {int(r["env_step"]) for r in train if r["critic_loss"]}
    assert set(tb["train/critic_loss"]) == first


def test_a_truncated_newest_checkpoint_falls_back_to_the_previous_one(tmp_path):
    run_dir = tmp_path / "run"
    train = [sys.executable, "-m", "agents.train", *SETTINGS, f"hydra.run.dir={run_dir}"]
    first = subprocess.run([*train, "steps=200"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    ckpts = sorted((run_dir / "checkpoints").glob("ckpt_*.pt"))
    assert [p.name for p in ckpts] == ["ckpt_0000000100.pt", "ckpt_0000000200.pt"]
    ckpts[-1].write_bytes(ckpts[-1].read_bytes()[:1000])  # a crash mid-copy
    resumed = subprocess.run([*train, "resume=true"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    err = resumed.stderr
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "ckpt_0000000200.pt" in warnings[0] and "previous checkpoint" in warnings[0]
    assert "resumed from the checkpoint at env step 100" in err
    assert [int(r["env_step"]) for r in rows(run_dir / "eval.csv")] == [0, 100, 200, 300]
    shutil.rmtree(run_dir)


@needs_fashion
def test_pretraining_killed_and_resumed_has_every_scalar_once(tmp_path):
    """mcrl-pretrain SIGKILLed after its first checkpoint and resumed: the TensorBoard loss and the CSV
    rows sit once on every ``log_every`` step, including the checkpoint's own step."""
    from .test_pretrain_cli import TINY as PRETRAIN_TINY

    run_dir = tmp_path / "pretrain"
    settings = [*PRETRAIN_TINY, "steps=60", "log_every=5", "checkpoint_every=20", "eval.enabled=false"]
    cmd = [sys.executable, "-m", "representations.pretrain.cli", *settings, f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not list((run_dir / "checkpoints").glob("ckpt_*.pt")) and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("ckpt_*.pt")) != ["ckpt_0000000060.pt"], \
        "the run finished before it could be killed"
    resumed = subprocess.run([*cmd, "resume=true"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert [int(r["step"]) for r in rows(run_dir / "train.csv")] == list(range(5, 61, 5))
    scalars = tensorboard_scalars(run_dir)
    assert [step for step, _ in scalars["pretrain/loss"]] == list(range(5, 61, 5))
    csv_loss = [float(r["loss"]) for r in rows(run_dir / "train.csv")]
    assert [value for _, value in scalars["pretrain/loss"]] == pytest.approx(csv_loss, rel=1e-6)
