"""Wall time of the README's commands, run as written, on this machine.

Each command below is a line of README.md (a test keeps them verbatim there). Commands run one after
another in a scratch folder (later ones read earlier runs through ``{name}`` placeholders, e.g. the
pretraining run that ``mcrl-pretrain-eval`` evaluates); each gets the load average before and after,
because on a shared machine the time depends on what else runs. Bare ``mcrl-train`` (the CPU preset,
12.5 min) is measured in ``benchmarks/results/cpu_preset/``; paper-scale RL commands (100k env steps
at batch 512) are not run: on a CPU they take days (``benchmarks/results/threads_cpu.json``).

    python benchmarks/readme_commands.py                 # every command
    python benchmarks/readme_commands.py --only report   # some of them (results merge into the file)

Writes ``benchmarks/results/readme_commands.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from representations.core.atomic import atomic_write_json

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "readme_commands.json"


@dataclass(frozen=True)
class Command:
    name: str
    line: str  # exactly as in README.md
    run_dir: bool = True  # give it hydra.run.dir=<scratch>/<name> (hydra CLIs)


COMMANDS = [
    Command("train_smoke", "mcrl-train preset=cpu steps=2000"),
    Command("eval_video", "mcrl-eval {train_smoke} --episodes 10 --video ep.mp4", run_dir=False),
    Command("pretrain_moco", "mcrl-pretrain method=moco data=fashion_mnist encoder=conv encoder.feature_dim=1024 "
                             "'data.augment.scale=[0.4,1.0]' steps=2000"),
    Command("pretrain_eval", "mcrl-pretrain-eval {pretrain_moco}", run_dir=False),
    Command("pretrain_two_stage", "mcrl-pretrain method=moco_saliency encoder=conv "
                                  "method.saliency.network={pretrain_moco}/encoder.pt"),
    Command("pretrain_micl", "mcrl-pretrain method=micl encoder=vit encoder.width=96 encoder.depth=4 encoder.heads=3 "
                             "steps=300"),
    Command("pretrain_ddp", "torchrun --nproc_per_node 2 -m representations.pretrain.cli method=moco steps=200"),
    Command("collect_frames", "python -m envs.collect cheetah-run --frames 2000 --out frames.npz", run_dir=False),
    Command("pretrain_dmc", "mcrl-pretrain data=dmc_frames data.path=frames.npz encoder=conv method=moco_saliency "
                            "steps=200 batch_size=64"),
    Command("pretrain_cml", "mcrl-pretrain method=cml"),
    Command("pretrain_m2crl", "mcrl-pretrain method=m2crl data=video encoder=video_vit steps=250 batch_size=32"),
    Command("report", "mcrl-report {train_smoke} --out report/", run_dir=False),
]


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def run_one(cmd: Command, scratch: Path, done: dict[str, str]) -> dict:
    line = cmd.line.format(**done)
    argv = shlex.split(line)
    exe = Path(sys.executable).with_name(argv[0])
    argv[0] = str(exe) if exe.exists() else argv[0]
    run_dir = scratch / cmd.name
    if cmd.run_dir:
        argv.append(f"hydra.run.dir={run_dir}")
    before, began = load_average(), time.perf_counter()
    proc = subprocess.run(argv, cwd=scratch, capture_output=True, text=True)
    wall = time.perf_counter() - began
    if proc.returncode != 0:
        raise SystemExit(f"{cmd.name}: `{line}` exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    done[cmd.name] = str(run_dir)
    row = {"command": cmd.line, "wall_s": round(wall, 1), "load_before": before, "load_after": load_average()}
    if (run_dir / "eval.json").is_file():
        probe = json.loads((run_dir / "eval.json").read_text())
        row["result"] = {k: probe[k] for k in ("knn_top1", "linear_top1") if k in probe}
    elif (run_dir / "eval.csv").is_file():
        row["result"] = (run_dir / "eval.csv").read_text().strip().splitlines()[-1][:300]
    print(json.dumps({cmd.name: row}), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=[c.name for c in COMMANDS],
                        help="run these (and the commands whose runs they read)")
    parser.add_argument("--scratch", type=Path, default=None)
    args = parser.parse_args()
    wanted = set(args.only or [c.name for c in COMMANDS])
    for cmd in COMMANDS:  # a command reading another run needs that run first
        if cmd.name in wanted:
            wanted |= {c.name for c in COMMANDS if "{" + c.name + "}" in cmd.line}
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="mcrl_readme_"))
    scratch.mkdir(parents=True, exist_ok=True)
    result = json.loads(OUT.read_text()) if OUT.is_file() else {"commands": {}}
    done: dict[str, str] = {}
    for cmd in COMMANDS:
        if cmd.name in wanted:
            result["commands"][cmd.name] = run_one(cmd, scratch, done)
            result["machine"] = {"platform": platform.platform(), "cpu_count": os.cpu_count()}
            atomic_write_json(OUT, result)


if __name__ == "__main__":
    main()
