"""summary.json and report.md from computed results.

Both outputs name their unit (environment steps) at every budget, because tables that mixed env
steps with agent steps (a factor of the action repeat) have misled published comparisons before.
Published reference rows go to their own table with their source, never into the project's rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.reporting.discovery import Problem, Run
from agents.reporting.normalise import ScoreRange
from agents.reporting.reference import MEAN_TASK, ReferenceRow
from agents.reporting.stats import CI_LEVEL, METRICS, Aggregate, BudgetScores, Improvement
from representations.core.atomic import atomic_write_json

UNIT = "env_steps"
UNIT_WORDS = "environment steps"


@dataclass
class TaskStat:
    """Raw-return summary of one agent on one task at one budget."""

    mean: float
    std: float | None
    n: int
    seeds: list[int]


@dataclass
class BudgetResult:
    """Everything the report says about one budget."""

    budget: int
    selection: BudgetScores
    aggregates: dict[str, Aggregate]
    task_stats: dict[str, dict[str, TaskStat]]
    improvement: Improvement | None = None
    improvement_note: str | None = None
    references: list[ReferenceRow] = field(default_factory=list)
    profile_png: str | None = None
    aggregates_png: str | None = None
    missing_tasks: str | None = None  # 'sac lacks walker-walk' when the aggregated task sets differ


@dataclass
class ReportData:
    """Inputs of the written report: runs, problems, per-budget results and figure paths (relative)."""

    roots: list[str]
    runs: list[Run]
    skipped: list[Problem]
    duplicates: list[Problem]
    warnings: list[str]
    budgets: list[BudgetResult]
    reps: int
    bootstrap_seed: int
    compare: tuple[str, str] | None
    reference_enabled: bool
    command: str | None = None  # the command line that made the report, to remake it
    score_ranges: dict[str, ScoreRange] = field(default_factory=dict)
    unnormalised: dict[str, str] = field(default_factory=dict)  # task -> why its range is unknown
    grid_png: str | None = None
    task_pngs: dict[str, str] = field(default_factory=dict)


def _budget_label(budget: int) -> str:
    if budget % 1_000_000 == 0:
        return f"{budget // 1_000_000}M"
    return f"{budget // 1000}k" if budget % 1000 == 0 else str(budget)


def build_summary(data: ReportData) -> dict[str, Any]:
    """The machine-readable summary: per budget and agent, aggregates with CIs and per-task means."""
    budgets: dict[str, Any] = {}
    for result in data.budgets:
        agents: dict[str, Any] = {}
        for agent, agg in sorted(result.aggregates.items()):
            stats = result.task_stats[agent]
            entry: dict[str, Any] = {m: agg.point[m] for m in METRICS}
            entry.update({f"{m}_ci": list(agg.ci[m]) for m in METRICS})
            entry["n_runs"] = agg.n_runs
            entry["tasks"] = list(agg.tasks)
            entry["per_task_means"] = {t: s.mean for t, s in sorted(stats.items())}
            entry["per_task"] = {
                t: {"mean": s.mean, "std": s.std, "n_seeds": s.n, "seeds": s.seeds} for t, s in sorted(stats.items())
            }
            entry["runs"] = [
                {
                    "task": task,
                    "seed": rs.run.seed,
                    "env_step_used": rs.env_step,
                    "fallback": rs.fallback,
                    "return": rs.score,
                    "path": str(rs.run.path),
                }
                for task, items in sorted(result.selection.scores.get(agent, {}).items())
                for rs in items
            ]
            agents[agent] = entry
        used = result.selection.steps_used
        block: dict[str, Any] = {
            "budget_env_steps": result.budget,
            "env_steps_used": None if used is None else {"min": used[0], "max": used[1]},
            "runs_short_of_budget": [
                {"agent": r.agent, "task": r.task, "seed": r.seed, "last_env_step": r.last_step, "path": str(r.path)}
                for r in result.selection.short
            ],
            "agents": agents,
            "fallbacks": result.selection.fallbacks,
            "excluded": result.selection.excluded,
            "missing_tasks": result.missing_tasks,
        }
        if result.improvement is not None:
            imp = result.improvement
            block["probability_of_improvement"] = {
                "a": imp.agent_a,
                "b": imp.agent_b,
                "p_a_better_than_b": imp.value,
                "ci": list(imp.ci),
                "tasks": list(imp.tasks),
            }
        elif result.improvement_note:
            block["probability_of_improvement"] = {"note": result.improvement_note}
        budgets[str(result.budget)] = block
    return {
        "command": data.command,
        "unit": UNIT,
        "budgets_env_steps": [r.budget for r in data.budgets],
        "score_normalisation": {
            "formula": "(return - low) / (high - low) per task (aggregates, CIs and profiles only)",
            "tasks": {
                t: {"low": r.low, "high": r.high, "source": r.source} for t, r in sorted(data.score_ranges.items())
            },
            "not_normalised": dict(sorted(data.unnormalised.items())),
        },
        "per_task_std": "sample std over seeds (ddof=1); null with one seed",
        "ci": {
            "level": CI_LEVEL,
            "method": "stratified bootstrap, percentile (rliable)",
            "reps": data.reps,
            "seed": data.bootstrap_seed,
        },
        "budget_rule": "each run's last evaluation at or before the budget; runs whose first "
        "evaluation is after the budget are excluded from it",
        "budgets": budgets,
        "reference": _reference_summary(data),
        "skipped_runs": [p.message for p in data.skipped],
        "duplicate_runs": [p.message for p in data.duplicates],
        "warnings": data.warnings,
    }


def _reference_summary(data: ReportData) -> dict[str, Any]:
    """Published rows per budget, kept out of `budgets` so they are never read as the project's runs."""
    if not data.reference_enabled:
        return {}
    return {
        str(result.budget): [
            {
                "method": r.method,
                "task": r.task,
                "score": r.score,
                "std": r.std,
                "seeds": r.seeds,
                "source": r.source,
                "computed_here": r.computed,
            }
            for r in result.references
        ]
        for result in data.budgets
    }


