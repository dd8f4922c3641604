"""PNG figures for the report: learning curves, performance profiles and aggregate intervals.

Figures are built on bare `matplotlib.figure.Figure` objects rendered by Agg, never through pyplot,
so the report works on headless machines and leaves no global figure state behind in tests.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from agents.reporting.reference import ReferenceRow
from agents.reporting.stats import METRICS, Aggregate, BudgetScores, Curve, Profile

X_LABEL = "environment steps"
METRIC_TITLES = {"iqm": "IQM", "mean": "Mean", "median": "Median", "optimality_gap": "Optimality gap"}
_REF_COLOURS = ("black", "tab:brown", "tab:purple", "tab:gray")
# Reference marks beyond the runs' last step are drawn only this far out, so short runs stay readable.
_REF_REACH = 1.25


def agent_colours(agents: Sequence[str]) -> dict[str, str]:
    """One fixed colour per agent, the same in every figure."""
    palette = [f"C{i}" for i in range(10)]
    return {agent: palette[i % len(palette)] for i, agent in enumerate(sorted(agents))}


def _steps_formatter(value: float, _pos: int) -> str:
    if abs(value) >= 1e6:
        return f"{value / 1e6:g}M"
    if abs(value) >= 1e3:
        return f"{value / 1e3:g}k"
    return f"{value:g}"


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110)
    return path


def _draw_task(
    ax: Axes,
    task: str,
    curves: Mapping[str, Curve],
    references: Sequence[ReferenceRow],
    colours: Mapping[str, str],
    with_counts: bool,
) -> None:
    x_max = 0.0
    for agent, curve in sorted(curves.items()):
        colour = colours[agent]
        label = f"{agent} (n={int(curve.n_seeds.max())})" if with_counts else agent
        if curve.env_steps.size == 1:  # a lone evaluation has no line to draw: a point with its CI bar
            ax.errorbar(
                curve.env_steps,
                curve.mean,
                yerr=[curve.mean - curve.lower, curve.upper - curve.mean],
                color=colour,
                marker="o",
                capsize=4,
                label=label,
            )
        else:
            ax.plot(curve.env_steps, curve.mean, color=colour, label=label)
            ax.fill_between(curve.env_steps, curve.lower, curve.upper, color=colour, alpha=0.2, linewidth=0)
        x_max = max(x_max, float(curve.env_steps[-1]))
    shown = [r for r in references if r.budget_env_steps <= _REF_REACH * max(x_max, 1.0)]
    if shown:
        width = 0.05 * max(max(r.budget_env_steps for r in shown), x_max)
        for i, method in enumerate(sorted({r.method for r in shown})):
            for j, row in enumerate(r for r in shown if r.method == method):
                ax.hlines(
                    row.score,
                    row.budget_env_steps - width,
                    row.budget_env_steps + width,
                    colors=_REF_COLOURS[i % len(_REF_COLOURS)],
                    linestyles="dashed",
                    linewidth=2.0,
                    label=f"{method} (published)" if j == 0 else None,
                )
    ax.set_title(task)
    ax.set_xlabel(X_LABEL)
    ax.set_ylabel("evaluation return")
    ax.xaxis.set_major_formatter(FuncFormatter(_steps_formatter))
    steps = {int(s) for curve in curves.values() for s in curve.env_steps}
    if len(steps) == 1 and not shown:  # every curve is one evaluation: one tick at it, not -0.04 ... 0.04
        (step,) = steps
        ax.set_xticks([step])
        ax.set_xlim(step - max(500, step // 2), step + max(500, step // 2))
    ax.grid(alpha=0.3)


def _legend_below(fig: Figure, axes: Sequence[Axes]) -> None:
    """One legend under the plots, so it never hides a curve or a published mark."""
    handles, labels = [], []
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 4), fontsize="small")


def plot_task(
    path: Path,
    task: str,
    curves: Mapping[str, Curve],
    references: Sequence[ReferenceRow],
    colours: Mapping[str, str],
) -> Path:
    """One task: mean return over seeds with 95% bootstrap band per agent, published marks dashed."""
    fig = Figure(figsize=(6.4, 4.6), layout="constrained")
    ax = fig.add_subplot()
    _draw_task(ax, task, curves, references, colours, with_counts=True)
    _legend_below(fig, [ax])
    return _save(fig, path)


def plot_grid(
    path: Path,
    curves_by_task: Mapping[str, Mapping[str, Curve]],
    references: Mapping[str, Sequence[ReferenceRow]],
    colours: Mapping[str, str],
) -> Path:
    """All tasks side by side (3 per row), same drawing as the per-task figures."""
    tasks = sorted(curves_by_task)
    ncols = min(3, len(tasks))
    nrows = math.ceil(len(tasks) / ncols)
    fig = Figure(figsize=(5.2 * ncols, 3.8 * nrows + 0.5), layout="constrained")
    axes = []
    for i, task in enumerate(tasks):
        axes.append(fig.add_subplot(nrows, ncols, i + 1))
        _draw_task(axes[-1], task, curves_by_task[task], references.get(task, ()), colours, with_counts=False)
    _legend_below(fig, axes)
    return _save(fig, path)


def budget_title(selection: BudgetScores, newline: bool = False) -> str:
    """'at 100k environment steps', or what was really reached when runs fell short of the budget.

    `newline` puts the budget part on its own line, for narrow figures.
    """
    budget = _steps_formatter(selection.budget, 0)
    used = selection.steps_used
    if used is None or (used == (selection.budget, selection.budget) and not selection.short):
        return f"at {budget} {X_LABEL}"
    lo, hi = (_steps_formatter(v, 0) for v in used)
    title = f"at {lo if lo == hi else f'{lo}-{hi}'} {X_LABEL}{chr(10) if newline else ' '}(budget {budget}"
    if selection.short:
        title += f"; {len(selection.short)} of {selection.n_runs} runs stopped before it"
    return title + ")"


def _notes_below(fig: Figure, notes: Sequence[str]) -> None:
    if notes:
        fig.supxlabel("\n".join(notes), x=0.01, ha="left", fontsize="x-small")  # constrained layout makes room


def plot_profiles(
    path: Path,
    selection: BudgetScores,
    profiles: Mapping[str, Profile],
    colours: Mapping[str, str],
    notes: Sequence[str] = (),
) -> Path:
    """Performance profiles (score distributions) at one budget, 95% bootstrap bands; `notes` under it."""
    fig = Figure(figsize=(6.4, 4.2 + 0.2 * len(notes)), layout="constrained")
    ax = fig.add_subplot()
    for agent, prof in sorted(profiles.items()):
        ax.plot(prof.taus, prof.fraction, color=colours[agent], label=agent)
        ax.fill_between(prof.taus, prof.lower, prof.upper, color=colours[agent], alpha=0.2, linewidth=0)
    ax.set_xlabel(r"normalised score $\tau$ (per-task range, see report.md)")
    ax.set_ylabel(r"fraction of runs with score > $\tau$")
    ax.set_title(f"Performance profile {budget_title(selection, newline=True)}", fontsize="medium")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    _notes_below(fig, notes)
    return _save(fig, path)


def plot_aggregates(
    path: Path,
    selection: BudgetScores,
    aggregates: Mapping[str, Aggregate],
    colours: Mapping[str, str],
    notes: Sequence[str] = (),
) -> Path:
    """IQM, mean, median and optimality gap per agent as points with 95% CI bars; `notes` under them."""
    agents = sorted(aggregates)
    fig = Figure(figsize=(3.0 * len(METRICS), 0.6 * len(agents) + 1.8 + 0.2 * len(notes)), layout="constrained")
    for k, metric in enumerate(METRICS):
        ax = fig.add_subplot(1, len(METRICS), k + 1)
        for i, agent in enumerate(agents):
            agg = aggregates[agent]
            lo, hi = agg.ci[metric]
            ax.hlines(i, lo, hi, colors=colours[agent], linewidth=6, alpha=0.5)
            ax.plot([agg.point[metric]], [i], "|", color="k", markersize=14)
        ax.set_yticks(range(len(agents)), agents if k == 0 else [""] * len(agents))
        ax.set_ylim(-0.7, len(agents) - 0.3)
        ax.set_title(METRIC_TITLES[metric])
        ax.set_xlabel("normalised score")
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(f"Aggregates {budget_title(selection)}, 95% stratified bootstrap CIs")
    _notes_below(fig, notes)
    return _save(fig, path)
