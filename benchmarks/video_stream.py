"""What ``data.stream`` costs: M2CRL steps on clips decoded per batch vs clips held in memory.

On the bundled DeepMimic clips (real mp4 files, 32 px, 8 frames; the default M2CRL CPU config, batch 32,
1 torch thread), alternating trials of ``--steps`` optimiser steps with ``data.stream=false`` and with
``data.stream=true`` at 1 and 2 decoding threads; reports each setting's median seconds per step (the
Trainer's ``step_time_s``: batch, forward, backward, optimiser) and its ratio to the in-memory run of the
same trials, plus how fast a batch decodes without prefetch (clips/s). The streamed runs prefetch the
next batch while a step trains, so the ratio says how much of the decoding that hides on this machine.
Writes ``benchmarks/results/video_stream.json``.

    OMP_NUM_THREADS=1 python benchmarks/video_stream.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.pretrain_video import compose  # noqa: E402
from representations.core.atomic import atomic_write_json  # noqa: E402

SETTINGS = {"in memory": ["data.stream=false"], "streamed, 1 thread": ["data.stream=true", "data.decode_workers=1"],
            "streamed, 2 threads": ["data.stream=true", "data.decode_workers=2"]}


def step_time(overrides: list[str], steps: int, folder: Path) -> float:
    """Median seconds per optimiser step of one pretraining run."""
    from representations.pretrain.run import pretrain

    cfg = compose([f"steps={steps}", "batch_size=32", "threads=1", "progress=false", "log_every=10",
                   "checkpoint_every=0", "eval.enabled=false", *overrides])
    pretrain(cfg, folder)
    return float(json.loads((folder / "train_summary.json").read_text())["step_time_s"])


def decode_rate(workers: int, rounds: int) -> float:
    """Clips per second of ``StreamedClips.batch`` (32 random clips, no prefetch)."""
    import torch

    from representations.pretrain.build import load_data

    train, _ = load_data(compose(["data.stream=true", f"data.decode_workers={workers}"])["data"], 0)
    gen = torch.Generator().manual_seed(0)
    began = time.perf_counter()
    for _ in range(rounds):
        train.batch(torch.randperm(len(train), generator=gen)[:32])
    return rounds * 32 / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=10, help="batches timed per decoding rate")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "video_stream.json"))
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    times: dict[str, list[float]] = {name: [] for name in SETTINGS}
    with tempfile.TemporaryDirectory() as tmp:
        for trial in range(args.trials):  # alternate the settings: the machine's load drifts
            for name, overrides in SETTINGS.items():
                times[name].append(step_time(overrides, args.steps, Path(tmp) / f"{trial}_{len(times[name])}_{name}"))
                print(f"trial {trial} {name}: {times[name][-1]:.4f} s/step", flush=True)
    medians = {name: statistics.median(values) for name, values in times.items()}
    result = {
        "data": "bundled DeepMimic clips (mp4, 32 px, 8 frames), default M2CRL CPU config, batch 32, 1 torch thread",
        "steps_per_trial": args.steps, "trials": args.trials,
        "step_time_s": {name: {"median": round(m, 4), "values": [round(v, 4) for v in times[name]]}
                        for name, m in medians.items()},
        "ratio_to_in_memory": {name: round(m / medians["in memory"], 3) for name, m in medians.items()},
        "decode_clips_per_s_without_prefetch": {str(w): round(decode_rate(w, args.rounds), 1) for w in (1, 2)},
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
                    "load_average": [round(x, 2) for x in os.getloadavg()]},
    }
    print(json.dumps(result, indent=2))
    atomic_write_json(Path(args.out), result)


if __name__ == "__main__":
    main()