def write_summary(path: Path, data: ReportData) -> Path:
    atomic_write_json(path, build_summary(data), allow_nan=False)
    return path


def _ci(value: float, ci: tuple[float, float]) -> str:
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def _cell(stat: TaskStat | None) -> str:
    if stat is None:
        return "–"
    spread = "" if stat.std is None else f" ± {stat.std:.1f}"
    return f"{stat.mean:.1f}{spread} (n={stat.n})"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return lines


def _runs_section(data: ReportData) -> list[str]:
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in data.runs:
        groups.setdefault((run.agent, run.task), []).append(run)
    rows = [
        [
            agent,
            task,
            ", ".join(str(r.seed) for r in runs),
            f"{min(r.first_step for r in runs)}–{max(r.last_step for r in runs)}",
        ]
        for (agent, task), runs in sorted(groups.items())
    ]
    lines = ["## Runs", ""]
    lines += _table(["agent", "task", "seeds", f"evaluated at ({UNIT_WORDS})"], rows)
    for title, items in (("Skipped runs", data.skipped), ("Duplicate runs (ignored)", data.duplicates)):
        if items:
            lines += ["", f"### {title}", ""] + [f"- {p.message}" for p in items]
    if data.warnings:
        lines += ["", "### Warnings", ""] + [f"- {w}" for w in data.warnings]
    return lines + [""]


def _curves_section(data: ReportData) -> list[str]:
    lines = [
        "## Learning curves",
        "",
        f"Mean evaluation return over seeds against {UNIT_WORDS}, shaded: 95% percentile-bootstrap CI "
        "over seeds. Between a seed's evaluations its last value is carried forward; `n` is the largest "
        "number of seeds at any point.",
    ]
    if data.reference_enabled:
        lines.append(
            "Dashed marks: published results at their budgets (see the reference tables below); they are "
            "drawn only where the runs reach at least 80% of that budget."
        )
    lines.append("")
    if data.grid_png:
        lines += [f"![learning curves, all tasks]({data.grid_png})", ""]
    lines += [f"- [{task}]({png})" for task, png in sorted(data.task_pngs.items())]
    return lines + [""]


def _reference_section(result: BudgetResult) -> list[str]:
    label = _budget_label(result.budget)
    lines = [f"### Published reference results at {label} {UNIT_WORDS} (not runs of this project)", ""]
    if not result.references:
        return lines + [f"No shipped reference rows at {result.budget} {UNIT_WORDS}.", ""]
    sources: list[str] = []
    rows = []
    for r in result.references:
        if r.source not in sources:
            sources.append(r.source)
        task = r.task
        if r.task == MEAN_TASK:
            task = "mean of 6 PlaNet tasks" + (" (computed from the rows above)" if r.computed else "")
        rows.append(
            [
                r.method,
                task,
                f"{r.score:.1f}",
                "" if r.std is None else f"{r.std:g}",
                "" if r.seeds is None else str(r.seeds),
                f"[{sources.index(r.source) + 1}]",
            ]
        )
    lines += _table(["method", "task", "return", "± (as published)", "seeds", "source"], rows)
    lines.append("")
    for i, source in enumerate(sources, start=1):
        notes = sorted({r.note for r in result.references if r.source == source and r.note and not r.computed})
        lines.append(f"[{i}] {source}" + (f". {' '.join(notes)}" if notes else ""))
        lines.append("")
    return lines


def _reach_lines(result: BudgetResult) -> list[str]:
    """Which steps the scores really come from, and every run that stopped before the budget."""
    selection = result.selection
    used = selection.steps_used
    if used is None or (used == (result.budget, result.budget) and not selection.short):
        return []
    span = str(used[0]) if used[0] == used[1] else f"{used[0]}–{used[1]}"
    lines = [f"Scores at this budget come from evaluations at {span} {UNIT_WORDS}."]
    if selection.short:
        groups: dict[tuple[str, str], list[Run]] = {}
        for run in selection.short:
            groups.setdefault((run.agent, run.task), []).append(run)
        lines[0] += (
            f" **{len(selection.short)} of {selection.n_runs} runs did not reach {result.budget} {UNIT_WORDS}** "
            "and count with their last evaluation (each is listed under *Budget notes*):"
        )
        lines += [""] + [
            f"- {agent} / {task}: seed(s) {', '.join(str(r.seed) for r in runs)}, last evaluation at "
            + ", ".join(str(r.last_step) for r in runs)
            for (agent, task), runs in sorted(groups.items())
        ]
    return lines + [""]


