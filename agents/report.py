"""`mcrl-report RUN_DIR... --out DIR`: sample-efficiency report over seeds, tasks and agents.

Finds `mcrl-train` runs under the given directories, then writes per-task learning curves, rliable
aggregates (IQM, mean, median, optimality gap with stratified bootstrap CIs), performance profiles
and an optional probability of improvement at each env-step budget, as PNGs, summary.json and
report.md. Scores are normalised by each task's own range (`reporting.normalise`). User errors end
with one line `mcrl-report: error: ...` and exit status 2 (agents.errors), never a traceback.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NoReturn

import numpy as np

from agents.errors import UserError, exit_on_user_error
from agents.reporting import discovery, normalise, plots, reference, stats, writer

PROG = "mcrl-report"
DEFAULT_BUDGETS = (100_000, 500_000)
DEFAULT_REPS = 5_000


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors take the project's one error path (one line, exit 2)."""

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{message} (see {PROG} --help)")


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
    parser = _Parser(
        prog=PROG,
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
        "--score-range",
        action="append",
        default=[],
        metavar="TASK=LOW:HIGH",
        help="lowest and highest return of TASK, to normalise its scores (repeatable). Needed for a task "
        "that is neither a dm_control suite task nor synthetic-reach (both: 0 to episode_length); "
        "without it such a task stays out of the aggregates and profiles",
    )
    parser.add_argument(
        "--on-error",
        choices=("skip", "fail"),
        default="skip",
        help="a run with a missing or malformed eval.csv/config.yaml: skip it with a "
        "warning (default) or fail with exit status 2",
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
    print(f"{PROG}: warning: {message}", file=sys.stderr)


def _load_runs(
    args: argparse.Namespace,
) -> tuple[list[discovery.Run], list[discovery.Problem], list[discovery.Problem]]:
    for root in args.run_dirs:
        if not root.exists():
            raise UserError(f"run directory {root} does not exist")
        if not root.is_dir() and root.name not in (discovery.EVAL_FILE, discovery.CONFIG_FILE):
            raise UserError(f"{root} is a file, not a directory of runs")
    runs, problems, duplicates = discovery.discover_runs(args.run_dirs)
    if problems and args.on_error == "fail":
        if len(problems) == 1:
            raise UserError(f"{problems[0].message} (--on-error fail)")
        for problem in problems:
            _warn(f"broken run: {problem.message}")
        raise UserError(f"{len(problems)} runs are broken, listed above (--on-error fail)")
    for problem in problems:
        _warn(f"skipping run: {problem.message}")
    for duplicate in duplicates:
        _warn(duplicate.message)
    if not runs:
        roots = ", ".join(str(p) for p in args.run_dirs)
        raise UserError(f"no usable runs (directories with eval.csv and config.yaml) under {roots}")
    return runs, problems, duplicates


def _score_ranges(
    overrides: Mapping[str, normalise.ScoreRange], runs: Sequence[discovery.Run]
) -> tuple[dict[str, normalise.ScoreRange], dict[str, str], list[str]]:
    """(range per task, reason per task without one, warnings) from --score-range and the known tasks."""
    warnings = [f"--score-range {t}: no runs of this task" for t in sorted(set(overrides) - {r.task for r in runs})]
    ranges, unknown = normalise.task_ranges(runs, overrides)
    warnings += [
        f"task {task}: score range unknown ({why}); its returns are not normalised and it is left out "
        f"of the aggregates and performance profiles (pass --score-range {task}=LOW:HIGH to include it)"
        for task, why in sorted(unknown.items())
    ]
    return ranges, unknown, warnings


def missing_tasks(tasks_by_agent: Mapping[str, Sequence[str]]) -> str | None:
    """'sac lacks walker-walk; ...' when agents ran different task sets, else None."""
    every = set().union(*(set(t) for t in tasks_by_agent.values()))
    lacking = [
        f"{agent} lacks {', '.join(sorted(every - set(tasks)))}"
        for agent, tasks in sorted(tasks_by_agent.items())
        if every - set(tasks)
    ]
    return "; ".join(lacking) if lacking else None


def _short_warning(selection: stats.BudgetScores) -> str | None:
    if not selection.short:
        return None
    furthest = max(r.last_step for r in selection.short)
    return (
        f"budget {selection.budget} env steps: {len(selection.short)} of {selection.n_runs} counted run(s) "
        f"stopped before it (furthest: {furthest}) and count with their last evaluation; the figures are "
        "titled with the steps reached and report.md lists the runs"
    )


def _make_out_dir(out: Path) -> None:
    """Create --out, or say in one line why the report cannot be written there, before any work."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"--out {out} cannot be created ({err.strerror or err})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise UserError(f"--out {out} is not writable")


def _file_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def _budget_result(
    runs: Sequence[discovery.Run],
    budget: int,
    args: argparse.Namespace,
    ranges: Mapping[str, normalise.ScoreRange],
    ref_rows: Sequence[reference.ReferenceRow],
    colours: dict[str, str],
) -> writer.BudgetResult:
    selection = stats.select_at_budget(runs, budget)
    normalised = {agent: selection.task_arrays(agent, ranges) for agent in sorted(selection.scores)}
    normalised = {agent: tasks for agent, tasks in normalised.items() if tasks}
    top = max([1.0] + [float(v.max()) for tasks in normalised.values() for v in tasks.values()])
    taus = np.linspace(0.0, top, 101)
    aggregates, profiles = {}, {}
    for agent, tasks in normalised.items():
        aggregates[agent] = stats.aggregate(tasks, args.reps, args.bootstrap_seed)
        profiles[agent] = stats.performance_profile(tasks, taus, args.reps, args.bootstrap_seed)
    task_stats: dict[str, dict[str, writer.TaskStat]] = {}
    for agent in sorted(selection.scores):
        task_stats[agent] = {}
        for task, items in selection.scores[agent].items():
            mean, std = stats.task_mean_std(np.array([s.score for s in items]))
            task_stats[agent][task] = writer.TaskStat(mean, std, len(items), [s.run.seed for s in items])
    lacking = missing_tasks({agent: list(tasks) for agent, tasks in normalised.items()})
    result = writer.BudgetResult(
        budget,
        selection,
        aggregates,
        task_stats,
        references=list(ref_rows),
        missing_tasks=lacking,
    )
    if args.compare:
        a, b = args.compare
        missing = [name for name in (a, b) if name not in selection.scores]
        if missing:
            result.improvement_note = f"Not computed: no runs of {', '.join(missing)} at this budget."
        else:
            # P(A > B) compares returns within each task, so it needs no normalisation: raw returns.
            result.improvement = stats.probability_of_improvement(
                selection.task_arrays(a), selection.task_arrays(b), (a, b), args.reps, args.bootstrap_seed
            )
            if result.improvement is None:
                result.improvement_note = f"Not computed: {a} and {b} share no task at this budget."
    if aggregates:
        name = f"{budget}_env_steps.png"
        notes = [f"Different tasks per agent: {lacking}."] if lacking else []
        result.profile_png = f"performance_profile_{name}"
        result.aggregates_png = f"aggregates_{name}"
        plots.plot_profiles(args.out / result.profile_png, selection, profiles, colours, notes)
        plots.plot_aggregates(args.out / result.aggregates_png, selection, aggregates, colours, notes)
    return result


def run_report(args: argparse.Namespace) -> writer.ReportData:
    """Discover runs, compute every statistic, and write the PNGs, summary.json and report.md."""
    if args.compare and args.compare[0] == args.compare[1]:
        raise UserError(f"--compare needs two different agents, got {args.compare[0]} twice")
    overrides = dict(normalise.parse_score_range(text) for text in args.score_range)
    runs, problems, duplicates = _load_runs(args)
    agents = sorted({r.agent for r in runs})
    if args.compare:
        unknown = [a for a in args.compare if a not in agents]
        if unknown:
            raise UserError(f"--compare: no runs of agent {', '.join(unknown)} (found: {', '.join(agents)})")
    ranges, unnormalised, warnings = _score_ranges(overrides, runs)
    try:
        ref_rows = [] if args.no_reference else reference.load_reference()
    except ValueError as err:  # a malformed CSV someone put in configs/reference/
        raise UserError(str(err)) from None
    _make_out_dir(args.out)
    colours = plots.agent_colours(agents)

    warnings += [note for run in runs for note in run.notes]
    warnings += discovery.unit_warnings(runs)
    lacking = missing_tasks({agent: [r.task for r in runs if r.agent == agent] for agent in agents})
    if lacking:
        warnings.append(f"agents ran different tasks, so their aggregates are not over the same tasks: {lacking}")

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
        _budget_result(runs, b, args, ranges, reference.rows_at(ref_rows, b), colours)
        for b in sorted(set(args.budgets))
    ]
    warnings += [w for w in (_short_warning(b.selection) for b in budgets) if w]
    data = writer.ReportData(
        roots=[str(p) for p in args.run_dirs],
        runs=runs,
        skipped=problems,
        duplicates=duplicates,
        warnings=warnings,
        budgets=budgets,
        reps=args.reps,
        bootstrap_seed=args.bootstrap_seed,
        compare=tuple(args.compare) if args.compare else None,
        reference_enabled=not args.no_reference,
        command=getattr(args, "command", None),
        score_ranges=ranges,
        unnormalised=unnormalised,
        grid_png="curves_grid.png",
        task_pngs=task_pngs,
    )
    for warning in data.warnings:
        _warn(warning)
    writer.write_summary(args.out / "summary.json", data)
    writer.write_report(args.out / "report.md", data)
    return data


@exit_on_user_error(PROG)
def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.command = shlex.join([PROG, *argv])
    data = run_report(args)
    print(
        f"{PROG}: {len(data.runs)} run(s), budgets {', '.join(str(b.budget) for b in data.budgets)} "
        f"env steps -> {args.out / 'report.md'}, {args.out / 'summary.json'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
