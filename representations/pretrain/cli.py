"""``mcrl-pretrain``: hydra entry point for self-supervised pretraining runs (also under torchrun)."""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path
from typing import Any

import hydra
import yaml
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from ..core.checkpoint import CheckpointError
from ..core.errors import UserError, as_user_error, exit_on_user_error, fail, one_line
from ..core.rundir import check_output_overrides, check_run_dir, check_same_run, save_hydra_record

PROG = "mcrl-pretrain"
_GROUPS = ("method", "data", "encoder")
# settings a resumed pretraining run must share with the run it continues
RESUME_KEYS = ("method", "encoder", "data", "seed", "batch_size")


def options(group: str) -> list[str]:
    folder = resources.files("configs") / group
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def check_overrides(argv: list[str]) -> None:
    """Reject unknown ``method=`` / ``data=`` / ``encoder=`` choices before hydra prints a page."""
    for arg in argv:
        key, sep, value = arg.partition("=")
        key = key.lstrip("+~")
        if sep and key in _GROUPS and value:
            for choice in (v.strip() for v in value.strip("[]").split(",")):
                if choice and choice not in options(key):
                    raise UserError(f"unknown {key} {choice!r}; available: {', '.join(options(key))}")


def check_existing_run(cfg: dict[str, Any], run_dir: Path) -> None:
    """A run dir that already holds a run is continued only with resume=true and the same settings."""
    check_run_dir(run_dir)
    saved = run_dir / "config.yaml"
    holds_run = saved.is_file() or (run_dir / "encoder.pt").exists() or any((run_dir / "checkpoints").glob("ckpt_*.pt"))
    if not holds_run:
        return
    if not cfg.get("resume"):
        raise UserError(f"{run_dir} already holds a run; pass resume=true to continue it or choose another "
                        "hydra.run.dir (nothing was overwritten)")
    if saved.is_file():
        check_same_run(cfg, yaml.safe_load(saved.read_text()) or {}, RESUME_KEYS)


@hydra.main(config_path="pkg://configs", config_name="pretrain", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> float:
    from .run import pretrain

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        try:
            plain = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
        except Exception as err:  # noqa: BLE001 - a missing ??? value is a user error
            raise UserError(f"incomplete config: {one_line(err)}") from err
        check_existing_run(plain, run_dir)  # type: ignore[arg-type]
        save_hydra_record(run_dir, cfg)
        with as_user_error(CheckpointError):
            result = pretrain(plain, run_dir)  # type: ignore[arg-type]
    except UserError as err:  # hydra would print its own page for an exception leaving this function
        fail(PROG, one_line(err))
    if result and "knn_top1" in result:
        print(f"{cfg.method.name} on {cfg.data.name}: kNN top-1 {result['knn_top1']:.2f}%, "
              f"linear top-1 {result['linear_top1']:.2f}% -> {run_dir}")
    elif result:
        print(f"{cfg.method.name} on {cfg.data.name}: {result.get('steps')} steps -> {run_dir}")
    return float(result.get("knn_top1", float("nan"))) if result else float("nan")


@exit_on_user_error(PROG)
def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    check_overrides(args)
    check_output_overrides(args)
    sys.argv = [sys.argv[0], *args]
    _hydra_main()


if __name__ == "__main__":
    main()
