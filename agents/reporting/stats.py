"""Scores at env-step budgets, rliable aggregates, performance profiles and learning-curve CIs.

Aggregates follow Agarwal et al. (NeurIPS 2021, rliable): scores are returns normalised by each
task's own range (`normalise`), IQM and optimality gap pool all runs x tasks, mean and median are
taken over per-task means, and 95% CIs come from rliable's stratified bootstrap (runs resampled
within each task). Tasks are passed to rliable as separate (n_runs, 1) arrays, so tasks with unequal
seed counts need no truncation; with equal counts the numbers equal rliable's matrix metrics exactly.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from rliable import library as rly
from rliable import metrics as rly_metrics

from agents.reporting.discovery import Run
from agents.reporting.normalise import ScoreRange

METRICS = ("iqm", "mean", "median", "optimality_gap")
CI_LEVEL = 0.95


@dataclass(frozen=True)
class RunScore:
    """A run's return at a budget: from the eval exactly at it or, failing that, the last one before."""

    run: Run
    budget: int
    env_step: int
    score: float

    @property
    def fallback(self) -> bool:
        return self.env_step != self.budget


@dataclass
class BudgetScores:
    """Every agent's per-task run scores at one budget, plus what had to be substituted or dropped."""

    budget: int
    scores: dict[str, dict[str, list[RunScore]]] = field(default_factory=dict)
    fallbacks: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    short: list[Run] = field(default_factory=list)  # counted runs whose last evaluation comes before the budget

    @property
    def steps_used(self) -> tuple[int, int] | None:
        """Smallest and largest env step of the evaluations used, None when no run counts."""
        used = [s.env_step for tasks in self.scores.values() for items in tasks.values() for s in items]
        return (min(used), max(used)) if used else None

    @property
    def n_runs(self) -> int:
        return sum(len(items) for tasks in self.scores.values() for items in tasks.values())

    def task_arrays(self, agent: str, ranges: Mapping[str, ScoreRange] | None = None) -> dict[str, np.ndarray]:
        """task -> 1-D scores over seeds: raw returns, or normalised (tasks without a range left out)."""
        arrays = {}
        for task, items in sorted(self.scores.get(agent, {}).items()):
            raw = np.array([s.score for s in items], dtype=np.float64)
            if ranges is None:
                arrays[task] = raw
            elif task in ranges:
                arrays[task] = ranges[task].normalise(raw)
        return arrays


def select_at_budget(runs: Sequence[Run], budget: int) -> BudgetScores:
    """Pick each run's score at `budget` env steps, recording every fallback and exclusion in words."""
    result = BudgetScores(budget)
    grouped: dict[str, dict[str, list[RunScore]]] = defaultdict(lambda: defaultdict(list))
    for run in sorted(runs, key=lambda r: (r.agent, r.task, r.seed)):
        label = f"{run.agent} / {run.task} / seed {run.seed} ({run.path})"
        picked = run.eval_at_or_before(budget)
        if picked is None:
            result.excluded.append(
                f"{label}: first evaluation is at {run.first_step} env steps, after the budget; "
                "excluded from this budget"
            )
            continue
        step, score = picked
        if step != budget:
            why = f"{label}: no evaluation at {budget} env steps; used the last one at or before it ({step})"
            if run.last_step < budget:
                why += f"; the run's last evaluation is at {run.last_step}"
                if run.steps is not None and run.steps < budget:
                    why += f" and it was configured for only {run.steps} env steps"
            result.fallbacks.append(why)
        if run.last_step < budget:
            result.short.append(run)
        grouped[run.agent][run.task].append(RunScore(run, budget, step, score))
    result.scores = {agent: dict(tasks) for agent, tasks in grouped.items()}
    return result


