"""mcrl-report: statistics against numpy/scipy, budget rules, run discovery errors, outputs, sweeps."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
import yaml
from matplotlib.figure import Figure

from agents import report
from agents.reporting import discovery, normalise, plots, reference, stats

REPO = Path(__file__).resolve().parents[1]
REPS = 300  # few bootstrap resamples keep the suite fast; the statistics are checked, not their precision
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_run(
    root: Path,
    agent: str,
    task: str,
    seed: int,
    steps: list[int],
    returns: list[float],
    action_repeat: int = 4,
    budget: int = 500_000,
    episode_length: int | None = None,
) -> Path:
    """A fake mcrl-train run directory following the run-directory contract."""
    run_dir = root / f"{agent}_{task}_s{seed}"
    run_dir.mkdir(parents=True)
    config = {
        "agent": {"name": agent},
        "env": {"name": task, "action_repeat": action_repeat},
        "seed": seed,
        "steps": budget,
    }
    if episode_length is not None:
        config["env"]["episode_length"] = episode_length
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    lines = ["env_step,return_mean,return_std,episodes,wall_time_s"]
    lines += [f"{s},{r},0.0,10,{i}.0" for i, (s, r) in enumerate(zip(steps, returns))]
    (run_dir / "eval.csv").write_text("\n".join(lines) + "\n")
    (run_dir / "train.csv").write_text("env_step,loss\n")
    return run_dir


def make_sweep(root: Path, agents: dict[str, float], tasks: tuple[str, ...], seeds: int) -> None:
    """Agents of given skill on `tasks`, evaluated every 50k env steps up to 500k."""
    rng = np.random.default_rng(0)
    steps = list(range(0, 500_001, 50_000))
    for agent, skill in agents.items():
        for task in tasks:
            for seed in range(1, seeds + 1):
                curve = 1000 * skill * (1 - np.exp(-np.array(steps) / 150_000)) * rng.uniform(0.8, 1.0)
                make_run(root, agent, task, seed, steps, list(np.round(curve, 2)))


def test_rliable_and_arch_import() -> None:
    import arch  # noqa: F401
    import pandas
    import rliable  # noqa: F401
    from rliable import library, metrics  # noqa: F401

    assert int(pandas.__version__.split(".")[0]) < 3, "arch (imported by rliable) breaks with pandas 3.x"


# ----------------------------------------------------------------------------------------- statistics


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 10, 13, 60])
def test_interquartile_mean_equals_scipy_trim_mean(n: int) -> None:
    values = np.random.default_rng(n).normal(size=n)
    assert stats.interquartile_mean(values) == pytest.approx(scipy.stats.trim_mean(values, 0.25))


def test_aggregates_match_numpy_scipy_and_rliable() -> None:
    from rliable import metrics

    scores = np.random.default_rng(1).uniform(0.0, 1.2, size=(10, 6))  # runs x tasks, some above 1
    agg = stats.aggregate({f"t{j}": scores[:, j] for j in range(6)}, reps=REPS)
    expected = {
        "iqm": scipy.stats.trim_mean(scores, 0.25, axis=None),
        "mean": scores.mean(axis=0).mean(),
        "median": np.median(scores.mean(axis=0)),
        "optimality_gap": np.mean(np.maximum(1.0 - scores, 0.0)),
    }
    rliable_values = {
        "iqm": metrics.aggregate_iqm(scores),
        "mean": metrics.aggregate_mean(scores),
        "median": metrics.aggregate_median(scores),
        "optimality_gap": metrics.aggregate_optimality_gap(scores),
    }
    for metric in stats.METRICS:
        assert agg.point[metric] == pytest.approx(expected[metric])
        assert agg.point[metric] == pytest.approx(rliable_values[metric])
        lo, hi = agg.ci[metric]
        assert lo <= agg.point[metric] <= hi
    assert agg.n_runs == 60 and agg.tasks == tuple(f"t{j}" for j in range(6))


def test_aggregates_accept_unequal_seed_counts() -> None:
    by_task = {"a": np.array([0.1, 0.2, 0.3]), "b": np.array([0.5, 0.9]), "c": np.array([0.7])}
    pooled = np.concatenate(list(by_task.values()))
    agg = stats.aggregate(by_task, reps=REPS)
    assert agg.n_runs == 6
    assert agg.point["iqm"] == pytest.approx(scipy.stats.trim_mean(pooled, 0.25))
    assert agg.point["mean"] == pytest.approx(np.mean([0.2, 0.7, 0.7]))


def test_confidence_intervals_tighten_with_more_runs() -> None:
    rng = np.random.default_rng(2)

    def widths(n_runs: int) -> dict[str, float]:
        agg = stats.aggregate({f"t{j}": rng.uniform(0, 1, n_runs) for j in range(4)}, reps=REPS)
        return {m: agg.ci[m][1] - agg.ci[m][0] for m in stats.METRICS}

    few, many = widths(3), widths(40)
    for metric in stats.METRICS:
        assert many[metric] < few[metric]


def test_bootstrap_is_reproducible_and_leaves_global_rng_alone() -> None:
    scores = {"t": np.random.default_rng(3).uniform(size=8)}
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    first = stats.aggregate(scores, reps=REPS, seed=7)
    second = stats.aggregate(scores, reps=REPS, seed=7)
    assert first.ci == second.ci
    assert np.array_equal(np.random.get_state()[1], before)


def test_probability_of_improvement_matches_rliable() -> None:
    from rliable import metrics

    rng = np.random.default_rng(4)
    for _ in range(20):
        x = rng.integers(0, 5, size=(rng.integers(1, 8), 1)).astype(float)  # small ints: many ties
        y = rng.integers(0, 5, size=(rng.integers(1, 8), 1)).astype(float)
        assert stats.pairwise_improvement(x, y) == pytest.approx(metrics.probability_of_improvement(x, y))
    better = {"t1": np.array([0.9, 0.8, 0.95]), "t2": np.array([0.7, 0.75, 0.8])}
    worse = {"t1": np.array([0.1, 0.2, 0.3]), "t2": np.array([0.2, 0.1, 0.3]), "t3": np.array([0.5])}
    imp = stats.probability_of_improvement(better, worse, ("a", "b"), reps=REPS)
    assert imp is not None and imp.tasks == ("t1", "t2")
    assert imp.value == pytest.approx(1.0) and imp.ci[0] <= imp.value <= imp.ci[1]
    same = stats.probability_of_improvement(better, better, ("a", "a"), reps=REPS)
    assert same is not None and same.value == pytest.approx(0.5)
    assert stats.probability_of_improvement(better, {"other": np.array([1.0])}, ("a", "b"), REPS) is None


def _run(steps: list[int], returns: list[float], seed: int = 1, budget: int | None = None) -> discovery.Run:
    return discovery.Run(
        Path(f"/runs/s{seed}"),
        "curl",
        "cheetah-run",
        seed,
        4,
        budget,
        np.array(steps, dtype=np.int64),
        np.array(returns, dtype=float),
    )


def test_budget_uses_last_eval_at_or_before_and_says_so() -> None:
    exact = _run([0, 50_000, 100_000, 150_000], [0, 100, 200, 300], seed=1)
    off_grid = _run([0, 40_000, 90_000, 130_000], [0, 80, 180, 260], seed=2)
    short = _run([0, 60_000], [0, 120], seed=3, budget=60_000)
    late = _run([150_000, 200_000], [500, 600], seed=4)
    sel = stats.select_at_budget([exact, off_grid, short, late], 100_000)
    picked = {rs.run.seed: rs for rs in sel.scores["curl"]["cheetah-run"]}
    assert (picked[1].env_step, picked[1].score, picked[1].fallback) == (100_000, 200.0, False)
    assert (picked[2].env_step, picked[2].score, picked[2].fallback) == (90_000, 180.0, True)
    assert (picked[3].env_step, picked[3].score) == (60_000, 120.0)
    assert 4 not in picked
    assert len(sel.fallbacks) == 2
    assert "used the last one at or before it (90000)" in sel.fallbacks[0]
    assert "configured for only 60000 env steps" in sel.fallbacks[1]
    assert len(sel.excluded) == 1 and "first evaluation is at 150000 env steps" in sel.excluded[0]
    assert sel.task_arrays("curl")["cheetah-run"] == pytest.approx([200, 180, 120])  # raw without ranges
    dmc = normalise.ScoreRange(0.0, 1000.0, "test")
    assert sel.task_arrays("curl", {"cheetah-run": dmc})["cheetah-run"] == pytest.approx([0.2, 0.18, 0.12])
    assert sel.task_arrays("curl", {"other-task": dmc}) == {}  # a task without a range is never normalised


def test_learning_curve_mean_band_and_seed_counts() -> None:
    a = _run([0, 10, 20, 30], [0, 10, 20, 30], seed=1)
    b = _run([0, 10, 20, 30], [0, 30, 40, 50], seed=2)
    c = _run([0, 15, 20], [0, 5, 60], seed=3)  # other grid, stops early
    curve = stats.learning_curve([a, b, c], reps=REPS)
    assert list(curve.env_steps) == [0, 10, 15, 20, 30]
    assert list(curve.n_seeds) == [3, 3, 3, 3, 2]  # c's value at 0 is carried to 10; a, b's 10 to 15
    assert curve.mean[2] == pytest.approx((10 + 30 + 5) / 3)
    assert curve.mean[3] == pytest.approx((20 + 40 + 60) / 3)
    assert curve.mean[4] == pytest.approx(40.0)  # c is not extrapolated past 20
    assert np.all(curve.lower <= curve.mean + 1e-9) and np.all(curve.mean <= curve.upper + 1e-9)
    single = stats.learning_curve([a], reps=REPS)
    assert np.array_equal(single.lower, single.mean) and np.array_equal(single.upper, single.mean)


# -------------------------------------------------------------------------------------- run discovery

BROKEN = {
    "missing_column": ("env_step,score\n0,1\n", "missing column(s) return_mean"),
    "not_a_number": ("env_step,return_mean\n0,1\n1000,abc\n", "eval.csv:3: return_mean 'abc' is not a number"),
    "empty": ("", "empty file"),
    "header_only": ("env_step,return_mean\n", "no evaluation rows yet"),
    "agent_steps_float": ("env_step,return_mean\n2.5,1\n", "env_step '2.5' is not an integer"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_malformed_eval_csv_is_one_line_naming_the_file(tmp_path: Path, case: str) -> None:
    make_run(tmp_path, "curl", "cheetah-run", 1, [0, 100], [1.0, 2.0])
    bad = make_run(tmp_path, "curl", "cheetah-run", 2, [0], [0.0])
    content, expected = BROKEN[case]
    (bad / "eval.csv").write_text(content)
    runs, problems, _ = discovery.discover_runs([tmp_path])
    assert [r.seed for r in runs] == [1]
    assert len(problems) == 1
    message = problems[0].message
    assert "\n" not in message and str(bad / "eval.csv") in message and expected in message


HEADER = "env_step,return_mean,return_std,episodes,wall_time_s\n"
GOOD_ROWS = "0,1.0,0.0,10,1.0\n1000,2.0,0.0,10,2.0\n"


@pytest.mark.parametrize(
    "tail, why",
    [
        ("2000,3.5", "does not end with a line break"),  # killed mid-row: fields and line end missing
        ("2000,3.5,0.0,10,3.0", "does not end with a line break"),  # cut inside the last number
        ("2000,3.5\n", "has 2 of the header's 5 fields"),
    ],
)
def test_cut_off_last_eval_row_is_dropped_with_a_warning_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tail: str, why: str
) -> None:
    run_dir = make_run(tmp_path / "runs", "curl", "cheetah-run", 1, [0], [0.0])
    (run_dir / "eval.csv").write_text(HEADER + GOOD_ROWS + tail)
    run = discovery.load_run(run_dir)
    assert list(run.env_steps) == [0, 1000] and list(run.returns) == [1.0, 2.0]
    assert len(run.notes) == 1 and f"{run_dir / 'eval.csv'}:4: last row {why}" in run.notes[0]
    if tail != "2000,3.5":
        return  # the CLI path is the same for every case: run it once

    out = tmp_path / "out"
    assert report.main([str(tmp_path / "runs"), "--out", str(out), "--reps", "50", "--budgets", "2000"]) == 0
    err = capsys.readouterr().err
    assert f"warning: {run_dir / 'eval.csv'}:4: last row" in err
    assert (
        json.loads((out / "summary.json").read_text())["budgets"]["2000"]["agents"]["curl"]["runs"][0]["env_step_used"]
        == 1000
    )


def test_short_row_before_the_last_fails_the_file(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path, "curl", "cheetah-run", 1, [0], [0.0])
    (run_dir / "eval.csv").write_text(HEADER + "0,1.0\n" + GOOD_ROWS)
    with pytest.raises(discovery.RunLoadError, match=r"eval.csv:2: row has 2 fields, the header has 5"):
        discovery.load_run(run_dir)
    (run_dir / "eval.csv").write_text(HEADER + "0,1.0")  # the only row is cut off: nothing left
    with pytest.raises(discovery.RunLoadError, match="no evaluation rows yet"):
        discovery.load_run(run_dir)


def test_missing_eval_csv_and_bad_config_are_reported(tmp_path: Path) -> None:
    no_eval = make_run(tmp_path, "curl", "walker-walk", 1, [0], [0.0])
    (no_eval / "eval.csv").unlink()
    bad_yaml = make_run(tmp_path, "curl", "walker-walk", 2, [0], [0.0])
    (bad_yaml / "config.yaml").write_text("agent: [unclosed\n")
    no_seed = make_run(tmp_path, "curl", "walker-walk", 3, [0], [0.0])
    (no_seed / "config.yaml").write_text(yaml.safe_dump({"agent": {"name": "curl"}, "env": {"name": "x"}}))
    (tmp_path / "unrelated").mkdir()
    (tmp_path / "unrelated" / "notes.txt").write_text("not a run")
    runs, problems, _ = discovery.discover_runs([tmp_path])
    assert runs == []
    messages = sorted(p.message for p in problems)
    assert len(messages) == 3 and all("\n" not in m for m in messages)
    assert any(str(no_eval / "eval.csv") in m and "missing" in m for m in messages)
    assert any(str(bad_yaml / "config.yaml") in m and "not valid YAML" in m for m in messages)
    assert any(str(no_seed / "config.yaml") in m and "missing key(s) seed" in m for m in messages)


def test_duplicates_keep_furthest_run_and_hidden_dirs_are_skipped(tmp_path: Path) -> None:
    make_run(tmp_path / "a", "sac", "cheetah-run", 1, [0, 100], [0.0, 1.0])
    make_run(tmp_path / "b", "sac", "cheetah-run", 1, [0, 100, 200], [0.0, 1.0, 2.0])
    make_run(tmp_path / ".hidden", "sac", "cheetah-run", 2, [0], [0.0])
    runs, problems, duplicates = discovery.discover_runs([tmp_path])
    assert len(runs) == 1 and runs[0].last_step == 200 and problems == []
    assert len(duplicates) == 1 and str(tmp_path / "a") in duplicates[0].message


def test_env_steps_are_read_as_is_and_agent_step_files_are_flagged(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path, "curl", "cheetah-run", 1, [0, 50_000, 100_000], [0, 1, 2], action_repeat=4)
    run = discovery.load_run(run_dir)
    assert list(run.env_steps) == [0, 50_000, 100_000]  # never multiplied by the action repeat
    assert stats.select_at_budget([run], 100_000).fallbacks == []
    assert discovery.unit_warnings([run]) == []
    agent_steps = make_run(tmp_path, "curl", "cheetah-run", 2, [0, 25_001], [0, 1], action_repeat=4)
    warnings = discovery.unit_warnings([discovery.load_run(agent_steps)])
    assert len(warnings) == 1 and "agent steps" in warnings[0]
    assert plots.X_LABEL == "environment steps"


# --------------------------------------------------------------------------------- reference rows


def test_reference_rows_have_sources_and_match_published_means() -> None:
    rows = reference.load_reference()
    assert rows and all(r.source for r in rows)
    assert {r.budget_env_steps for r in rows} == {100_000, 500_000}
    curl = {(r.task, r.budget_env_steps): r.score for r in rows if r.method == "CURL"}
    assert curl[("cheetah-run", 100_000)] == 299 and curl[("ball_in_cup-catch", 500_000)] == 959
    assert all(r.seeds == 10 for r in rows if r.method in ("CURL", "DrQ"))
    means = {
        (r.method, b): round(r.score, 1)
        for b in (100_000, 500_000)
        for r in reference.rows_at(rows, b)
        if r.task == reference.MEAN_TASK
    }
    assert means == {
        ("CURL", 100_000): 559.7,
        ("CURL", 500_000): 845.8,
        ("DrQ", 100_000): 688.3,
        ("DrQ", 500_000): 882.0,
        ("MLR", 100_000): 772.8,
        ("MLR", 500_000): 896.5,
    }
    with pytest.raises(ValueError, match="missing column"):
        reference.parse_reference_csv("method,task\nx,y\n", "bad.csv")


# ---------------------------------------------------------------------------------------- the CLI


@pytest.fixture(scope="module")
def sweep_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, int]:
    root = tmp_path_factory.mktemp("runs")
    make_sweep(root, {"curl": 0.9, "sac": 0.5}, ("cheetah-run", "walker-walk"), seeds=3)
    out = tmp_path_factory.mktemp("report")
    code = report.main([str(root), "--out", str(out), "--reps", str(REPS), "--compare", "curl", "sac"])
    return root, out, code


def test_report_writes_pngs_summary_and_markdown(sweep_report: tuple[Path, Path, int]) -> None:
    root, out, code = sweep_report
    assert code == 0
    pngs = sorted(out.rglob("*.png"))
    names = {p.relative_to(out).as_posix() for p in pngs}
    assert {"curves_grid.png", "curves/cheetah-run.png", "curves/walker-walk.png"} <= names
    assert {f"performance_profile_{b}_env_steps.png" for b in (100000, 500000)} <= names
    for png in pngs:
        assert png.stat().st_size > 1000 and png.read_bytes()[:8] == PNG_MAGIC

    summary = json.loads((out / "summary.json").read_text())
    assert summary["unit"] == "env_steps" and summary["budgets_env_steps"] == [100000, 500000]
    for budget in ("100000", "500000"):
        block = summary["budgets"][budget]
        assert block["budget_env_steps"] == int(budget)
        assert set(block["agents"]) == {"curl", "sac"}  # published methods never appear among own agents
        for entry in block["agents"].values():
            for key in ("iqm", "iqm_ci", "mean", "median", "optimality_gap", "n_runs", "per_task_means"):
                assert key in entry
            assert entry["n_runs"] == 6 and entry["iqm_ci"][0] <= entry["iqm"] <= entry["iqm_ci"][1]
            assert set(entry["per_task_means"]) == {"cheetah-run", "walker-walk"}
        poi = block["probability_of_improvement"]
        assert poi["a"] == "curl" and poi["p_a_better_than_b"] > 0.9
    assert summary["budgets"]["500000"]["agents"]["curl"]["iqm"] > summary["budgets"]["500000"]["agents"]["sac"]["iqm"]
    assert {r["method"] for r in summary["reference"]["100000"]} == {"CURL", "DrQ", "MLR"}

    assert summary["command"] == f"mcrl-report {root} --out {out} --reps {REPS} --compare curl sac"
    text = (out / "report.md").read_text()
    assert f"Command: `{summary['command']}`" in text
    assert "environment steps" in text and "## At 100k environment steps (100000 env_steps)" in text
    for png in names:
        if not png.startswith("aggregates_"):
            assert f"({png})" in text
    own, published = text.split("### Published reference results at 100k", 1)
    assert "CURL" not in own.split("## At 100k", 1)[1] and "| CURL | cheetah-run | 299.0 |" in published
    assert "Srinivas, Laskin & Abbeel" in published


def _user_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run mcrl-report expecting a user error: exit status 2 and exactly one `mcrl-report: error:` line."""
    with pytest.raises(SystemExit) as exc:
        report.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    last = err.splitlines()[-1]
    assert last.startswith("mcrl-report: error: ") and "Traceback" not in err
    assert all(line.startswith("mcrl-report: warning: ") for line in err.splitlines()[:-1])
    return last


