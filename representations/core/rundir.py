"""Run directories: refuse an unusable one up front, and write hydra's record only once a run is accepted.

The CLIs set ``hydra.output_subdir: null`` so that hydra itself writes nothing into a run dir that
validation may still refuse (an existing run must stay byte-identical); ``save_hydra_record``
writes the same ``.hydra/{config,hydra,overrides}.yaml`` afterwards.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from representations.core.errors import UserError


def check_run_dir(run_dir: Path) -> None:
    """A run dir that is a file, or that cannot be created or written, is refused in one line.

    Creates the (empty) folder when missing, as hydra would; an existing run's files are not touched.
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"run dir {run_dir} is a file, not a folder")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=run_dir):
            pass
    except OSError as err:
        raise UserError(f"run dir {run_dir} cannot be written: {err.strerror or err}") from None


def check_output_overrides(argv: list[str]) -> None:
    """``hydra.run.dir=`` / ``hydra.sweep.dir=`` given on the command line, checked before hydra starts."""
    for arg in argv:
        key, _, value = arg.partition("=")
        if key in ("hydra.run.dir", "hydra.sweep.dir") and value and "${" not in value:
            check_run_dir(Path(value))


def flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: tree}


def differing_keys(mine: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """The keys of two configs (flatten nested ones with ``flat``) whose values differ, a key one lacks
    included; sorted."""
    return sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))


def check_same_run(requested: dict[str, Any], saved: dict[str, Any], keys: tuple[str, ...]) -> None:
    """Refuse to resume a run under other settings (agent, architecture, task...); name the keys that differ."""
    mine = flat({k: requested.get(k) for k in keys})
    theirs = flat({k: saved.get(k) for k in keys})
    differ = differing_keys(mine, theirs)
    if differ:
        shown = ", ".join(f"{k} ({theirs.get(k)!r} saved, {mine.get(k)!r} requested)" for k in differ[:4])
        more = f" and {len(differ) - 4} more" if len(differ) > 4 else ""
        raise UserError(f"resume=true with settings that differ from the saved run: {shown}{more}; "
                        "drop those overrides or start a new run dir (nothing was changed)")


def save_hydra_record(run_dir: Path, run_config: DictConfig | dict[str, Any]) -> None:
    """hydra's own ``.hydra/`` record, written once the run is accepted (no-op outside hydra)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    hc = HydraConfig.get()
    folder = run_dir / ".hydra"
    folder.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.create(run_config), folder / "config.yaml")
    OmegaConf.save(OmegaConf.create({"hydra": hc}), folder / "hydra.yaml")
    OmegaConf.save(OmegaConf.create(list(hc.overrides.task)), folder / "overrides.yaml")
