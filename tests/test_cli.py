"""End-to-end: mcrl-train writes a run directory, mcrl-eval reads it, bad input is one clear line."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

TINY = ["env=synthetic-reach", "agent.hidden_dim=32", "agent.num_filters=8", "batch_size=16",
        "random_agent_steps=40", "eval_episodes=1", "log_every=50", "progress=false", "threads=1"]


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    run_dir = root / "run"
    proc = run(["agents.train", *TINY, "steps=200", "eval_every=100", f"hydra.run.dir={run_dir}"], root)
    assert proc.returncode == 0, proc.stderr
    return run_dir


def test_train_writes_the_run_directory(trained_run):
    rows = list(csv.DictReader((trained_run / "eval.csv").open()))
    assert list(rows[0].keys()) == ["env_step", "return_mean", "return_std", "episodes", "wall_time_s"]
    assert [int(r["env_step"]) for r in rows] == [0, 100, 200]
    cfg = yaml.safe_load((trained_run / "config.yaml").read_text())
    assert cfg["agent"]["name"] == "curl" and cfg["env"]["name"] == "synthetic-reach"
    assert cfg["env"]["action_repeat"] == 2 and cfg["seed"] == 1
    train_rows = list(csv.DictReader((trained_run / "train.csv").open()))
    assert "critic_loss" in train_rows[-1] and train_rows[-1]["critic_loss"] != ""
    assert list((trained_run / "tb").glob("events.out.tfevents.*"))
    ckpts = sorted((trained_run / "checkpoints").glob("ckpt_*.pt"))
    state = torch.load(ckpts[-1], weights_only=True)
    assert state["counters"]["env_step"] == 200


def test_eval_cli_on_the_checkpoint(trained_run, tmp_path):
    gif = tmp_path / "ep.gif"
    proc = run(["agents.evaluate", str(trained_run), "--episodes", "2", "--video", str(gif)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "return" in proc.stdout and "over 2 episodes" in proc.stdout
    from PIL import Image

    with Image.open(gif) as image:
        assert image.size == (256, 256)  # the human-sized render, not the agent's observation
    mp4 = tmp_path / "ep.mp4"
    proc = run(["agents.evaluate", str(trained_run), "--episodes", "1", "--video", str(mp4)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    import av
    import yaml

    env = yaml.safe_load((trained_run / "config.yaml").read_text())["env"]
    with av.open(str(mp4)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert frames[0].shape == (256, 256, 3)
    assert len(frames) == env["episode_length"] // env["action_repeat"]  # one frame per agent step
    assert not list(tmp_path.glob(".ep*"))  # no temp file left


def test_resume_continues_from_the_checkpoint(trained_run, tmp_path):
    proc = run(["agents.train", *TINY, "steps=300", "eval_every=100", "resume=true",
                f"hydra.run.dir={trained_run}"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    steps = [int(r["env_step"]) for r in csv.DictReader((trained_run / "eval.csv").open())]
    assert steps == [0, 100, 200, 300]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["agent=nope"], "unknown agent 'nope'"),
        (["env=nope-task"], "unknown env 'nope-task'"),
        (["steps=0"], "steps must be > 0"),
        (["batch_size=64", "random_agent_steps=10"], "larger than the filled replay buffer"),
        (["env.image_size=64"], "larger than the render"),
        (["aux=[curl,nope]"], "unknown aux objective 'nope'"),
        (["agent=mcurl", "aux_cfg.mcurl.seq_len=60"], "longer than an episode"),
        (["agent=mcurl", "aux_cfg.mcurl.mask_prob=1.5"], "must be in [0, 1]"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(args, message, tmp_path):
    proc = run(["agents.train", *TINY, "steps=50", *args, f"hydra.run.dir={tmp_path / 'r'}"], tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("mcrl-train: error:")]
    assert len(errors) == 1 and message in errors[0], proc.stderr


def test_existing_run_is_never_overwritten(trained_run, tmp_path):
    before = (trained_run / "eval.csv").read_text()
    proc = run(["agents.train", *TINY, "steps=50", f"hydra.run.dir={trained_run}"], tmp_path)
    assert proc.returncode == 2 and "already holds a run" in proc.stderr and "Traceback" not in proc.stderr
    assert (trained_run / "eval.csv").read_text() == before


def test_eval_cli_bad_path(tmp_path):
    proc = run(["agents.evaluate", str(tmp_path / "missing")], tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "no such run directory" in proc.stderr


def test_aux_composition_from_the_command_line(tmp_path):
    run_dir = tmp_path / "r"
    proc = run(["agents.train", *TINY, "steps=120", "eval_every=120", "log_every=120", "aux=[curl,mcurl]",
                "aux_cfg.mcurl.seq_len=4", "aux_cfg.mcurl.num_seqs=2", f"hydra.run.dir={run_dir}"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert cfg["agent"]["aux"] == ["curl", "mcurl"] and cfg["agent"]["name"] == "sac+curl+mcurl"
    header = (run_dir / "train.csv").read_text().splitlines()[0]
    assert "aux/curl" in header and "aux/mcurl" in header


def test_train_from_a_pretrained_frozen_encoder(tmp_path):
    from representations.encoders import ConvEncoder, save_encoder

    torch.manual_seed(3)
    path = save_encoder(ConvEncoder(in_channels=9, image_size=32, num_filters=8), tmp_path / "enc.pt")
    run_dir = tmp_path / "r"
    proc = run(["agents.train", *TINY, "steps=120", "eval_every=120", f"encoder_init={path}", "freeze_encoder=true",
                f"hydra.run.dir={run_dir}"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "encoder initialised from" in proc.stderr
    state = torch.load(sorted((run_dir / "checkpoints").glob("*.pt"))[-1], weights_only=True)["state"]["agent"]
    source = torch.load(path, weights_only=True)["state_dict"]
    assert torch.equal(state["agent"]["critic.encoder.convs.0.weight"], source["convs.0.weight"])  # frozen
    assert not torch.equal(state["agent"]["critic.encoder.fc.weight"], source["fc.weight"])  # head learned


def test_missing_encoder_init_is_one_line(tmp_path):
    proc = run(["agents.train", *TINY, "steps=50", f"encoder_init={tmp_path / 'none.pt'}",
                f"hydra.run.dir={tmp_path / 'r'}"], tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "none.pt" in proc.stderr