def test_report_skip_and_fail_on_broken_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_sweep(tmp_path / "runs", {"curl": 0.8}, ("cheetah-run",), seeds=2)
    broken = make_run(tmp_path / "runs", "curl", "cheetah-run", 9, [0], [0.0])
    (broken / "eval.csv").write_text("step,reward\n0,1\n")
    args = [str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "--reps", "100", "--budgets", "100k"]

    line = _user_error(args + ["--on-error", "fail"], capsys)
    assert str(broken / "eval.csv") in line and "(--on-error fail)" in line
    assert not (tmp_path / "out" / "report.md").exists()
    other = make_run(tmp_path / "runs", "curl", "cheetah-run", 8, [0], [0.0])
    (other / "config.yaml").write_text("agent: [\n")
    line = _user_error(args + ["--on-error", "fail"], capsys)
    assert "2 runs are broken" in line

    other.joinpath("config.yaml").unlink()
    other.joinpath("eval.csv").unlink()
    assert report.main(args + ["--no-reference"]) == 0
    err = capsys.readouterr().err
    assert "warning: skipping run:" in err and str(broken / "eval.csv") in err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert len(summary["skipped_runs"]) == 1 and summary["reference"] == {}
    assert summary["budgets"]["100000"]["agents"]["curl"]["n_runs"] == 2
    text = (tmp_path / "out" / "report.md").read_text()
    assert "Skipped runs" in text and "Published reference" not in text


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--compare", "curl", "drq"], "no runs of agent drq"),
        (["--compare", "curl", "curl"], "two different agents"),
        (["--budgets", "lots"], "argument --budgets: budget 'lots' is not a number of environment steps"),
        (["--budgets", "0"], "must be a positive whole number"),
        (["--reps", "0"], "argument --reps: '0' must be at least 1"),
        (["--score-range", "cheetah-run=5"], "is not TASK=LOW:HIGH"),
        (["--score-range", "cheetah-run=9:1"], "LOW < HIGH"),
        (["--on-error", "maybe"], "argument --on-error: invalid choice"),
        (["--no-such-option"], "unrecognized arguments: --no-such-option"),
    ],
)
def test_report_user_errors_are_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    make_run(tmp_path / "runs", "curl", "cheetah-run", 1, [0, 100], [0.0, 1.0])
    argv = [str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "--reps", "50"] + extra
    assert message in _user_error(argv, capsys)
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_report_bad_directories_are_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = ["--out", str(tmp_path / "out")]
    assert "nope does not exist" in _user_error([str(tmp_path / "nope"), *out], capsys)
    (tmp_path / "notes.txt").write_text("x")
    assert "is a file, not a directory of runs" in _user_error([str(tmp_path / "notes.txt"), *out], capsys)
    (tmp_path / "empty").mkdir()
    assert "no usable runs" in _user_error([str(tmp_path / "empty"), *out], capsys)
    make_run(tmp_path / "runs", "curl", "cheetah-run", 1, [0, 100], [0.0, 1.0])
    line = _user_error([str(tmp_path / "runs"), "--out", str(tmp_path / "notes.txt")], capsys)
    assert "is a file, not a folder" in line