@contextmanager
def seeded_numpy(seed: int) -> Iterator[None]:
    """rliable/arch draw bootstrap indices from numpy's global RNG: seed it, then restore it."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def interquartile_mean(values: np.ndarray) -> float:
    """25% trimmed mean, cut exactly as `scipy.stats.trim_mean(values, 0.25)` (which rliable uses).

    Written out because the bootstrap calls it thousands of times and scipy's per-call overhead
    dominated report time.
    """
    ordered = np.sort(np.ravel(values))
    cut = int(0.25 * ordered.size)
    return float(np.mean(ordered[cut : ordered.size - cut]))


def aggregate_metrics(*task_columns: np.ndarray) -> np.ndarray:
    """[IQM, mean, median, optimality gap] of per-task (n_runs, 1) score arrays (rliable definitions)."""
    pooled = np.concatenate([np.ravel(c) for c in task_columns])
    task_means = np.array([np.mean(c) for c in task_columns])
    return np.array(
        [
            interquartile_mean(pooled),
            float(np.mean(task_means)),
            float(np.median(task_means)),
            float(np.mean(np.maximum(1.0 - pooled, 0.0))),  # = rliable's gamma - mean(min(x, gamma)), gamma=1
        ]
    )


@dataclass(frozen=True)
class Aggregate:
    """Point estimates and 95% stratified-bootstrap CIs of the four rliable aggregates."""

    n_runs: int
    tasks: tuple[str, ...]
    point: dict[str, float]
    ci: dict[str, tuple[float, float]]


def _columns(task_scores: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    return [np.asarray(v, dtype=np.float64).reshape(-1, 1) for _, v in sorted(task_scores.items())]


def aggregate(task_scores: Mapping[str, np.ndarray], reps: int, seed: int = 0) -> Aggregate:
    """Aggregates over tasks of normalised scores, with rliable's stratified bootstrap CIs."""
    columns = _columns(task_scores)
    if not columns or any(c.size == 0 for c in columns):
        raise ValueError("aggregate needs at least one score per task")
    with seeded_numpy(seed):
        points, intervals = rly.get_interval_estimates(
            {"agent": columns}, aggregate_metrics, reps=reps, confidence_interval_size=CI_LEVEL
        )
    point, interval = points["agent"], intervals["agent"]
    return Aggregate(
        n_runs=int(sum(c.size for c in columns)),
        tasks=tuple(sorted(task_scores)),
        point={m: float(point[i]) for i, m in enumerate(METRICS)},
        ci={m: (float(interval[0][i]), float(interval[1][i])) for i, m in enumerate(METRICS)},
    )


@dataclass(frozen=True)
class Profile:
    """Performance profile: fraction of runs with normalised score > tau, averaged over tasks."""

    taus: np.ndarray
    fraction: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


def performance_profile(task_scores: Mapping[str, np.ndarray], taus: np.ndarray, reps: int, seed: int = 0) -> Profile:
    """Score-distribution profile with bootstrap CIs (equal to rliable's for equal seed counts)."""

    def fraction_above(*task_columns: np.ndarray) -> np.ndarray:
        per_task = [np.mean(np.ravel(c)[:, None] > taus[None, :], axis=0) for c in task_columns]
        return np.mean(per_task, axis=0)

    with seeded_numpy(seed):
        points, intervals = rly.get_interval_estimates(
            {"agent": _columns(task_scores)}, fraction_above, reps=reps, confidence_interval_size=CI_LEVEL
        )
    return Profile(taus, points["agent"], intervals["agent"][0], intervals["agent"][1])


@dataclass(frozen=True)
class Improvement:
    """P(agent A scores above agent B on a task), averaged over the tasks both agents have."""

    agent_a: str
    agent_b: str
    tasks: tuple[str, ...]
    value: float
    ci: tuple[float, float]


