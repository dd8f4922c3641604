"""DMC-100k sample-efficiency sweep: the 6 PlaNet tasks x N seeds x agents, unattended on one machine.

Each run is a separate ``mcrl-train`` process writing a normal run directory under ``--runs``;
``--parallel`` runs share the machine (on one GPU, 4-6 CURL runs at batch 512 fit in 80 GB).
Finished runs are skipped, so the script can be restarted after an interruption. At the end each
run's ``eval.csv`` is copied to ``benchmarks/results/dmc100k/`` with a manifest naming the device.

    python benchmarks/dmc100k.py --agents curl sac --seeds 1 2 3 --parallel 6 --device cuda
    mcrl-report benchmarks/results/dmc100k --out report/   # curves and rliable statistics
"""

from __future__ import annotations

import argparse
import csv
import platform
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from representations.core.atomic import atomic_write_json

PLANET_TASKS = ["finger-spin", "cartpole-swingup", "reacher-easy", "cheetah-run", "walker-walk", "ball_in_cup-catch"]
RESULTS = Path(__file__).parent / "results" / "dmc100k"


def run_dir(root: Path, agent: str, task: str, seed: int) -> Path:
    return root / agent / task / f"s{seed}"


def finished(path: Path, steps: int) -> bool:
    eval_csv = path / "eval.csv"
    if not eval_csv.is_file():
        return False
    rows = list(csv.DictReader(eval_csv.open()))
    return bool(rows) and int(float(rows[-1]["env_step"])) >= steps


def resume_history(path: Path) -> dict[str, object]:
    """What mcrl-train recorded in the run's resumes.csv: every resume and every clean restart."""
    log = path / "resumes.csv"
    events = list(csv.DictReader(log.open())) if log.is_file() else []
    return {"resumed": any(e["kind"] == "resumed" for e in events),
            "resumed_from_env_steps": [int(e["env_step"]) for e in events if e["kind"] == "resumed"],
            "restarted_without_checkpoint": any(e["kind"] == "restarted" for e in events)}


def command(agent: str, task: str, seed: int, args: argparse.Namespace, path: Path) -> list[str]:
    cmd = [sys.executable, "-m", "agents.train", f"agent={agent}", f"env={task}", f"seed={seed}",
           f"steps={args.steps}", f"eval_every={args.eval_every}", f"device={args.device}",
           f"replay_device={'auto' if args.device.startswith('cuda') else 'cpu'}", "progress=false",
           f"hydra.run.dir={path}"]
    if path.joinpath("checkpoints").is_dir() or path.joinpath("eval.csv").is_file():
        cmd.append("resume=true")  # continues from the newest checkpoint, or restarts cleanly without one
    return cmd + list(args.extra)


def launch(cmd: list[str], path: Path) -> tuple[Path, int, float]:
    path.mkdir(parents=True, exist_ok=True)
    start = time.time()
    with (path / "stdout.log").open("a") as out:
        code = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT)
    return path, code, time.time() - start


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        try:
            import torch

            return torch.cuda.get_device_name(0)
        except Exception:  # noqa: BLE001 - the name is informational
            return "cuda (name unavailable)"
    return f"cpu ({platform.processor() or platform.machine()})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", nargs="+", default=["curl"])
    parser.add_argument("--tasks", nargs="+", default=PLANET_TASKS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--steps", type=int, default=100_000, help="env steps per run")
    parser.add_argument("--eval-every", type=int, default=10_000, help="env steps")
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--runs", type=Path, default=Path("runs/dmc100k"))
    parser.add_argument("--results", type=Path, default=RESULTS, help="where eval CSVs + manifest are copied")
    parser.add_argument("--dry-run", action="store_true", help="print the commands and exit")
    parser.add_argument("extra", nargs="*", help="extra hydra overrides for every run (after --)")
    args = parser.parse_args()

    jobs = []
    for agent in args.agents:
        for task in args.tasks:
            for seed in args.seeds:
                path = run_dir(args.runs, agent, task, seed)
                if not finished(path, args.steps):
                    jobs.append((command(agent, task, seed, args, path), path))
    print(f"{len(jobs)} runs to do ({args.parallel} in parallel) on {device_name(args.device)}")
    if args.dry_run:
        for cmd, _ in jobs:
            print(" ".join(cmd))
        return
    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        for path, code, seconds in pool.map(lambda job: launch(*job), jobs):
            print(f"{'ok ' if code == 0 else 'FAILED'} {path} ({seconds / 60:.1f} min, exit {code})", flush=True)

    results = args.results
    results.mkdir(parents=True, exist_ok=True)
    manifest = {"device": device_name(args.device), "steps_unit": "env_steps", "budget": args.steps, "runs": []}
    for agent in args.agents:
        for task in args.tasks:
            for seed in args.seeds:
                path = run_dir(args.runs, agent, task, seed)
                if (path / "eval.csv").is_file():  # same layout as runs/: mcrl-report reads it directly
                    dest = run_dir(results, agent, task, seed)
                    dest.mkdir(parents=True, exist_ok=True)
                    shutil.copy(path / "eval.csv", dest / "eval.csv")
                    shutil.copy(path / "config.yaml", dest / "config.yaml")
                    manifest["runs"].append({"agent": agent, "task": task, "seed": seed,
                                             "dir": str(dest.relative_to(results)),
                                             "complete": finished(path, args.steps),
                                             **resume_history(path)})
    manifest["overrides"] = list(args.extra)
    atomic_write_json(results / "manifest.json", manifest)
    print(f"eval CSVs and manifest in {results}")


if __name__ == "__main__":
    main()