# ------------------------------------------------------------- normalisation, reach, task coverage


def _no_dmc() -> tuple[set[str] | None, str]:
    return {"cheetah-run", "walker-walk"}, ""


def test_each_task_is_normalised_by_its_own_range_and_unknown_ones_never() -> None:
    runs = [
        _run([0, 100], [0.0, 50.0], seed=1),
        discovery.Run(Path("/r/2"), "curl", "synthetic-reach", 1, 2, 100, np.array([0]), np.array([0.0]), 100),
        discovery.Run(Path("/r/3"), "curl", "synthetic-reach", 2, 2, 100, np.array([0]), np.array([0.0]), 200),
        discovery.Run(Path("/r/4"), "curl", "my-task", 1, 1, 100, np.array([0]), np.array([0.0])),
        discovery.Run(Path("/r/5"), "curl", "walker-walk", 1, 2, 100, np.array([0]), np.array([0.0]), 500),
    ]
    ranges, unknown = normalise.task_ranges(runs, {}, dmc_tasks=_no_dmc)
    assert (ranges["cheetah-run"].low, ranges["cheetah-run"].high) == (0.0, 1000.0)  # DMC default episode
    assert ranges["walker-walk"].high == 500.0  # 500-step episodes: at most 500 reward
    assert set(unknown) == {"my-task", "synthetic-reach"}  # never guessed; lengths 100 vs 200 disagree
    assert "different episode lengths (100, 200" in unknown["synthetic-reach"]
    assert "not a dm_control suite task" in unknown["my-task"]
    task, given = normalise.parse_score_range("my-task=-100:300")
    ranges, unknown = normalise.task_ranges(runs, {task: given}, dmc_tasks=_no_dmc)
    assert ranges["my-task"].normalise(np.array([-100.0, 100.0, 300.0])) == pytest.approx([0.0, 0.5, 1.0])
    assert ranges["my-task"].source == "--score-range" and "my-task" not in unknown