def pairwise_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y) + P(X = Y) / 2 over all run pairs: the Mann-Whitney U / (n_x n_y) rliable computes."""
    x, y = np.ravel(x)[:, None], np.ravel(y)[None, :]
    return float(np.mean((x > y) + 0.5 * (x == y)))


def probability_of_improvement(
    scores_a: Mapping[str, np.ndarray],
    scores_b: Mapping[str, np.ndarray],
    names: tuple[str, str],
    reps: int,
    seed: int = 0,
) -> Improvement | None:
    """rliable's probability of improvement of A over B with an independent stratified bootstrap CI."""
    tasks = tuple(sorted(set(scores_a) & set(scores_b)))
    if not tasks:
        return None
    columns = [np.asarray(scores_a[t], dtype=np.float64).reshape(-1, 1) for t in tasks] + [
        np.asarray(scores_b[t], dtype=np.float64).reshape(-1, 1) for t in tasks
    ]
    k = len(tasks)

    def mean_poi(*cols: np.ndarray) -> np.ndarray:
        return np.array([np.mean([pairwise_improvement(cols[i], cols[k + i]) for i in range(k)])])

    # Point estimate straight from rliable; the bootstrap uses the identical pairwise formula, which
    # is ~100x faster than a Mann-Whitney call per task per resample.
    point = float(np.mean([rly_metrics.probability_of_improvement(columns[i], columns[k + i]) for i in range(k)]))
    with seeded_numpy(seed):
        _, intervals = rly.get_interval_estimates(
            {"poi": columns}, mean_poi, reps=reps, confidence_interval_size=CI_LEVEL
        )
    return Improvement(names[0], names[1], tasks, point, (float(intervals["poi"][0][0]), float(intervals["poi"][1][0])))


@dataclass(frozen=True)
class Curve:
    """Mean return over seeds vs env steps with a 95% percentile-bootstrap CI and the seed count per point."""

    env_steps: np.ndarray
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    n_seeds: np.ndarray


def learning_curve(runs: Sequence[Run], reps: int, seed: int = 0) -> Curve:
    """Curve over the union of eval steps; a seed counts at a step inside its own evaluated range.

    Between a seed's evaluations its last value is carried forward, so seeds evaluated on slightly
    different grids still line up; no seed is extrapolated past its last evaluation.
    """
    if not runs:
        raise ValueError("learning_curve needs at least one run")
    grid = np.unique(np.concatenate([r.env_steps for r in runs]))
    values = np.full((len(runs), grid.size), np.nan)
    for i, run in enumerate(runs):
        idx = np.searchsorted(run.env_steps, grid, side="right") - 1
        inside = (idx >= 0) & (grid <= run.last_step)
        values[i, inside] = run.returns[idx[inside]]
    available = ~np.isnan(values)
    mean = np.nanmean(values, axis=0)
    lower, upper = mean.copy(), mean.copy()
    rng = np.random.default_rng(seed)
    alpha = (1.0 - CI_LEVEL) / 2.0
    patterns: dict[bytes, list[int]] = defaultdict(list)
    for j in range(grid.size):
        patterns[available[:, j].tobytes()].append(j)
    for columns in patterns.values():
        rows = np.flatnonzero(available[:, columns[0]])
        if rows.size < 2:
            continue  # one seed: no spread to bootstrap, the band collapses onto the mean
        sub = values[np.ix_(rows, columns)]
        # Resampling seeds with replacement == multinomial counts per seed; the mean is a weighted sum.
        counts = rng.multinomial(rows.size, np.full(rows.size, 1.0 / rows.size), size=reps)
        boot = counts @ sub / rows.size
        lower[columns] = np.quantile(boot, alpha, axis=0)
        upper[columns] = np.quantile(boot, 1.0 - alpha, axis=0)
    return Curve(grid, mean, lower, upper, available.sum(axis=0))


def task_mean_std(scores: np.ndarray) -> tuple[float, float | None]:
    """Mean and sample std (ddof=1) over seeds; std is None for a single seed."""
    mean = float(np.mean(scores))
    std = float(np.std(scores, ddof=1)) if scores.size > 1 else None
    return mean, std
