"""Fashion-MNIST pretraining sweep: moco, moco_mask, moco_saliency (each fill) and micl, >= 3 seeds.

Every method gets the same budget (optimiser steps x global batch) and the same evaluation
(kNN k=20 cosine + linear probe on frozen features, Fashion-MNIST test split). A separate timing
phase measures the step-time overhead of saliency masking over plain MoCo by interleaving the
variants step by step in one process on the same batches, so background load hits all of them
alike. Writes ``benchmarks/results/pretrain_fashion_mnist.{json,md}``.

    python benchmarks/pretrain_fashion_mnist.py                 # the committed CPU sweep
    python benchmarks/pretrain_fashion_mnist.py --steps 20 --seeds 0 --quick   # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VARIANTS: list[tuple[str, list[str]]] = [
    ("moco", ["method=moco"]),
    ("moco_mask/zero", ["method=moco_mask", "method.fill=zero"]),
    ("moco_saliency/zero", ["method=moco_saliency", "method.fill=zero"]),
    ("moco_saliency/mean", ["method=moco_saliency", "method.fill=mean"]),
    ("moco_saliency/blur", ["method=moco_saliency", "method.fill=blur"]),
    ("moco_saliency/highpass", ["method=moco_saliency", "method.fill=highpass"]),
    ("micl", ["method=micl", "encoder=vit", "encoder.width=96", "encoder.depth=4", "encoder.heads=3"]),
]
RESNET = ["encoder.widths=[32,64]", "encoder.blocks=[1,1]", "encoder.stem_stride=2"]


def compose(overrides: list[str]) -> dict[str, Any]:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from omegaconf import OmegaConf

    with initialize_config_module(config_module="configs", version_base="1.3"):
        cfg = hydra_compose(config_name="pretrain", overrides=overrides)
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def common_overrides(args: argparse.Namespace) -> list[str]:
    return [f"steps={args.steps}", f"batch_size={args.batch_size}", "warmup_steps=25", "threads=1",
            "progress=false", "log_every=25", "checkpoint_every=0", "keep_checkpoints=1",
            f"eval.train_limit={args.eval_train}", f"eval.test_limit={args.eval_test}",
            f"eval.linear_epochs={args.linear_epochs}"]


def run_one(job: tuple[str, list[str], int, str]) -> dict[str, Any]:
    """One pretraining run in a worker process (1 torch thread)."""
    import torch

    torch.set_num_threads(1)
    from representations.pretrain.run import pretrain

    name, overrides, seed, run_dir = job
    cfg = compose([*overrides, f"seed={seed}"])
    began = time.time()
    result = pretrain(cfg, run_dir)
    summary = json.loads((Path(run_dir) / "train_summary.json").read_text())
    return {"variant": name, "seed": seed, "knn_top1": result["knn_top1"], "linear_top1": result["linear_top1"],
            "final_loss": summary["final_loss"], "step_time_s": summary["step_time_s"],
            "wall_s": round(time.time() - began, 1), "run_dir": run_dir}


def timing_phase(args: argparse.Namespace) -> dict[str, Any]:
    """Median step time of each MoCo variant, interleaved step by step on identical batches."""
    import torch

    torch.set_num_threads(1)
    from representations.core.trainer import TrainerConfig, build_optimizer
    from representations.data import load_fashion_mnist
    from representations.pretrain.build import build_augment, build_model_encoder, build_objective

    variants = {
        "moco": ["method=moco"],
        "moco_mask/zero": ["method=moco_mask"],
        "moco_saliency/zero, no hard negatives (saliency masking only)":
            ["method=moco_saliency", "method.hard_negatives=false"],
        "moco_saliency/zero": ["method=moco_saliency"],
        "moco_saliency/blur": ["method=moco_saliency", "method.fill=blur"],
        "moco_saliency/highpass": ["method=moco_saliency", "method.fill=highpass"],
        "moco_saliency/zero, query_saliency=direct": ["method=moco_saliency", "method.query_saliency=direct"],
    }
    data = load_fashion_mnist(split="train").limit(args.batch_size * (args.timing_rounds + 4), 0)
    steps: dict[str, Any] = {}
    for name, extra in variants.items():
        cfg = compose([*common_overrides(args), *RESNET, *extra])
        torch.manual_seed(0)
        encoder = build_model_encoder(cfg["encoder"], cfg["method"], 1, 28)
        gens = {"augment": torch.Generator().manual_seed(0), "mask": torch.Generator().manual_seed(1)}
        obj = build_objective(cfg["method"], encoder, build_augment(cfg["data"], 28), gens, torch.device("cpu"))
        params = [(n, p) for n, p in obj.named_parameters() if p.requires_grad]
        opt = build_optimizer(params, TrainerConfig(steps=1, lr=0.03))
        steps[name] = (obj.train(), opt, [])
    for i in range(args.timing_rounds + 3):
        batch = {"images": data.images[i * args.batch_size:(i + 1) * args.batch_size]}
        for obj, opt, times in steps.values():
            began = time.perf_counter()
            loss, _ = obj(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            obj.after_step(i + 1)
            if i >= 3:
                times.append(time.perf_counter() - began)
    base = statistics.median(steps["moco"][2])
    medians = {name: statistics.median(t) for name, (_, _, t) in steps.items()}
    return {name: {"median_step_s": round(m, 4), "ratio_to_moco": round(m / base, 3)} for name, m in medians.items()}


def references(args: argparse.Namespace) -> dict[str, Any]:
    """The same evaluation on raw pixels and on untrained encoders: what pretraining must beat."""
    import torch

    torch.set_num_threads(1)
    from representations.data import load_fashion_mnist
    from representations.evaluation import evaluate_features
    from representations.pretrain.build import build_model_encoder
    from representations.pretrain.run import evaluate_encoder

    eval_cfg = {"train_limit": args.eval_train, "test_limit": args.eval_test, "linear_epochs": args.linear_epochs}
    train, test = load_fashion_mnist(split="train"), load_fashion_mnist(split="test")
    out: dict[str, Any] = {}
    bank, queries = train.limit(args.eval_train, 0), test.limit(args.eval_test, 1)
    pixels = evaluate_features(bank.images.flatten(1).float() / 255, bank.labels,
                               queries.images.flatten(1).float() / 255, queries.labels,
                               linear_epochs=args.linear_epochs)
    out["raw pixels (784-d)"] = {k: round(v, 2) for k, v in pixels.items()}
    for name, extra in (("untrained ResNetSmall [32,64]", RESNET),
                        ("untrained ViT 96x4 (micl)", VARIANTS[-1][1][1:])):
        method = "method=micl" if "ViT" in name else "method=moco"
        cfg = compose([*common_overrides(args), method, *extra])
        torch.manual_seed(0)
        encoder = build_model_encoder(cfg["encoder"], cfg["method"], 1, 28)
        scores = evaluate_encoder(encoder, train, test, eval_cfg, "none", 0)
        out[name] = {"knn_top1": round(scores["knn_top1"], 2), "linear_top1": round(scores["linear_top1"], 2)}
    return out


def aggregate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for name, _ in VARIANTS:
        mine = [r for r in rows if r["variant"] == name]
        if not mine:
            continue
        entry: dict[str, Any] = {"seeds": [r["seed"] for r in mine]}
        for key in ("knn_top1", "linear_top1", "step_time_s"):
            values = [float(r[key]) for r in mine]
            entry[key] = {"mean": round(statistics.mean(values), 2),
                          "std": round(statistics.stdev(values), 2) if len(values) > 1 else 0.0,
                          "values": [round(v, 2) for v in values]}
        table[name] = entry
    return table


def markdown(result: dict[str, Any]) -> str:
    b = result["budget"]
    lines = [
        "# Pretraining on Fashion-MNIST (CPU budget)",
        "",
        f"Data: Fashion-MNIST (60k train images for pretraining; kNN bank / probe on {b['eval_train']} "
        f"labelled train images, scored on {b['eval_test']} test images). Budget per run: {b['steps']} "
        f"optimiser steps x global batch {b['batch_size']} ({b['epochs']:.2f} epochs), 28 px, "
        f"1 CPU thread. Seeds: {', '.join(map(str, b['seeds']))}. kNN: k=20, cosine, exp(sim/0.07) votes. "
        f"Linear: {b['linear_epochs']} epochs AdamW on standardised frozen features.",
        "",
        "| method | fill | encoder | kNN top-1 % | linear top-1 % |",
        "|---|---|---|---|---|",
    ]
    for name, entry in result["table"].items():
        method, _, fill = name.partition("/")
        encoder = "ViT 96x4, patch 2" if method == "micl" else "ResNetSmall [32,64]"
        knn, lin = entry["knn_top1"], entry["linear_top1"]
        lines.append(f"| {method} | {fill or '-'} | {encoder} | {knn['mean']:.2f} ± {knn['std']:.2f} | "
                     f"{lin['mean']:.2f} ± {lin['std']:.2f} |")
    if result.get("references"):
        lines += ["", "References with the same evaluation (no pretraining):", "",
                  "| features | kNN top-1 % | linear top-1 % |", "|---|---|---|"]
        for name, entry in result["references"].items():
            lines.append(f"| {name} | {entry['knn_top1']:.2f} | {entry['linear_top1']:.2f} |")
    lines += ["", "Step time relative to plain MoCo (same process, variants interleaved step by step, "
              f"batch {b['batch_size']}, median of {result['timing_rounds']} steps each):", "",
              "| variant | median step (s) | ratio to moco |", "|---|---|---|"]
    for name, entry in result["timing"].items():
        lines.append(f"| {name} | {entry['median_step_s']:.4f} | {entry['ratio_to_moco']:.3f} |")
    lines += ["", "Mean ± sample std over seeds. Numbers at this budget describe early training of tiny "
              "encoders; see docs/pretraining.md for how to read them.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--eval-train", type=int, default=10000)
    parser.add_argument("--eval-test", type=int, default=10000)
    parser.add_argument("--linear-epochs", type=int, default=50)
    parser.add_argument("--timing-rounds", type=int, default=25)
    parser.add_argument("--runs-dir", default=os.environ.get("MCRL_BENCH_RUNS", "/tmp/mcrl_pretrain_fmnist"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "pretrain_fashion_mnist"))
    parser.add_argument("--quick", action="store_true", help="smoke run: small eval, no timing phase")
    parser.add_argument("--only", nargs="*", default=None, help="variant names to run (default: all)")
    parser.add_argument("--references-only", action="store_true",
                        help="add the raw-pixel / untrained-encoder rows to an existing result file")
    args = parser.parse_args()
    out = Path(args.out)
    if args.references_only:
        result = json.loads(out.with_suffix(".json").read_text())
        result["references"] = references(args)
        out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
        out.with_suffix(".md").write_text(markdown(result))
        print(markdown(result))
        return
    if args.quick:
        args.eval_train, args.eval_test, args.linear_epochs, args.timing_rounds = 1000, 500, 3, 2
    began = time.time()
    timing = timing_phase(args)
    print(json.dumps(timing, indent=2), flush=True)
    jobs = []
    for name, extra in VARIANTS:
        if args.only and name not in args.only:
            continue
        overrides = [*common_overrides(args), *extra, *([] if name == "micl" else RESNET)]
        for seed in args.seeds:
            jobs.append((name, overrides, seed, f"{args.runs_dir}/{name.replace('/', '_')}_s{seed}"))
    rows = []
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=get_context("spawn")) as pool:
        for row in pool.map(run_one, jobs):
            print(f"{row['variant']:24s} seed {row['seed']}: kNN {row['knn_top1']:.2f} linear "
                  f"{row['linear_top1']:.2f} ({row['wall_s']} s)", flush=True)
            rows.append(row)
    import torch

    result = {
        "data": "Fashion-MNIST (dataset-fashion-mnist, IDX)",
        "budget": {"steps": args.steps, "batch_size": args.batch_size, "seeds": args.seeds,
                   "epochs": args.steps * args.batch_size / 60000, "eval_train": args.eval_train,
                   "eval_test": args.eval_test, "linear_epochs": args.linear_epochs,
                   "resnet": RESNET, "micl_encoder": VARIANTS[-1][1][1:]},
        "table": aggregate(rows),
        "references": references(args),
        "timing": timing,
        "timing_rounds": args.timing_rounds,
        "runs": rows,
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
                    "threads_per_run": 1, "parallel_runs": args.workers},
        "wall_time_s": round(time.time() - began, 1),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