def test_report_normalises_synthetic_reach_by_its_episode_length(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    steps = [0, 1000, 2000]
    for seed, final in ((1, 40.0), (2, 60.0)):  # synthetic-reach: reward <= 1 per env step, 100-step episodes
        make_run(tmp_path / "runs", "curl", "synthetic-reach", seed, steps, [5.0, 20.0, final], 2, 2000, 100)
        make_run(tmp_path / "runs", "curl", "cheetah-run", seed, steps, [5.0, 20.0, final * 10], 4, 2000, 1000)
        make_run(tmp_path / "runs", "curl", "odd-task", seed, steps, [5.0, 20.0, 10 * final], 4, 2000, 1000)
    out = tmp_path / "out"
    argv = [str(tmp_path / "runs"), "--out", str(out), "--reps", "50", "--budgets", "2000", "--no-reference"]
    assert report.main(argv) == 0
    err = capsys.readouterr().err
    assert "task odd-task: score range unknown" in err and "--score-range odd-task=LOW:HIGH" in err
    summary = json.loads((out / "summary.json").read_text())
    entry = summary["budgets"]["2000"]["agents"]["curl"]
    assert entry["tasks"] == ["cheetah-run", "synthetic-reach"]  # odd-task is left out, not divided by 1000
    assert entry["mean"] == pytest.approx(np.mean([(400 + 600) / 2 / 1000, (40 + 60) / 2 / 100]))  # 0.5 both
    norm = summary["score_normalisation"]
    assert norm["tasks"]["synthetic-reach"]["high"] == 100 and norm["tasks"]["cheetah-run"]["high"] == 1000
    assert "odd-task" in norm["not_normalised"]
    assert entry["per_task_means"]["odd-task"] == pytest.approx(500.0)  # raw returns are still tabled
    text = (out / "report.md").read_text()
    assert "## Score normalisation" in text and "| synthetic-reach | 0 | 100 | envs/synthetic.py" in text
    assert "- odd-task: not a dm_control suite task" in text

    assert report.main(argv + ["--score-range", "odd-task=0:2000"]) == 0
    capsys.readouterr()
    entry = json.loads((out / "summary.json").read_text())["budgets"]["2000"]["agents"]["curl"]
    assert entry["tasks"] == ["cheetah-run", "odd-task", "synthetic-reach"]
    assert entry["mean"] == pytest.approx(np.mean([0.5, 0.25, 0.5]))


def _agent_pixels(fig: Figure, colour: str) -> int:
    """Pixels of the rendered figure within 30/255 of `colour` on every channel."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import to_rgb

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    image = np.asarray(canvas.buffer_rgba())[..., :3].astype(int)
    target = np.array(to_rgb(colour)) * 255
    return int(np.sum(np.all(np.abs(image - target) < 30, axis=-1)))


def test_a_run_with_one_evaluation_is_drawn() -> None:
    lone = stats.learning_curve([_run([0], [300.0])], reps=REPS)
    fig = Figure(figsize=(4, 3))
    plots._draw_task(fig.add_subplot(), "cheetah-run", {"curl": lone}, [], {"curl": "C0"}, with_counts=True)
    assert _agent_pixels(fig, "C0") > 20  # the lone point is visible (no legend is drawn here)
    two = stats.learning_curve([_run([0, 10], [300.0, 310.0])], reps=REPS)
    fig = Figure(figsize=(4, 3))
    plots._draw_task(fig.add_subplot(), "cheetah-run", {"curl": two}, [], {"curl": "C0"}, with_counts=True)
    assert _agent_pixels(fig, "C0") > 20


def test_figures_are_titled_with_the_budget_actually_reached(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reached = stats.select_at_budget([_run([0, 100_000], [0, 1], seed=s) for s in (1, 2)], 100_000)
    assert plots.budget_title(reached) == "at 100k environment steps"
    stopped = [
        _run([0, 1000, 2000], [0, 1, 2], seed=1),
        _run([0, 1000], [0, 1], seed=2),
        reached.scores["curl"]["cheetah-run"][0].run,
    ]
    selection = stats.select_at_budget(stopped, 100_000)
    assert plots.budget_title(selection) == "at 1k-100k environment steps (budget 100k; 2 of 3 runs stopped before it)"
    all_short = stats.select_at_budget(stopped[:1], 100_000)
    assert plots.budget_title(all_short) == "at 2k environment steps (budget 100k; 1 of 1 runs stopped before it)"

    for seed in (1, 2):
        make_run(tmp_path / "runs", "curl", "cheetah-run", seed, [0, 1000, 2000], [1.0, 2.0, 3.0], budget=2000)
    out = tmp_path / "out"
    assert report.main([str(tmp_path / "runs"), "--out", str(out), "--reps", "50", "--budgets", "100k"]) == 0
    assert (
        "budget 100000 env steps: 2 of 2 counted run(s) stopped before it (furthest: 2000)" in capsys.readouterr().err
    )
    block = json.loads((out / "summary.json").read_text())["budgets"]["100000"]
    assert block["env_steps_used"] == {"min": 2000, "max": 2000}
    assert [(r["seed"], r["last_env_step"]) for r in block["runs_short_of_budget"]] == [(1, 2000), (2, 2000)]
    text = (out / "report.md").read_text()
    assert "**2 of 2 runs did not reach 100000 environment steps**" in text
    assert "- curl / cheetah-run: seed(s) 1, 2, last evaluation at 2000, 2000" in text


def test_agents_on_different_tasks_are_warned_with_what_each_lacks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        report.missing_tasks({"a": ["t1", "t2"], "b": ["t1"], "c": ["t3"]})
        == "a lacks t3; b lacks t2, t3; c lacks t1, t2"
    )
    assert report.missing_tasks({"a": ["t1"], "b": ["t1"]}) is None
    steps, rets = [0, 1000], [1.0, 2.0]
    make_run(tmp_path / "runs", "curl", "cheetah-run", 1, steps, rets)
    make_run(tmp_path / "runs", "curl", "walker-walk", 1, steps, rets)
    make_run(tmp_path / "runs", "sac", "cheetah-run", 1, steps, rets)
    out = tmp_path / "out"
    assert report.main([str(tmp_path / "runs"), "--out", str(out), "--reps", "50", "--budgets", "1000"]) == 0
    err = capsys.readouterr().err
    assert (
        "warning: agents ran different tasks, so their aggregates are not over the same tasks: sac lacks walker-walk"
        in err
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["budgets"]["1000"]["missing_tasks"] == "sac lacks walker-walk"
    assert "**Agents ran different tasks** (sac lacks walker-walk)" in (out / "report.md").read_text()


def test_parse_budget_forms() -> None:
    assert [report.parse_budget(s) for s in ("100000", "100_000", "1e5", "100k", "1M")] == [
        100_000,
        100_000,
        100_000,
        100_000,
        1_000_000,
    ]


def test_help_runs_as_a_module() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "agents.report", "--help"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and "usage: mcrl-report" in done.stdout and "--on-error" in done.stdout


# ------------------------------------------------------------------------------------ sweep configs


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # the parent namespace package (hydra_plugins) is absent
        return False


HAS_JOBLIB = _has_module("hydra_plugins.hydra_joblib_launcher")
HAS_SUBMITIT = _has_module("hydra_plugins.hydra_submitit_launcher")


@pytest.mark.skipif(not (HAS_JOBLIB and HAS_SUBMITIT), reason="needs the [sweep] extra (hydra launchers)")
def test_launcher_configs_compose_from_the_configs_package() -> None:
    from hydra import compose, initialize_config_module

    has_train = (REPO / "configs" / "train.yaml").is_file()
    with initialize_config_module(config_module="configs", version_base="1.3"):
        for name in ("joblib_local", "slurm"):
            overrides = [f"hydra/launcher={name}"]
            cfg = compose(config_name="train" if has_train else None, overrides=overrides, return_hydra_config=True)
            launcher = cfg.hydra.launcher
            if name == "joblib_local":
                assert launcher._target_.endswith("JoblibLauncher") and launcher.n_jobs == 2
            else:
                assert launcher._target_.endswith("SlurmLauncher")
                assert launcher.gpus_per_node == 1 and launcher.timeout_min > 0 and "partition" in launcher


@pytest.mark.skipif(not HAS_JOBLIB, reason="needs hydra-joblib-launcher (the [sweep] extra)")
def test_joblib_local_launcher_runs_a_multirun(tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text(
        textwrap.dedent(
            """
            import hydra
            from hydra.core.hydra_config import HydraConfig

            @hydra.main(config_path="pkg://configs", config_name=None, version_base="1.3")
            def main(cfg):
                out = HydraConfig.get().runtime.output_dir
                open(out + "/done.txt", "w").write(str(cfg.seed))

            main()
            """
        )
    )
    sweep = tmp_path / "sweep"
    done = subprocess.run(
        [sys.executable, str(app), "-m", "hydra/launcher=joblib_local", "+seed=1,2", f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.read_text() for p in sweep.glob("*/done.txt")) == ["1", "2"]


# ----------------------------------------------------------------------------- end to end, real runs


@pytest.mark.skipif(not (REPO / "agents" / "train.py").is_file(), reason="agents/train.py (mcrl-train) not built yet")
def test_end_to_end_on_three_tiny_real_runs(tmp_path: Path) -> None:
    for seed in (1, 2, 3):
        cmd = [
            sys.executable,
            "-m",
            "agents.train",
            "agent=sac",
            "env=synthetic-reach",
            "steps=200",
            "eval_every=100",
            "eval_episodes=1",
            "batch_size=16",
            f"seed={seed}",
            f"hydra.run.dir={tmp_path}/run{seed}",
        ]
        done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    out = tmp_path / "report"
    assert report.main([str(tmp_path), "--out", str(out), "--budgets", "100", "200", "--reps", "200"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["unit"] == "env_steps"
    entry = summary["budgets"]["200"]["agents"]["sac"]
    assert entry["n_runs"] == 3 and set(entry["per_task_means"]) == {"synthetic-reach"}
    assert all(r["env_step_used"] <= 200 for r in entry["runs"])
    assert (out / "curves" / "synthetic-reach.png").stat().st_size > 1000
