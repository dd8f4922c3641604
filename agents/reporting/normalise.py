"""Each task's score range, so aggregates put every task on a 0-1 scale of its own.

rliable's aggregates need scores normalised per task: (return - low) / (high - low). Dividing every
task by 1000 is right only for dm_control, whose reward is in [0, 1] per env step over 1000-step
episodes; synthetic-reach's 100-step episodes would be squeezed into 0-0.1. The range of a task
comes, in this order, from:

1. ``--score-range TASK=LOW:HIGH`` on the command line;
2. ``UNIT_REWARD_TASKS`` below: tasks whose reward per env step lies in [0, 1], so the range is
   [0, episode_length], with episode_length read from the runs' config.yaml (all of a task's runs
   must agree); every dm_control suite task is one of them.

Any other task has no known range: it is never normalised, stays out of the aggregates and
profiles, and the report says so.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from agents.errors import UserError
from agents.reporting.discovery import Run

# Task -> (where its per-env-step reward in [0, 1] is documented, default episode length in env steps).
UNIT_REWARD_TASKS: dict[str, tuple[str, int]] = {
    "synthetic-reach": ("envs/synthetic.py: reward exp(-2.5 distance) in (0, 1] per env step", 100),
}
DMC_SOURCE = "dm_control suite task: reward in [0, 1] per env step"
DMC_EPISODE_LENGTH = 1000


@dataclass(frozen=True)
class ScoreRange:
    """A task's lowest and highest possible return, and where that range comes from."""

    low: float
    high: float
    source: str

    def normalise(self, returns: np.ndarray) -> np.ndarray:
        return (np.asarray(returns, dtype=np.float64) - self.low) / (self.high - self.low)


def parse_score_range(text: str) -> tuple[str, ScoreRange]:
    """'TASK=LOW:HIGH' (e.g. 'my-task=-100:250') from --score-range."""
    task, sep, bounds = text.partition("=")
    low_text, colon, high_text = bounds.partition(":")
    try:
        if not (sep and colon and task.strip()):
            raise ValueError(text)
        low, high = float(low_text), float(high_text)
    except ValueError:
        raise UserError(f"--score-range {text!r} is not TASK=LOW:HIGH (e.g. my-task=0:500)") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise UserError(f"--score-range {text!r}: LOW and HIGH must be finite with LOW < HIGH")
    return task.strip(), ScoreRange(low, high, "--score-range")


def _dmc_task_names() -> tuple[set[str] | None, str]:
    """dm_control's task list, or None and why it could not be read (it imports MuJoCo)."""
    try:
        from envs.dmc import dmc_tasks

        return set(dmc_tasks()), ""
    except (ImportError, RuntimeError) as err:
        return None, f"dm_control could not be loaded to check it ({str(err).splitlines()[0][:120]})"


def task_ranges(
    runs: Sequence[Run],
    overrides: Mapping[str, ScoreRange],
    dmc_tasks: Callable[[], tuple[set[str] | None, str]] = _dmc_task_names,
) -> tuple[dict[str, ScoreRange], dict[str, str]]:
    """(range per task that has one, reason per task that has none) for the tasks of `runs`."""
    ranges: dict[str, ScoreRange] = {}
    unknown: dict[str, str] = {}
    dmc: tuple[set[str] | None, str] | None = None
    for task in sorted({r.task for r in runs}):
        if task in overrides:
            ranges[task] = overrides[task]
            continue
        if task in UNIT_REWARD_TASKS:
            source, default_length = UNIT_REWARD_TASKS[task]
        else:
            dmc = dmc if dmc is not None else dmc_tasks()
            names, why_not = dmc
            if names is None or task not in names:
                unknown[task] = why_not or "not a dm_control suite task and no known reward range"
                continue
            source, default_length = DMC_SOURCE, DMC_EPISODE_LENGTH
        lengths = sorted({r.episode_length or default_length for r in runs if r.task == task})
        if len(lengths) > 1:
            unknown[task] = f"its runs have different episode lengths ({', '.join(map(str, lengths))} env steps)"
            continue
        ranges[task] = ScoreRange(0.0, float(lengths[0]), f"{source}, episode_length={lengths[0]}")
    return ranges, unknown
