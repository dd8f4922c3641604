"""Published reference scores shipped with the package (configs/reference/*.csv).

They are kept apart from the project's own runs end to end: loaded into their own rows, drawn as
dashed marks, and tabled separately with their source, so a paper's number is never averaged with,
or mistaken for, a run of this code.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

REFERENCE_COLUMNS = ("method", "task", "budget_env_steps", "score", "std", "seeds", "source", "note")
# Task name of rows that give only a benchmark mean (no per-task values could be verified).
MEAN_TASK = "planet6_mean"
PLANET_TASKS = (
    "finger-spin",
    "cartpole-swingup",
    "reacher-easy",
    "cheetah-run",
    "walker-walk",
    "ball_in_cup-catch",
)


@dataclass(frozen=True)
class ReferenceRow:
    """One published number: `method` on `task` after `budget_env_steps` environment steps."""

    method: str
    task: str
    budget_env_steps: int
    score: float
    std: float | None
    seeds: int | None
    source: str
    note: str
    computed: bool = False  # True for a benchmark mean derived here from the per-task rows


def _optional_number(text: str, kind: type) -> float | int | None:
    text = text.strip()
    return kind(float(text)) if text else None


def parse_reference_csv(text: str, origin: str) -> list[ReferenceRow]:
    """Rows of one reference CSV; a malformed file raises ValueError naming `origin` and the line."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in REFERENCE_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"{origin}: missing column(s) {', '.join(missing)}")
    rows = []
    for row in reader:
        try:
            rows.append(
                ReferenceRow(
                    method=row["method"].strip(),
                    task=row["task"].strip(),
                    budget_env_steps=int(float(row["budget_env_steps"])),
                    score=float(row["score"]),
                    std=_optional_number(row["std"], float),
                    seeds=_optional_number(row["seeds"], int),
                    source=row["source"].strip(),
                    note=(row.get("note") or "").strip(),
                )
            )
        except (TypeError, ValueError) as err:
            raise ValueError(f"{origin}:{reader.line_num}: bad reference row ({err})") from None
    return rows


def load_reference() -> list[ReferenceRow]:
    """All rows of every CSV in the `configs/reference` package data folder."""
    folder = resources.files("configs").joinpath("reference")
    rows: list[ReferenceRow] = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".csv"):
            rows.extend(parse_reference_csv(entry.read_text(encoding="utf-8"), f"configs/reference/{entry.name}"))
    return rows


def rows_at(rows: Sequence[ReferenceRow], budget: int) -> list[ReferenceRow]:
    """Published rows at exactly this budget, plus a computed benchmark mean where all tasks are given."""
    at_budget = [r for r in rows if r.budget_env_steps == budget]
    by_method: dict[str, dict[str, ReferenceRow]] = defaultdict(dict)
    for row in at_budget:
        by_method[row.method][row.task] = row
    derived = []
    for method, tasks in by_method.items():
        if MEAN_TASK in tasks or not all(t in tasks for t in PLANET_TASKS):
            continue
        first = tasks[PLANET_TASKS[0]]
        derived.append(
            ReferenceRow(
                method=method,
                task=MEAN_TASK,
                budget_env_steps=budget,
                score=sum(tasks[t].score for t in PLANET_TASKS) / len(PLANET_TASKS),
                std=None,
                seeds=first.seeds,
                source=first.source,
                note="",
                computed=True,
            )
        )
    return sorted(at_budget + derived, key=lambda r: (r.method, r.task == MEAN_TASK, r.task))


def marks_for_task(rows: Sequence[ReferenceRow], task: str) -> list[ReferenceRow]:
    """Per-task rows to draw on a task's learning curve."""
    return [r for r in rows if r.task == task]
