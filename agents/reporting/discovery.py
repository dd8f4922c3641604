"""Find `mcrl-train` run directories and load the two files a report needs from each.

A run is a directory holding ``eval.csv``; its identity (agent, task, seed) is read from its saved
``config.yaml``, never parsed from the directory name, so moved or renamed runs still group correctly.
Every problem is reported as one line that names the offending file, so a sweep with one broken run
can be reported on (skip) or rejected (fail) without a traceback.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

EVAL_FILE = "eval.csv"
CONFIG_FILE = "config.yaml"
REQUIRED_EVAL_COLUMNS = ("env_step", "return_mean")
# Files or folders that mark a directory as a run even before its first evaluation was written.
RUN_MARKERS = ("train.csv", "checkpoints", "tb")


class RunLoadError(Exception):
    """A run whose eval.csv or config.yaml cannot be used; the message names the file."""


@dataclass(frozen=True)
class Problem:
    """One unusable run directory: `message` is a single line naming the file at fault."""

    path: Path
    message: str


@dataclass(frozen=True)
class Run:
    """One training run: identity from config.yaml, evaluation curve from eval.csv (env steps)."""

    path: Path
    agent: str
    task: str
    seed: int
    action_repeat: int | None
    steps: int | None
    env_steps: np.ndarray
    returns: np.ndarray
    episode_length: int | None = None  # env steps per episode, from config.yaml (sets the score range)
    notes: tuple[str, ...] = ()  # what loading had to work around (a cut-off last row), one line each

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.agent, self.task, self.seed)

    @property
    def first_step(self) -> int:
        return int(self.env_steps[0])

    @property
    def last_step(self) -> int:
        return int(self.env_steps[-1])

    def eval_at_or_before(self, env_step: int) -> tuple[int, float] | None:
        """The last evaluation at or before `env_step`, or None when the first one comes later."""
        idx = int(np.searchsorted(self.env_steps, env_step, side="right")) - 1
        if idx < 0:
            return None
        return int(self.env_steps[idx]), float(self.returns[idx])


def _is_run_dir(names: set[str]) -> bool:
    if EVAL_FILE in names:
        return True
    return CONFIG_FILE in names and any(marker in names for marker in RUN_MARKERS)


def find_run_dirs(roots: Sequence[Path]) -> list[Path]:
    """Run directories under `roots`, recursively; hidden folders (.hydra, .submitit) are not entered.

    A directory counts as a run when it has eval.csv, or config.yaml next to train.csv/checkpoints/tb
    (a run without eval.csv is then reported as broken rather than silently missed).
    """
    found: list[Path] = []
    for root in roots:
        root = Path(root)
        if root.is_file() and root.name in (EVAL_FILE, CONFIG_FILE):
            root = root.parent
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: no such directory")
        for current, dirnames, filenames in os.walk(root):
            names = set(dirnames) | set(filenames)
            if _is_run_dir(names):
                found.append(Path(current))
                dirnames[:] = []  # a run's tb/ and checkpoints/ hold no further runs
                continue
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
    return sorted(set(found))


def _parse_int(text: str) -> int:
    value = float(text)
    if not math.isfinite(value) or value != int(value):
        raise ValueError(text)
    return int(value)


def _fields(line: str) -> list[str]:
    return next(csv.reader([line]), [])


def load_eval_csv(path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(env_steps, return means, notes) sorted by env step; a repeated step keeps its last row (resumed run).

    The logger ends every row with a line break, so a last row without one, or with fewer fields than
    the header, was cut off mid-write (a killed run): it is dropped and a note naming the file says so.
    A short row anywhere else is damage that cannot be read around and fails the whole file.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise RunLoadError(f"{path}: cannot be read ({err})") from None
    lines = text.splitlines()
    notes: list[str] = []
    try:
        header = _fields(lines[0]) if lines else []
        if not header:
            raise RunLoadError(f"{path}: empty file (expected header {','.join(REQUIRED_EVAL_COLUMNS)},...)")
        missing = [c for c in REQUIRED_EVAL_COLUMNS if c not in header]
        if missing:
            raise RunLoadError(f"{path}: missing column(s) {', '.join(missing)} (header is: {','.join(header)})")
        rows = [(number, _fields(line)) for number, line in enumerate(lines[1:], start=2) if line.strip()]
    except csv.Error as err:
        raise RunLoadError(f"{path}: cannot be read ({err})") from None
    if rows:
        number, fields = rows[-1]
        cut = not text.endswith(("\n", "\r"))
        if cut or len(fields) < len(header):
            why = "does not end with a line break" if cut else f"has {len(fields)} of the header's {len(header)} fields"
            notes.append(f"{path}:{number}: last row {why} (cut off mid-write); ignored it")
            rows.pop()
    step_col, return_col = header.index("env_step"), header.index("return_mean")
    by_step: dict[int, float] = {}
    for number, fields in rows:
        if len(fields) != len(header):
            raise RunLoadError(f"{path}:{number}: row has {len(fields)} fields, the header has {len(header)}")
        raw_step, raw_return = fields[step_col], fields[return_col]
        try:
            step = _parse_int(raw_step)
        except ValueError:
            raise RunLoadError(f"{path}:{number}: env_step {raw_step!r} is not an integer") from None
        try:
            ret = float(raw_return)
        except ValueError:
            raise RunLoadError(f"{path}:{number}: return_mean {raw_return!r} is not a number") from None
        if step < 0 or not math.isfinite(ret):
            raise RunLoadError(f"{path}:{number}: env_step must be >= 0 and return_mean finite")
        by_step[step] = ret
    if not by_step:
        raise RunLoadError(f"{path}: no evaluation rows yet" + (f" ({notes[0].split(': ', 1)[1]})" if notes else ""))
    steps = np.array(sorted(by_step), dtype=np.int64)
    return steps, np.array([by_step[int(s)] for s in steps], dtype=np.float64), notes


def _lookup(config: dict[str, Any], dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _name(config: dict[str, Any], group: str) -> Any:
    """`agent.name` / `env.name`, also accepting a plain string group value (`agent: curl`)."""
    value = config.get(group)
    return value if isinstance(value, str) else _lookup(config, f"{group}.name")


def load_config(path: Path) -> tuple[str, str, int, int | None, int | None, int | None]:
    """(agent, task, seed, action_repeat, steps, episode_length) from a run's resolved config.yaml."""
    try:
        with open(path) as handle:
            config = yaml.safe_load(handle)
    except (OSError, UnicodeDecodeError) as err:
        raise RunLoadError(f"{path}: cannot be read ({err})") from None
    except yaml.YAMLError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RunLoadError(f"{path}: not valid YAML ({first})") from None
    if not isinstance(config, dict):
        raise RunLoadError(f"{path}: expected a mapping of config keys")
    agent, task, seed = _name(config, "agent"), _name(config, "env"), config.get("seed")
    missing = [k for k, v in (("agent.name", agent), ("env.name", task), ("seed", seed)) if v is None]
    if missing:
        raise RunLoadError(f"{path}: missing key(s) {', '.join(missing)}")
    try:
        seed_int = _parse_int(str(seed))
    except ValueError:
        raise RunLoadError(f"{path}: seed {seed!r} is not an integer") from None
    optional: list[int | None] = []
    for key in ("env.action_repeat", "steps", "env.episode_length"):
        value = _lookup(config, key)
        try:
            optional.append(None if value is None else _parse_int(str(value)))
        except ValueError:
            raise RunLoadError(f"{path}: {key} {value!r} is not an integer") from None
    return str(agent), str(task), seed_int, optional[0], optional[1], optional[2]


