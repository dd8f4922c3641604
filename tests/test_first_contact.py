"""What a new user meets first: the CPU preset of bare ``mcrl-train``, and the sweep syntaxes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from agents.train import preset_notice, preset_overrides, rewrite_overrides

from .test_cli_errors import TINY


def composed(overrides: list[str]) -> dict:
    with initialize_config_module("configs", version_base="1.3"):
        return OmegaConf.to_container(compose("train", overrides=overrides), resolve=True)


def test_bare_mcrl_train_without_cuda_runs_the_cpu_preset_and_says_so():
    assert preset_overrides([], cuda=False) == ["preset=cpu"]
    assert preset_overrides([], cuda=True) == []  # paper scale stays the default on CUDA
    assert preset_overrides(["env=cheetah-run"], cuda=False) == []  # explicit runs keep their meaning
    assert "CPU preset" in preset_notice("cpu", "cpu") and "preset=paper" in preset_notice("cpu", "cpu")
    assert "preset=cpu" in preset_notice("paper", "cpu")  # paper scale on a CPU: a warning
    assert preset_notice("paper", "cuda") is None


def test_cpu_preset_config_is_the_measured_small_curl_run():
    cpu, paper = composed(["preset=cpu"]), composed([])
    # the settings of benchmarks/results/cpu_synthetic (16 min for 16k env steps there, returns rising)
    assert cpu["env"]["name"] == "synthetic-reach" and cpu["agent"]["name"] == "curl"
    assert (cpu["steps"], cpu["eval_every"], cpu["batch_size"], cpu["random_agent_steps"], cpu["threads"]) == \
        (16000, 2000, 64, 200, 1)
    assert (cpu["agent"]["hidden_dim"], cpu["agent"]["num_filters"]) == (128, 16)
    assert cpu["checkpoint_every"] == 2000  # interpolations follow the preset
    # paper scale: CURL's own settings
    assert paper["env"]["name"] == "cartpole-swingup" and paper["steps"] == 100000 and paper["batch_size"] == 512
    assert composed(["preset=cpu", "steps=400"])["steps"] == 400  # the command line still wins


def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """A child interpreter: hydra run in-process under pytest's capture of a full session loses sys.stderr."""
    return subprocess.run([sys.executable, "-m", "agents.train", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_multirun_sweeps_over_agents(tmp_path):
    proc = run_cli(["-m", *TINY, "steps=50", "eval_every=50", "agent=curl,sac", f"hydra.sweep.dir={tmp_path}"],
                   tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = sorted(yaml.safe_load(p.read_text())["agent"]["name"] for p in tmp_path.glob("*/config.yaml"))
    assert names == ["curl", "sac"]


def test_multirun_over_tasks_without_their_own_yaml_composes_each_task(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    args = rewrite_overrides(["-m", "env=hopper-hop,cheetah-run"])
    searchpath = [a for a in args if a.startswith("hydra.searchpath=")]
    assert searchpath and args[-1] == "env=hopper-hop,cheetah-run"
    got = [composed([*searchpath, f"env={task}"])["env"] for task in ("hopper-hop", "cheetah-run")]
    # hopper-hop: env/dmc.yaml's values with its name; cheetah-run: its own YAML (CURL's lr 2e-4)
    assert [(e["name"], e["lr"]) for e in got] == [("hopper-hop", 1e-3), ("cheetah-run", 2e-4)]


def test_multirun_over_dmc_tasks_without_their_own_yaml_runs_each_task(tmp_path):
    """The README's ``-m env=hopper-hop,cheetah-run`` for real: one MuJoCo run per task, each named
    and configured as its task (hopper-hop from env/dmc.yaml, cheetah-run from its own YAML)."""
    tiny = [a for a in TINY if not a.startswith("env=")]
    proc = run_cli(["-m", *tiny, "steps=64", "eval_every=64", "env.episode_length=64", "env.render_size=48",
                    "env.image_size=40", "random_agent_steps=8", "batch_size=8", "env=hopper-hop,cheetah-run",
                    f"hydra.sweep.dir={tmp_path}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    configs = [yaml.safe_load(p.read_text()) for p in sorted(tmp_path.glob("*/config.yaml"))]
    assert sorted((c["env"]["name"], c["env"]["lr"]) for c in configs) == [("cheetah-run", 2e-4),
                                                                          ("hopper-hop", 1e-3)]
    for run_dir in (p.parent for p in tmp_path.glob("*/config.yaml")):
        assert [r.split(",")[0] for r in (run_dir / "eval.csv").read_text().splitlines()[1:]] == ["0", "64"]


def test_env_sweep_rewrites_only_tasks_without_yaml():
    out = rewrite_overrides(["-m", "env=hopper-hop,cheetah-run"])
    assert out[-1] == "env=hopper-hop,cheetah-run" and any(a.startswith("hydra.searchpath=") for a in out)
    assert rewrite_overrides(["env=hopper-hop"]) == ["env=dmc", "env.name=hopper-hop"]
    assert rewrite_overrides(["-m", "agent=curl,sac"]) == ["-m", "agent=curl,sac"]


def test_help_lists_the_training_config_groups_only(tmp_path):
    from agents.train import _options

    proc = run_cli(["--help"], tmp_path)
    assert proc.returncode == 0
    out = proc.stdout
    section = out[out.index("== Config groups"): out.index("== Settings")]
    groups = dict(line.split(":", 1) for line in section.splitlines()
                  if line.split(":", 1)[0] in ("agent", "aux", "env", "preset", "data", "method", "encoder"))
    assert set(groups) == {"agent", "aux", "env", "preset"}  # not mcrl-pretrain's data / method / encoder
    for group, listed in groups.items():
        assert [o.strip() for o in listed.split("(")[0].split(",")] == _options(group), group


def test_gymnasium_ids_with_a_spec():
    import gymnasium as gym

    import envs

    env = gym.make("mcrl/synthetic-reach-v0", image_size=32)
    assert env.spec.id == "mcrl/synthetic-reach-v0" and env.spec.kwargs["name"] == "synthetic-reach"
    obs, _ = env.reset(seed=0)
    assert obs.shape == (9, 32, 32) == env.observation_space.shape  # frame stack 3 of RGB
    direct = envs.make_env("synthetic-reach", image_size=32)
    assert (direct.reset(seed=0)[0] == obs).all()  # the same env as envs.make_env
    assert "mcrl/cheetah-run-v0" in gym.registry  # registered without importing dm_control
    assert gym.registry["mcrl/cheetah-run-v0"].entry_point == "envs.registry:make_env"
