"""Resume continues the same experiment: SIGKILL after a checkpoint, resume, identical numbers."""

import csv
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agents.replay_store import ReplayStore

TINY = ["env=synthetic-reach", "agent=mcurl", "agent.hidden_dim=32", "agent.num_filters=8", "batch_size=16",
        "random_agent_steps=40", "eval_episodes=2", "log_every=50", "progress=false", "threads=1",
        "aux_cfg.mcurl.seq_len=8", "aux_cfg.mcurl.num_seqs=4", "eval_every=100", "checkpoint_every=100",
        "steps=400"]


def cmd(run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "agents.train", *TINY, *extra, f"hydra.run.dir={run_dir}"]


def rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.open()))


def losses(run_dir: Path) -> list[dict[str, str]]:
    """train.csv without the wall-clock column."""
    return [{k: v for k, v in r.items() if k != "fps"} for r in rows(run_dir / "train.csv")]


def returns(run_dir: Path) -> list[tuple[str, str, str]]:
    return [(r["env_step"], r["return_mean"], r["return_std"]) for r in rows(run_dir / "eval.csv")]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    full, killed = root / "full", root / "killed"
    ref = subprocess.Popen(cmd(full), cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    proc = subprocess.Popen(cmd(killed), cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not list((killed / "checkpoints").glob("ckpt_*.pt")) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first_ckpt = sorted((killed / "checkpoints").glob("ckpt_*.pt"))
    assert first_ckpt, "the killed run never wrote a checkpoint"
    resumed = subprocess.run(cmd(killed, "resume=true"), cwd=root, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert ref.wait(timeout=300) == 0, ref.stderr.read()
    return full, killed, resumed.stderr


@pytest.mark.slow
def test_sigkilled_and_resumed_run_is_bit_identical_to_an_uninterrupted_one(runs):
    full, killed, log = runs
    assert "resumed from the checkpoint at env step" in log
    (event,) = rows(killed / "resumes.csv")
    assert event["kind"] == "resumed" and int(event["env_step"]) >= 100
    assert losses(killed) == losses(full)  # every loss, alpha and entropy column, as written
    assert returns(killed) == returns(full)


@pytest.mark.slow
def test_no_duplicate_or_missing_csv_rows_after_resume(runs):
    full, killed, _ = runs
    assert [r[0] for r in returns(killed)] == ["0", "100", "200", "300", "400"]
    assert [r["env_step"] for r in losses(killed)] == [str(s) for s in range(50, 401, 50)]


@pytest.mark.slow
def test_no_duplicate_or_missing_tensorboard_scalars_after_resume(runs):
    full, killed, _ = runs
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for run in (full, killed):
        acc = EventAccumulator(str(run / "tb"))
        acc.Reload()
        steps = [e.step for e in acc.Scalars("eval/mean_reward")]
        assert steps == [0, 100, 200, 300, 400], (run.name, steps)
    for tag in ("train/critic_loss", "rollout/ep_rew_mean", "eval/mean_reward", "train/aux/mcurl"):
        got, want = (EventAccumulator(str(run / "tb")).Reload().Scalars(tag) for run in (killed, full))
        assert [(e.step, e.value) for e in got] == [(e.step, e.value) for e in want], tag


@pytest.mark.slow
def test_replay_is_persisted_once_per_episode(runs):
    full, killed, _ = runs
    assert [e for e, _ in ReplayStore(killed / "replay").episodes()] == list(range(4))  # 4 episodes of 100 env steps


def test_resume_without_a_checkpoint_starts_from_scratch(tmp_path):
    run_dir = tmp_path / "r"
    (run_dir).mkdir()
    (run_dir / "eval.csv").write_text("env_step,return_mean,return_std,episodes,wall_time_s\n300,1,0,1,0\n")
    proc = subprocess.run(cmd(run_dir, "resume=true", "agent=sac", "steps=100"), cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "holds no checkpoint: starting from scratch" in proc.stderr
    assert [r[0] for r in returns(run_dir)] == ["0", "100"]  # step-0 eval ran; the stale row is gone
    assert rows(run_dir / "train.csv")[0]["critic_loss"] == ""  # random exploration steps ran first
    assert [r["kind"] for r in rows(run_dir / "resumes.csv")] == ["restarted"]  # dmc100k's manifest reads it