def load_run(run_dir: Path) -> Run:
    """Load one run directory; raises RunLoadError naming the first unusable file."""
    eval_path = run_dir / EVAL_FILE
    if not eval_path.is_file():
        raise RunLoadError(f"{eval_path}: missing (the run has not written an evaluation)")
    config_path = run_dir / CONFIG_FILE
    if not config_path.is_file() and (run_dir / ".hydra" / CONFIG_FILE).is_file():
        config_path = run_dir / ".hydra" / CONFIG_FILE  # hydra's own copy, same resolved content
    if not config_path.is_file():
        raise RunLoadError(f"{config_path}: missing (cannot tell the run's agent, task and seed)")
    agent, task, seed, action_repeat, steps, episode_length = load_config(config_path)
    env_steps, returns, notes = load_eval_csv(eval_path)
    return Run(run_dir, agent, task, seed, action_repeat, steps, env_steps, returns, episode_length, tuple(notes))


def _drop_duplicates(runs: Iterable[Run]) -> tuple[list[Run], list[Problem]]:
    """Keep one run per (agent, task, seed): the furthest trained, so reruns do not count twice."""
    best: dict[tuple[str, str, int], Run] = {}
    notes: list[Problem] = []
    for run in sorted(runs, key=lambda r: str(r.path)):
        other = best.get(run.key)
        if other is None:
            best[run.key] = run
            continue
        keep, drop = (run, other) if run.last_step >= other.last_step else (other, run)
        best[run.key] = keep
        notes.append(
            Problem(
                drop.path,
                f"{drop.path}: same agent/task/seed ({'/'.join(map(str, run.key))}) as {keep.path}, "
                f"which reached more env steps; ignored",
            )
        )
    return sorted(best.values(), key=lambda r: (r.agent, r.task, r.seed)), notes


def discover_runs(roots: Sequence[Path]) -> tuple[list[Run], list[Problem], list[Problem]]:
    """(runs, broken run problems, duplicate notes) for everything under `roots`."""
    runs: list[Run] = []
    problems: list[Problem] = []
    for run_dir in find_run_dirs(roots):
        try:
            runs.append(load_run(run_dir))
        except RunLoadError as err:
            problems.append(Problem(run_dir, str(err)))
    runs, duplicates = _drop_duplicates(runs)
    return runs, problems, duplicates


def unit_warnings(runs: Sequence[Run]) -> list[str]:
    """Flag eval.csv files whose env_step column looks like agent steps (not multiples of action repeat)."""
    warnings = []
    for run in runs:
        repeat = run.action_repeat
        if repeat and repeat > 1 and np.any(run.env_steps % repeat != 0):
            warnings.append(
                f"{run.path / EVAL_FILE}: some env_step values are not multiples of action_repeat={repeat}; "
                "check that the file counts environment steps, not agent steps"
            )
    return warnings
