"""`mcrl-report RUN_DIR... --out DIR`: sample-efficiency report over seeds, tasks and agents.

Finds `mcrl-train` runs under the given directories, then writes per-task learning curves, rliable
aggregates (IQM, mean, median, optimality gap with stratified bootstrap CIs), performance profiles
and an optional probability of improvement at each env-step budget, as PNGs, summary.json and
report.md. User errors end with one line and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from agents.reporting import discovery, plots, reference, stats, writer

DEFAULT_BUDGETS = (100_000, 500_000)
DEFAULT_REPS = 5_000
EXIT_PROBLEMS = 1


class ReportError(Exception):
    """A user-facing failure: each of its lines is printed as one error line, exit status non-zero."""

    def __init__(self, *lines: str) -> None:
        super().__init__(*lines)
        self.lines = lines


def parse_budget(text: str) -> int:
    """Env-step budget from '100000', '100_000', '1e5', '100k' or '1M'."""
    match = re.fullmatch(r"\s*([0-9._eE+]+)\s*([kKmM]?)\s*", text)
    try:
        if not match:
            raise ValueError(text)
        value = float(match.group(1).replace("_", "")) * {"": 1, "k": 1e3, "m": 1e6}[match.group(2).lower()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"budget {text!r} is not a number of environment steps") from None
    if value <= 0 or value != int(value):
        raise argparse.ArgumentTypeError(f"budget {text!r} must be a positive whole number of env steps")
    return int(value)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mcrl-report",
        description="Sample-efficiency report (learning curves, rliable aggregates, performance profiles) "
        "over mcrl-train run directories. Every step count is in environment steps (frames), never "
        "agent steps.",
        epilog="example: mcrl-report runs/ --out report/ --compare curl sac",
    )
    parser.add_argument(
        "run_dirs",
        nargs="+",
        metavar="RUN_DIR",
        type=Path,
        help="directories searched recursively for runs (folders holding eval.csv)",
    )
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="DIR",
        help="output folder for report.md, summary.json and the PNGs (created if missing)",
    )
    parser.add_argument(
        "--budgets",
        nargs="+",
        type=parse_budget,
        default=list(DEFAULT_BUDGETS),
        metavar="ENV_STEPS",
        help="env-step budgets to report at (default: 100000 500000; 100k and 1M work too)",
    )
    parser.add_argument(
        "--reps",
        type=_positive_int,
        default=DEFAULT_REPS,
        metavar="N",
        help=f"bootstrap resamples for every CI (default: {DEFAULT_REPS}; rliable's own default is 50000)",
    )
    parser.add_argument(
        "--compare",
        nargs=2,
        metavar=("AGENT_A", "AGENT_B"),
        help="also report the probability that AGENT_A scores above AGENT_B",
    )
    parser.add_argument(
        "--on-error",
        choices=("skip", "fail"),
        default="skip",
        help="a run with a missing or malformed eval.csv/config.yaml: skip it with a "
        "warning (default) or fail with a non-zero exit",
    )
    parser.add_argument(
        "--no-reference", action="store_true", help="leave out the published reference rows (tables and dashed marks)"
    )
    parser.add_argument(
        "--bootstrap-seed",
        type=int,
        default=0,
        metavar="SEED",
        help="seed of the bootstrap resampling, for reproducible CIs (default: 0)",
    )
    return parser


def _warn(message: str) -> None:
    print(f"mcrl-report: warning: {message}", file=sys.stderr)


def _load_runs(
    args: argparse.Namespace,
) -> tuple[list[discovery.Run], list[discovery.Problem], list[discovery.Problem]]:
    try:
        runs, problems, duplicates = discovery.discover_runs(args.run_dirs)
    except FileNotFoundError as err:
        raise ReportError(str(err)) from None
    if problems and args.on_error == "fail":
        raise ReportError(*(f"{p.message} (--on-error fail)" for p in problems))
    for problem in problems:
        _warn(f"skipping run: {problem.message}")
    for duplicate in duplicates:
        _warn(duplicate.message)
    if not runs:
        roots = ", ".join(str(p) for p in args.run_dirs)
        raise ReportError(f"no usable runs (directories with eval.csv and config.yaml) under {roots}")
    return runs, problems, duplicates


def _file_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def _budget_result(
    runs: Sequence[discovery.Run],
    budget: int,
    args: argparse.Namespace,
    ref_rows: Sequence[reference.ReferenceRow],
    colours: dict[str, str],
) -> writer.BudgetResult:
    selection = stats.select_at_budget(runs, budget)
    aggregates, task_stats, profiles = {}, {}, {}
    top = max([1.0] + [float(r.returns.max()) / stats.SCORE_SCALE for r in runs])
    taus = np.linspace(0.0, top, 101)
    for agent in sorted(selection.scores):
        normalised = selection.task_arrays(agent)
        aggregates[agent] = stats.aggregate(normalised, args.reps, args.bootstrap_seed)
        profiles[agent] = stats.performance_profile(normalised, taus, args.reps, args.bootstrap_seed)
        task_stats[agent] = {}
        for task, items in selection.scores[agent].items():
            mean, std = stats.task_mean_std(np.array([s.score for s in items]))
            task_stats[agent][task] = writer.TaskStat(mean, std, len(items), [s.run.seed for s in items])
    result = writer.BudgetResult(budget, selection, aggregates, task_stats, references=list(ref_rows))
    if args.compare:
        a, b = args.compare
        missing = [name for name in (a, b) if name not in selection.scores]
        if missing:
            result.improvement_note = f"Not computed: no runs of {', '.join(missing)} at this budget."
        else:
            result.improvement = stats.probability_of_improvement(
                selection.task_arrays(a), selection.task_arrays(b), (a, b), args.reps, args.bootstrap_seed
            )
            if result.improvement is None:
                result.improvement_note = f"Not computed: {a} and {b} share no task at this budget."
    if aggregates:
        name = f"{budget}_env_steps.png"
        result.profile_png = f"performance_profile_{name}"
        result.aggregates_png = f"aggregates_{name}"
        plots.plot_profiles(args.out / result.profile_png, budget, profiles, colours)
        plots.plot_aggregates(args.out / result.aggregates_png, budget, aggregates, colours)
    return result


def run_report(args: argparse.Namespace) -> writer.ReportData:
    """Discover runs, compute every statistic, and write the PNGs, summary.json and report.md."""
    runs, problems, duplicates = _load_runs(args)
    agents = sorted({r.agent for r in runs})
    if args.compare:
        unknown = [a for a in args.compare if a not in agents]
        if unknown:
            raise ReportError(f"--compare: no runs of agent {', '.join(unknown)} (found: {', '.join(agents)})")
    try:
        ref_rows = [] if args.no_reference else reference.load_reference()
    except ValueError as err:
        raise ReportError(str(err)) from None
    args.out.mkdir(parents=True, exist_ok=True)
    colours = plots.agent_colours(agents)

    curves: dict[str, dict[str, stats.Curve]] = {}
    for task in sorted({r.task for r in runs}):
        for agent in agents:
            group = [r for r in runs if r.task == task and r.agent == agent]
            if group:
                curves.setdefault(task, {})[agent] = stats.learning_curve(group, args.reps, args.bootstrap_seed)
    marks = {task: reference.marks_for_task(ref_rows, task) for task in curves}
    task_pngs = {}
    for task, by_agent in curves.items():
        rel = f"curves/{_file_name(task)}.png"
        plots.plot_task(args.out / rel, task, by_agent, marks[task], colours)
        task_pngs[task] = rel
    plots.plot_grid(args.out / "curves_grid.png", curves, marks, colours)

    budgets = [
        _budget_result(runs, b, args, reference.rows_at(ref_rows, b), colours) for b in sorted(set(args.budgets))
    ]
    data = writer.ReportData(
        roots=[str(p) for p in args.run_dirs],
        runs=runs,
        skipped=problems,
        duplicates=duplicates,
        warnings=discovery.unit_warnings(runs),
        budgets=budgets,
        reps=args.reps,
        bootstrap_seed=args.bootstrap_seed,
        compare=tuple(args.compare) if args.compare else None,
        reference_enabled=not args.no_reference,
        grid_png="curves_grid.png",
        task_pngs=task_pngs,
    )
    for warning in data.warnings:
        _warn(warning)
    writer.write_summary(args.out / "summary.json", data)
    writer.write_report(args.out / "report.md", data)
    return data


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        data = run_report(args)
    except ReportError as err:
        for line in err.lines:
            print(f"mcrl-report: error: {line}", file=sys.stderr)
        return EXIT_PROBLEMS
    except OSError as err:  # e.g. --out not writable
        print(f"mcrl-report: error: {err}", file=sys.stderr)
        return EXIT_PROBLEMS
    print(
        f"mcrl-report: {len(data.runs)} run(s), budgets {', '.join(str(b.budget) for b in data.budgets)} "
        f"env steps -> {args.out / 'report.md'}, {args.out / 'summary.json'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