def _normalisation_section(data: ReportData) -> list[str]:
    lines = [
        "## Score normalisation",
        "",
        "Aggregates, their CIs and the performance profiles use (return − low) / (high − low) with each "
        "task's own return range; per-task tables and curves show raw returns.",
        "",
    ]
    if data.score_ranges:
        rows = [[t, f"{r.low:g}", f"{r.high:g}", r.source] for t, r in sorted(data.score_ranges.items())]
        lines += _table(["task", "low", "high", "source of the range"], rows) + [""]
    if data.unnormalised:
        lines += ["Not normalised (range unknown), so left out of the aggregates and profiles:", ""]
        lines += [f"- {task}: {why}" for task, why in sorted(data.unnormalised.items())] + [""]
    return lines


def _budget_section(data: ReportData, result: BudgetResult) -> list[str]:
    label = _budget_label(result.budget)
    lines = [f"## At {label} {UNIT_WORDS} ({result.budget} {UNIT})", ""] + _reach_lines(result)
    if not result.selection.scores:
        lines += [f"No run has an evaluation at or before {result.budget} {UNIT_WORDS}.", ""]
    else:
        if result.aggregates:
            lines += [
                f"### Aggregates (normalised scores, {int(CI_LEVEL * 100)}% stratified bootstrap CI)",
                "",
            ]
        else:
            lines += ["No aggregates: no task at this budget has a known score range.", ""]
        rows = [
            [agent, str(agg.n_runs), str(len(agg.tasks))] + [_ci(agg.point[m], agg.ci[m]) for m in METRICS]
            for agent, agg in sorted(result.aggregates.items())
        ]
        if rows:
            lines += _table(["agent", "runs", "tasks", "IQM", "mean", "median", "optimality gap"], rows)
        if result.missing_tasks:
            lines += ["", f"**Agents ran different tasks** ({result.missing_tasks}): compare aggregates with care."]
        tasks = sorted({t for stats in result.task_stats.values() for t in stats})
        agents = sorted(result.task_stats)
        lines += ["", "### Per-task return (mean ± std over seeds)", ""]
        lines += _table(["task"] + agents, [[t] + [_cell(result.task_stats[a].get(t)) for a in agents] for t in tasks])
        lines.append("")
        if result.improvement is not None:
            imp = result.improvement
            lines += [
                "### Probability of improvement",
                "",
                f"P({imp.agent_a} > {imp.agent_b}) = {_ci(imp.value, imp.ci)} averaged over "
                f"{len(imp.tasks)} task(s) both agents ran: {', '.join(imp.tasks)} (raw returns: it only "
                "compares runs within a task, so it needs no normalisation).",
                "",
            ]
        elif result.improvement_note:
            lines += ["### Probability of improvement", "", result.improvement_note, ""]
        figures = [
            f"[{name}]({png})"
            for name, png in (
                ("performance profile", result.profile_png),
                ("aggregate intervals", result.aggregates_png),
            )
            if png
        ]
        if figures:
            lines += ["Figures: " + ", ".join(figures), ""]
            if result.profile_png:
                lines += [f"![performance profile at {label}]({result.profile_png})", ""]
    notes = result.selection.fallbacks + result.selection.excluded
    if notes:
        lines += ["### Budget notes", ""] + [f"- {n}" for n in notes] + [""]
    if data.reference_enabled:
        lines += _reference_section(result)
    return lines


def build_report(data: ReportData) -> str:
    """report.md: runs, curves, then one section per budget with tables, notes and references."""
    lines = [
        "# Sample-efficiency report",
        "",
        f"Generated by `mcrl-report` from {len(data.runs)} run(s) under: "
        + ", ".join(f"`{r}`" for r in data.roots)
        + "."
        + (f" Command: `{data.command}`." if data.command else ""),
        "",
        f"**Unit: every step count and budget is in {UNIT_WORDS}** (`{UNIT}`: frames; agent steps × "
        "action repeat). At each budget a run contributes its last evaluation at or before the budget "
        "(every substitution is listed under *Budget notes*); a run whose first evaluation comes later "
        "is excluded from that budget. Aggregates use scores normalised by each task's return range "
        f"(see *Score normalisation*) with {int(CI_LEVEL * 100)}% stratified bootstrap CIs (rliable, "
        f"{data.reps} reps, seed {data.bootstrap_seed}).",
        "",
    ]
    lines += _runs_section(data) + _normalisation_section(data) + _curves_section(data)
    for result in data.budgets:
        lines += _budget_section(data, result)
    return "\n".join(lines).rstrip() + "\n"


def write_report(path: Path, data: ReportData) -> Path:
    path.write_text(build_report(data))
    return path
