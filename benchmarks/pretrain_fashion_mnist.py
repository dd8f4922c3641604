"""Fashion-MNIST pretraining benchmark: raw pixels vs pretrained encoders, then the saliency paper's
method comparison (moco, moco_mask, moco_saliency with each fill, micl) at one budget.

Every run uses the same budget (optimiser steps x global batch), the same encoder and the same
evaluation (kNN k=20 cosine + converged logistic-regression probe, L2 chosen on 20% of the train
bank, Fashion-MNIST test split). Runs are appended one by one to the result file (a file lock lets
two background workers share it), so a partial sweep is still a valid, smaller result.

    python benchmarks/pretrain_fashion_mnist.py references           # raw pixels, untrained encoder
    python benchmarks/pretrain_fashion_mnist.py run --variants moco --seeds 0 1 2
    python benchmarks/pretrain_fashion_mnist.py timing               # step time vs moco, one process
    python benchmarks/pretrain_fashion_mnist.py report               # rewrite the markdown table + figure
    python benchmarks/pretrain_fashion_mnist.py run --variants moco --seeds 0 --steps 20 --quick  # smoke

Writes ``benchmarks/results/pretrain_fashion_mnist.{json,md,png}`` (the figure: the method comparison
at the recipe's budget, each seed and the mean with its 95% interval, against raw pixels).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from representations.core.atomic import atomic_path, atomic_write_json, atomic_write_text  # noqa: E402

# Encoders screened (docs/pretraining.md says why): the CURL conv encoder (flatten + fc keeps the
# spatial layout that global pooling loses); crops of 40-100% of the image (20% crops of a 28 px
# image are mostly background). RECIPE is the one the benchmark settles on: a 1024-d fc, 8000 steps.
ENCODERS: dict[str, list[str]] = {
    "conv 4x32, fc 256": ["encoder=conv", "encoder.feature_dim=256"],
    "conv 4x32, fc 1024": ["encoder=conv", "encoder.feature_dim=1024"],
    "conv 4x64, fc 1024": ["encoder=conv", "encoder.num_filters=64", "encoder.feature_dim=1024"],
}
RECIPE = {"encoder": "conv 4x32, fc 1024", "steps": 8000}  # what the benchmark settles on (README, docs)
MICL_LABEL = "ViT 96x4, patch 2"
AUGMENT = ["data.augment.scale=[0.4,1.0]"]
MICL_ENCODER = ["encoder=vit", "encoder.width=96", "encoder.depth=4", "encoder.heads=3"]
VARIANTS: dict[str, list[str]] = {
    "moco": ["method=moco"],
    "moco_mask/highpass": ["method=moco_mask", "method.fill=highpass"],
    "moco_saliency/highpass": ["method=moco_saliency", "method.fill=highpass"],
    "moco_saliency/blur": ["method=moco_saliency", "method.fill=blur"],
    "moco_saliency/mean": ["method=moco_saliency", "method.fill=mean"],
    "micl": ["method=micl", *MICL_ENCODER],
    # two-stage recipe: saliency from a frozen stage-1 moco encoder (--saliency-network)
    "moco_saliency/highpass, frozen moco net": ["method=moco_saliency", "method.fill=highpass"],
}
COMPARISON = [n for n in VARIANTS if not n.endswith("frozen moco net")]  # the paper's comparison: the default sweep
OUT = ROOT / "benchmarks" / "results" / "pretrain_fashion_mnist"
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def compose(overrides: list[str]) -> dict[str, Any]:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from omegaconf import OmegaConf

    with initialize_config_module(config_module="configs", version_base="1.3"):
        cfg = hydra_compose(config_name="pretrain", overrides=overrides)
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def overrides_for(name: str, args: argparse.Namespace) -> list[str]:
    encoder = [] if name == "micl" else ENCODERS[args.encoder]
    if name.endswith("frozen moco net"):
        if not getattr(args, "saliency_network", None):
            raise SystemExit(f"{name} needs --saliency-network RUN/encoder.pt (a finished moco run)")
        encoder = [*encoder, f"method.saliency.network={args.saliency_network}"]
    return [*VARIANTS[name], *encoder, *AUGMENT, f"steps={args.steps}", f"batch_size={args.batch_size}",
            "threads=1", "progress=false", "log_every=100", "checkpoint_every=1000", "keep_checkpoints=1",
            "resume=true",  # a stopped sweep picks a run up from its last checkpoint
            f"eval.train_limit={args.eval_train}", f"eval.test_limit={args.eval_test}"]


@contextmanager
def result_file():
    """Read-modify-write of the result JSON under an exclusive lock; rewrites the markdown too."""
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with open(Path(tempfile.gettempdir()) / "mcrl_pretrain_fashion_mnist.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = OUT.with_suffix(".json")
        result = json.loads(path.read_text()) if path.is_file() else {}
        result.setdefault("runs", [])
        yield result
        atomic_write_json(path, result)
        atomic_write_text(OUT.with_suffix(".md"), markdown(result))
        figure(result, OUT.with_suffix(".png"))


def run(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(1)
    from representations.pretrain.run import pretrain

    for seed in args.seeds:
        for name in args.variants:
            label = MICL_LABEL if name == "micl" else args.encoder
            slug = f"{name}_{label}".replace("/", "_").replace(", ", "_").replace(" ", "_")
            run_dir = f"{args.runs_dir}/{slug}_s{seed}_{args.steps}"
            cfg = compose([*overrides_for(name, args), f"seed={seed}"])
            began = time.time()
            result = pretrain(cfg, run_dir)
            summary = json.loads((Path(run_dir) / "train_summary.json").read_text())
            row = {"variant": name, "encoder": label, "seed": seed, "steps": args.steps, "batch_size": args.batch_size,
                   "knn_top1": round(result["knn_top1"], 2), "linear_top1": round(result["linear_top1"], 2),
                   "linear_l2": result.get("linear_l2"), "final_loss": summary["final_loss"],
                   "wall_s": round(time.time() - began, 1), "eval_train": args.eval_train,
                   "eval_test": args.eval_test,
                   "resumed_from_step": summary["start_step"]}  # wall_s then covers the resumed part only
            print(json.dumps(row), flush=True)
            if args.quick:
                continue
            with result_file() as result_json:
                result_json["runs"] = [r for r in result_json["runs"] if not (
                    r["variant"] == name and r["seed"] == seed and r["steps"] == args.steps
                    and encoder_of(r) == label)] + [row]
                result_json["machine"] = {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                                          "torch": torch.__version__, "threads_per_run": 1}


def references(args: argparse.Namespace) -> None:
    """Raw pixels and an untrained encoder with the same evaluation, on the banks of each seed."""
    import torch

    torch.set_num_threads(1)
    from representations.data import load_fashion_mnist
    from representations.evaluation import evaluate_features
    from representations.pretrain.build import build_model_encoder
    from representations.pretrain.run import evaluate_encoder

    train, test = load_fashion_mnist(split="train"), load_fashion_mnist(split="test")
    eval_cfg = {"train_limit": args.eval_train, "test_limit": args.eval_test}
    untrained = "untrained conv encoder (256-d)" if args.encoder == "conv 4x32, fc 256" else \
        f"untrained conv encoder ({args.encoder})"
    rows: dict[str, list[dict[str, float]]] = {"raw pixels (784-d)": [], untrained: []}
    for seed in args.seeds:  # evaluate_encoder draws the bank and the queries from the seed
        bank, queries = train.limit(args.eval_train, seed), test.limit(args.eval_test, seed + 1)
        pixels = evaluate_features(bank.images.flatten(1).float() / 255, bank.labels,
                                   queries.images.flatten(1).float() / 255, queries.labels, seed=seed)
        rows["raw pixels (784-d)"].append(pixels)
        cfg = compose(overrides_for("moco", args))
        torch.manual_seed(seed)
        encoder = build_model_encoder(cfg["encoder"], cfg["method"], 1, 28)
        rows[untrained].append(evaluate_encoder(encoder, train, test, eval_cfg, "none", seed))
        print(seed, {k: v[-1] for k, v in rows.items()}, flush=True)
    with result_file() as result:  # per-seed values accumulate across calls (seeds run separately)
        per_seed = result.setdefault("references_by_seed", {})
        for name, entries in rows.items():
            for seed, entry in zip(args.seeds, entries):
                per_seed.setdefault(name, {})[str(seed)] = {k: entry[k] for k in ("knn_top1", "linear_top1")}
        result["references"] = {
            name: {key: stats([e[key] for e in by_seed.values()]) for key in ("knn_top1", "linear_top1")}
            | {"seeds": sorted(int(s) for s in by_seed)} for name, by_seed in per_seed.items()}


def timing(args: argparse.Namespace) -> None:
    """Median step time of each MoCo variant relative to moco, interleaved step by step on the same
    batches in one process (background load hits all alike), and the masking + fill alone."""
    import torch

    torch.set_num_threads(1)
    from representations.core.trainer import TrainerConfig, build_optimizer
    from representations.data import load_fashion_mnist
    from representations.pretrain.build import build_augment, build_model_encoder, build_objective

    variants = {
        "moco": VARIANTS["moco"],
        "moco_mask/highpass": VARIANTS["moco_mask/highpass"],
        "moco_saliency/highpass, no hard negative (saliency masking only)":
            [*VARIANTS["moco_saliency/highpass"], "method.hard_negatives=false"],
        "moco_saliency/highpass": VARIANTS["moco_saliency/highpass"],
        "moco_saliency/highpass, query_saliency=warp":
            [*VARIANTS["moco_saliency/highpass"], "method.saliency.query=warp"],
        "moco_saliency/blur": VARIANTS["moco_saliency/blur"],
        "moco_saliency/mean": VARIANTS["moco_saliency/mean"],
        f"micl ({MICL_LABEL})": VARIANTS["micl"],  # its own ViT, as in the comparison
    }
    data = load_fashion_mnist(split="train").limit(args.batch_size * (args.timing_rounds + 3), 0)
    load_before = os.getloadavg()[0]  # other jobs on the machine: recorded, since they blur the ratios
    steps: dict[str, Any] = {}
    for name, extra in variants.items():
        cfg = compose([*extra, *([] if name.startswith("micl") else ENCODERS[args.encoder]), *AUGMENT])
        torch.manual_seed(0)
        encoder = build_model_encoder(cfg["encoder"], cfg["method"], 1, 28)
        gens = {"augment": torch.Generator().manual_seed(0), "mask": torch.Generator().manual_seed(1)}
        obj = build_objective(cfg["method"], encoder, build_augment(cfg["data"], 28), gens, torch.device("cpu"))
        params = [(n, p) for n, p in obj.named_parameters() if p.requires_grad]
        steps[name] = (obj.train(), build_optimizer(params, TrainerConfig(steps=1, lr=0.03)), [], [], [])
    for i in range(args.timing_rounds + 3):
        images = data.images[i * args.batch_size:(i + 1) * args.batch_size]
        for obj, opt, times, mask_times, saliency_times in steps.values():
            began = time.perf_counter()
            loss, _ = obj({"images": images})
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            obj.after_step(i + 1)
            if i >= 3:
                times.append(time.perf_counter() - began)
                if not hasattr(obj, "mask_views"):  # micl masks tokens inside its forward
                    mask_times.append(0.0)
                    saliency_times.append(0.0)
                    continue
                with torch.no_grad():  # masking + fill alone, on this step's views
                    views, _ = obj.make_views(images)
                    began = time.perf_counter()
                    obj.mask_views(views)
                    mask_times.append(time.perf_counter() - began)
                    began = time.perf_counter()
                    if hasattr(obj, "foregrounds"):  # the saliency forwards inside mask_views
                        obj.foregrounds(views)
                    saliency_times.append(time.perf_counter() - began)
    base = statistics.median(steps["moco"][2])
    table = {}
    for name, (_, _, times, mask_times, saliency_times) in steps.items():
        step = statistics.median(times)
        masking = statistics.median([m - s for m, s in zip(mask_times, saliency_times)])
        table[name] = {"median_step_s": round(step, 4), "ratio_to_moco": round(step / base, 3),
                       "saliency_forward_s": round(statistics.median(saliency_times), 4),
                       "mask_and_fill_s": round(masking, 4), "mask_and_fill_share_of_step": round(masking / step, 3)}
        print(name, table[name], flush=True)
    with result_file() as result:
        result["timing"] = {"batch_size": args.batch_size, "rounds": args.timing_rounds, "encoder": args.encoder,
                            "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                            "cpu_count": os.cpu_count(), "table": table}


def encoder_of(row: dict[str, Any]) -> str:
    """The encoder label of a run row (rows from before the label existed used the 256-d conv)."""
    return row.get("encoder") or (MICL_LABEL if row["variant"] == "micl" else "conv 4x32, fc 256")


def stats(values: list[float]) -> dict[str, Any]:
    """Mean, sample std and the half-width of the 95% t interval (None for one value)."""
    n = len(values)
    mean = statistics.mean(values)
    std = statistics.stdev(values) if n > 1 else None
    ci = T_975[n - 1] * std / math.sqrt(n) if std is not None and n - 1 in T_975 else None
    return {"mean": round(mean, 2), "std": None if std is None else round(std, 2),
            "ci95": None if ci is None else round(ci, 2), "n": n, "values": [round(v, 2) for v in values]}


def _cell(entry: dict[str, Any]) -> str:
    if entry["ci95"] is None:
        return f"{entry['mean']:.2f} (n=1)"
    return f"{entry['mean']:.2f} ± {entry['ci95']:.2f} (n={entry['n']})"


def markdown(result: dict[str, Any]) -> str:
    lines = ["# Pretraining on Fashion-MNIST (CPU)", "",
             "kNN: k=20, cosine, exp(sim/0.07) votes. Linear: L2-regularised logistic regression solved "
             "to convergence (L-BFGS), L2 chosen on 20% of the train bank. Mean ± half-width of the 95% "
             "t interval over seeds (n = seeds). Bank / queries: seeded 10k train / 10k test images.", ""]
    refs = result.get("references") or {}
    if refs:
        lines += ["| features (no pretraining) | kNN top-1 % | linear top-1 % |", "|---|---|---|"]
        lines += [f"| {name} | {_cell(e['knn_top1'])} | {_cell(e['linear_top1'])} |" for name, e in refs.items()]
        lines.append("")
    groups: dict[tuple[str, str, int, int], list[dict[str, Any]]] = {}
    for row in result.get("runs", []):
        groups.setdefault((row["variant"], encoder_of(row), row["steps"], row["batch_size"]), []).append(row)
    if groups:
        lines += ["| method | fill | encoder | steps x batch | kNN top-1 % | linear top-1 % | wall s / run |",
                  "|---|---|---|---|---|---|---|"]
        order = list(VARIANTS)
        for (name, encoder, steps, batch), rows in sorted(
                groups.items(), key=lambda kv: (-kv[0][2], order.index(kv[0][0]), kv[0][1])):
            method, _, fill = name.partition("/")
            fill = fill.replace(", frozen moco net", " (saliency: frozen stage-1 moco encoder)")
            knn, lin = stats([r["knn_top1"] for r in rows]), stats([r["linear_top1"] for r in rows])
            wall = statistics.mean(r["wall_s"] for r in rows)
            resumed = " (a resumed run counts its last part only)" if any(
                r.get("resumed_from_step") for r in rows) else ""
            lines.append(f"| {method} | {fill or '-'} | {encoder} | {steps} x {batch} | {_cell(knn)} | "
                         f"{_cell(lin)} | {wall:.0f}{resumed} |")
        lines.append("")
    timing_result = result.get("timing")
    if timing_result:
        lines += [f"Step time relative to moco (one process, variants interleaved step by step on the same "
                  f"batches of {timing_result['batch_size']}, median of {timing_result['rounds']} steps; conv "
                  f"variants: {timing_result.get('encoder', 'conv 4x32, fc 256')}); "
                  "saliency = the no-grad saliency forwards; mask + fill = the rest of `mask_views` (drawing "
                  "the masks and filling them)"
                  + (f"; 1-min load average {timing_result['load_average_1min'][0]} before, "
                     f"{timing_result['load_average_1min'][1]} after, on {timing_result['cpu_count']} cores"
                     if "load_average_1min" in timing_result else "") + ":", "",
                  "| variant | median step (s) | ratio to moco | saliency forwards (s) | mask + fill (s) | "
                  "mask + fill share of step |", "|---|---|---|---|---|---|"]
        for name, e in timing_result["table"].items():
            lines.append(f"| {name} | {e['median_step_s']:.4f} | {e['ratio_to_moco']:.3f} | "
                         f"{e['saliency_forward_s']:.4f} | {e['mask_and_fill_s']:.4f} | "
                         f"{e['mask_and_fill_share_of_step']:.3f} |")
        lines.append("")
    return "\n".join(lines)


def figure(result: dict[str, Any], path: Path) -> None:
    """The comparison at the recipe's budget: per-seed dots, mean ± 95% t interval, raw pixels and the goal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result.get("runs", []) if r["steps"] == RECIPE["steps"]
            and encoder_of(r) in (RECIPE["encoder"], MICL_LABEL) and not r["variant"].endswith("frozen moco net")]
    names = [n for n in VARIANTS if any(r["variant"] == n for r in rows)]
    pixels = (result.get("references") or {}).get("raw pixels (784-d)")
    if not names or pixels is None:
        return
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.45 * len(names) + 1.6), sharey=True)
    for ax, key, title in zip(axes, ("knn_top1", "linear_top1"), ("kNN top-1 %", "linear probe top-1 %")):
        base = pixels[key]
        ax.axvspan(base["mean"] - (base["ci95"] or 0), base["mean"] + (base["ci95"] or 0), color="0.85")
        ax.axvline(base["mean"], color="0.4", lw=1, label=f"raw pixels {base['mean']:.2f} (band: 95% CI)")
        ax.axvline(base["mean"] + 3, color="tab:green", ls=":", lw=1, label="goal: pixels + 3")
        for y, name in enumerate(names):
            values = [r[key] for r in rows if r["variant"] == name]
            s = stats(values)
            ax.scatter(values, [y] * len(values), s=14, color="0.5", zorder=2)
            ax.errorbar(s["mean"], y, xerr=s["ci95"] or 0, fmt="o", color="tab:blue", capsize=3, zorder=3)
            ax.annotate(f"{s['mean']:.2f} (n={s['n']})", (s["mean"], y), xytext=(0, 6), textcoords="offset points",
                        ha="center", fontsize=7)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    axes[0].set_yticks(range(len(names)), names)
    axes[0].invert_yaxis()
    fig.suptitle(f"Fashion-MNIST, {RECIPE['steps']} steps x 256 ({RECIPE['encoder']}; micl: {MICL_LABEL}); "
                 "grey: seeds, blue: mean ± 95% t interval", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("run", "references", "timing", "report"))
    parser.add_argument("--variants", nargs="+", default=COMPARISON, choices=list(VARIANTS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=RECIPE["steps"])
    parser.add_argument("--encoder", choices=list(ENCODERS), default=RECIPE["encoder"],
                        help="encoder of the conv variants (MiCL always uses its ViT)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--eval-train", type=int, default=10000)
    parser.add_argument("--eval-test", type=int, default=10000)
    parser.add_argument("--timing-rounds", type=int, default=10)
    parser.add_argument("--runs-dir", default=os.environ.get("MCRL_BENCH_RUNS", "/tmp/mcrl_pretrain_fmnist"))
    parser.add_argument("--saliency-network", default=None,
                        help="stage-1 encoder.pt for the 'frozen moco net' variant (the moco run of the same seed)")
    parser.add_argument("--quick", action="store_true", help="smoke run: small eval, nothing written")
    args = parser.parse_args()
    if any(n.endswith("frozen moco net") for n in args.variants) and not args.saliency_network:
        parser.error("the 'frozen moco net' variant needs --saliency-network RUN/encoder.pt (a finished moco run)")
    if args.quick:
        args.eval_train, args.eval_test = 1000, 500
    if args.command == "run":
        run(args)
    elif args.command == "references":
        references(args)
    elif args.command == "timing":
        timing(args)
    else:
        with result_file():
            pass


if __name__ == "__main__":
    main()
