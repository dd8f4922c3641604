"""CML on the DeepMimic mocap windows vs raw joint coordinates and an untrained ST-GCN, plus ablations.

Same evaluation for every row (``evaluate_encoder`` / ``evaluate_features``: kNN k=20 cosine and a
linear probe on frozen features, train windows = bank, later-in-clip test windows = queries).
Rows: raw coordinates (the flattened window), untrained ST-GCN (the encoder CML starts from),
CML, CML without the mask branch (no masked view, no decoder), CML without the cluster term.
Seeds change the encoder init, augmentation / mask streams and the probe. Mean ± 95% t-interval
over seeds. Demo-scale data (15 clips), not a benchmark of the method. Writes
``benchmarks/results/pretrain_skeleton.{json,md}``.

    OMP_NUM_THREADS=1 python benchmarks/pretrain_skeleton.py                 # the committed CPU run
    python benchmarks/pretrain_skeleton.py --steps 10 --seeds 0 --out /tmp/x  # smoke run
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from representations.core.atomic import atomic_write_json, atomic_write_text  # noqa: E402
from representations.core.logger import read_csv_column  # noqa: E402

VARIANTS: list[tuple[str, list[str]]] = [
    ("CML", []),
    ("CML without mask branch", ["method.mask_branch=false", "method.w_reconstruction=0"]),
    ("CML without cluster term", ["method.w_cluster=0"]),
]
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def compose(overrides: list[str]) -> dict[str, Any]:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from omegaconf import OmegaConf

    with initialize_config_module(config_module="configs", version_base="1.3"):
        cfg = hydra_compose(config_name="pretrain", overrides=overrides)
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def base_overrides(args: argparse.Namespace, seed: int) -> list[str]:
    return ["method=cml", "data=mocap", "encoder=stgcn", f"steps={args.steps}", f"batch_size={args.batch_size}",
            f"seed={seed}", "threads=1", "progress=false", "log_every=10", "checkpoint_every=0",
            "keep_checkpoints=1"]


def ci95(values: list[float]) -> dict[str, Any]:
    mean = statistics.mean(values)
    half = T_975[len(values) - 1] * statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return {"mean": round(mean, 2), "ci95": round(half, 2), "values": [round(v, 2) for v in values]}


def baselines(args: argparse.Namespace, seed: int) -> dict[str, dict[str, float]]:
    import torch

    from representations.evaluation import evaluate_features
    from representations.pretrain.build import build_skeleton_encoder, load_data
    from representations.pretrain.run import evaluate_encoder, probe_holdout

    cfg = compose(base_overrides(args, seed))
    train, test = load_data(cfg["data"], seed)
    eval_cfg = cfg["eval"]
    holdout, _ = probe_holdout(eval_cfg, train)  # the same L2 choice evaluate_encoder makes
    raw = evaluate_features(train.sequences.flatten(1), train.labels, test.sequences.flatten(1), test.labels,
                            k=int(eval_cfg["k"]), temperature=float(eval_cfg["temperature"]),
                            seed=seed, num_classes=train.num_classes, **holdout)
    torch.manual_seed(seed)
    encoder = build_skeleton_encoder(cfg["encoder"], cfg["method"], train)
    untrained = evaluate_encoder(encoder, train, test, eval_cfg, "none", seed)
    return {"raw joint coordinates": {k: raw[k] for k in ("knn_top1", "linear_top1")},
            "untrained ST-GCN": {k: untrained[k] for k in ("knn_top1", "linear_top1")}}


def run_variant(args: argparse.Namespace, name: str, extra: list[str], seed: int) -> dict[str, Any]:
    from representations.pretrain.run import pretrain

    run_dir = Path(args.runs) / f"{name.replace(' ', '_')}_s{seed}"
    if run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    began = time.time()
    result = pretrain(compose([*base_overrides(args, seed), *extra]), run_dir)
    summary = json.loads((run_dir / "train_summary.json").read_text())
    first_loss = read_csv_column(run_dir / "train.csv", "loss")[0]
    return {"knn_top1": result["knn_top1"], "linear_top1": result["linear_top1"], "first_loss": first_loss,
            "final_loss": summary["final_loss"], "step_time_s": summary["step_time_s"],
            "wall_s": round(time.time() - began, 1), "n_train": result["n_train"], "n_test": result["n_test"],
            "probe_holdout": result["probe_holdout"]}


def markdown(result: dict[str, Any]) -> str:
    b = result["budget"]
    lines = [
        "# Skeleton pretraining on the DeepMimic mocap windows (CPU, demo scale)",
        "",
        f"Data: 15 DeepMimic humanoid clips from pybullet_data (one per action), {b['window']}-frame windows "
        f"at 30 fps; train = earlier 2/3 of each clip ({result['n_train']} windows), test = later 1/3 "
        f"({result['n_test']} windows). A demo-scale set, not a benchmark. Encoder: ST-GCN "
        f"{b['channels']} (kernel_t {b['kernel_t']}), humanoid graph. CML budget: {b['steps']} steps x batch "
        f"{b['batch_size']}, 1 CPU thread. kNN k=20 cosine; converged logistic-regression probe (L-BFGS) on frozen "
        f"features, its L2 chosen on {b['probe_holdout_share']:.0%} of the train windows ({b['probe_holdout']} "
        f"holdout). Seeds {', '.join(map(str, b['seeds']))}; "
        "mean ± 95% t-interval.",
        "",
        "| features | kNN top-1 % | linear top-1 % |",
        "|---|---|---|",
    ]
    for name, entry in result["table"].items():
        knn, lin = entry["knn_top1"], entry["linear_top1"]
        lines.append(f"| {name} | {knn['mean']:.1f} ± {knn['ci95']:.1f} | {lin['mean']:.1f} ± {lin['ci95']:.1f} |")
    lines += ["", "| CML variant | loss first log → last | median step (s) |", "|---|---|---|"]
    for name, _ in VARIANTS:
        runs = [r for r in result["runs"] if r["variant"] == name]
        if runs:
            first = statistics.mean(r["first_loss"] for r in runs)
            last = statistics.mean(r["final_loss"] for r in runs)
            step = statistics.mean(r["step_time_s"] for r in runs)
            lines.append(f"| {name} | {first:.3f} → {last:.3f} | {step:.3f} |")
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--runs", default="runs/bench_skeleton", help="run directories (not committed)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "pretrain_skeleton"))
    args = parser.parse_args(argv)
    import torch

    from representations.evaluation import PROBE_HOLDOUT

    torch.set_num_threads(1)
    rows: list[dict[str, Any]] = []
    began = time.time()
    for seed in args.seeds:
        for name, scores in baselines(args, seed).items():
            rows.append({"variant": name, "seed": seed, **scores})
        for name, extra in VARIANTS:
            rows.append({"variant": name, "seed": seed, **run_variant(args, name, extra, seed)})
            print(f"seed {seed} {name}: kNN {rows[-1]['knn_top1']:.1f} linear {rows[-1]['linear_top1']:.1f} "
                  f"({rows[-1]['wall_s']} s)", flush=True)
    order = ["raw joint coordinates", "untrained ST-GCN"] + [name for name, _ in VARIANTS]
    table = {name: {key: ci95([float(r[key]) for r in rows if r["variant"] == name])
                    for key in ("knn_top1", "linear_top1")} for name in order}
    cfg = compose(base_overrides(args, 0))
    trained = [r for r in rows if "n_train" in r]
    result = {
        "table": table, "runs": rows, "n_train": trained[0]["n_train"], "n_test": trained[0]["n_test"],
        "budget": {"steps": args.steps, "batch_size": args.batch_size, "seeds": args.seeds,
                   "probe": "L-BFGS logistic regression", "probe_holdout": trained[0]["probe_holdout"],
                   "probe_holdout_share": PROBE_HOLDOUT, "window": cfg["data"]["window"],
                   "channels": cfg["encoder"]["channels"], "kernel_t": cfg["encoder"]["kernel_t"]},
        "method_config": cfg["method"], "wall_s": round(time.time() - began, 1),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "torch": torch.__version__, "threads": 1},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out.with_suffix(".json"), result)
    atomic_write_text(out.with_suffix(".md"), markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
