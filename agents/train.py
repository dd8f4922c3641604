"""``mcrl-train``: hydra entry point for RL training runs."""

from __future__ import annotations

import re
import sys
from importlib import resources
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from agents.errors import UserError, exit_on_user_error


def _options(group: str) -> list[str]:
    folder = resources.files("configs") / group
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def _composed_aux() -> set[str]:
    """Aux objectives whose settings train.yaml's defaults list already composes into aux_cfg."""
    text = (resources.files("configs") / "train.yaml").read_text()
    return set(re.findall(r"aux@aux_cfg\.(\w+)", text))


def rewrite_overrides(argv: list[str]) -> list[str]:
    """Check ``agent=`` / ``env=`` choices up front (one clear line instead of hydra's page).

    ``aux=[curl,mcurl]`` becomes ``agent.aux=[curl,mcurl] agent.name=sac+curl+mcurl``; an objective
    with a ``configs/aux/<name>.yaml`` that train.yaml does not list is composed into ``aux_cfg.<name>``
    too, so a new objective needs only its Python file and its YAML.

    ``env=<any dm_control task>`` without its own YAML becomes ``env=dmc env.name=<task>``.
    """
    out: list[str] = []
    named = any(arg.startswith("agent.name=") for arg in argv)
    for arg in argv:
        key, _, value = arg.partition("=")
        if key == "aux":  # aux=[curl,mcurl]: the agent's aux list (the config group 'aux' holds settings)
            names = [n.strip() for n in value.strip("[]").split(",") if n.strip()]
            out.append(f"agent.aux=[{','.join(names)}]")
            out += [f"+aux@aux_cfg.{n}={n}" for n in names if n in _options("aux") and n not in _composed_aux()]
            if not named:
                out.append(f"agent.name={'+'.join(['sac', *names])}")
            continue
        if key == "agent" and value and value not in _options("agent"):
            raise UserError(f"unknown agent {value!r}; available: {', '.join(_options('agent'))}")
        if key == "env" and value and "," not in value and value not in _options("env"):
            import envs

            tasks = envs.available_tasks()
            if value not in tasks:
                raise UserError(f"unknown env {value!r}; available: {', '.join(tasks)}")
            out += ["env=dmc", f"env.name={value}"]
            continue
        out.append(arg)
    return out


@hydra.main(config_path="pkg://configs", config_name="train", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> float:
    from agents.loop import train

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        result = train(cfg, run_dir)
    except (UserError, ValueError, FileNotFoundError) as err:
        print(f"mcrl-train: error: {str(err).strip().splitlines()[0]}", file=sys.stderr)
        sys.exit(2)
    if result:
        print(f"final eval at env step {result['env_step']}: return {result['return_mean']:.1f} "
              f"± {result['return_std']:.1f} ({result['episodes']} episodes) -> {run_dir}")
    return float(result.get("return_mean", float("nan"))) if result else float("nan")


@exit_on_user_error("mcrl-train")
def main() -> None:
    sys.argv = [sys.argv[0], *rewrite_overrides(sys.argv[1:])]
    _hydra_main()


if __name__ == "__main__":
    main()
