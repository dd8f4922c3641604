"""``mcrl-pretrain``: hydra entry point for self-supervised pretraining runs (also under torchrun)."""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from ..core.checkpoint import CheckpointError

PROG = "mcrl-pretrain"
_GROUPS = ("method", "data", "encoder")
USER_ERRORS = (ValueError, FileNotFoundError, CheckpointError, FloatingPointError)


class UsageError(ValueError):
    """Bad command-line input, reported in one line."""


def options(group: str) -> list[str]:
    folder = resources.files("configs") / group
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def check_overrides(argv: list[str]) -> None:
    """Reject unknown ``method=`` / ``data=`` / ``encoder=`` choices before hydra prints a page."""
    for arg in argv:
        key, sep, value = arg.partition("=")
        key = key.lstrip("+~")
        if sep and key in _GROUPS and value and "," not in value and value not in options(key):
            raise UsageError(f"unknown {key} {value!r}; available: {', '.join(options(key))}")


def fail(message: str) -> None:
    print(f"{PROG}: error: {message.strip().splitlines()[0] if message.strip() else 'failed'}", file=sys.stderr)
    sys.exit(2)


@hydra.main(config_path="pkg://configs", config_name="pretrain", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> float:
    from .run import pretrain

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        plain = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except Exception as err:  # noqa: BLE001 - a missing ??? value is a user error
        fail(f"incomplete config: {err}")
    try:
        result = pretrain(plain, run_dir)  # type: ignore[arg-type]
    except USER_ERRORS as err:
        fail(str(err))
    if result and "knn_top1" in result:
        print(f"{cfg.method.name} on {cfg.data.name}: kNN top-1 {result['knn_top1']:.2f}%, "
              f"linear top-1 {result['linear_top1']:.2f}% -> {run_dir}")
    elif result:
        print(f"{cfg.method.name} on {cfg.data.name}: {result.get('steps')} steps -> {run_dir}")
    return float(result.get("knn_top1", float("nan"))) if result else float("nan")


def main() -> None:
    try:
        check_overrides(sys.argv[1:])
    except UsageError as err:
        fail(str(err))
    _hydra_main()


if __name__ == "__main__":
    main()
