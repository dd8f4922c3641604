"""One pretraining run: data -> encoder -> objective -> Trainer -> encoder.pt + eval.json.

Outputs in the run directory: ``config.yaml`` (as composed), ``train.csv`` / ``eval.csv`` / ``tb/``,
``checkpoints/ckpt_<step>.pt``, ``encoder.pt`` (``save_encoder``: loadable with
``representations.encoders.load_pretrained``), ``train_summary.json`` and ``eval.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..core import Runtime
from ..core import distributed as dist_utils
from ..core.atomic import atomic_write_json
from ..core.errors import UserError
from ..core.rundir import differing_keys
from ..core.trainer import Trainer
from ..data import DataError, SkeletonData
from ..data.protocol import LabelledRows
from ..encoders import load_pretrained, save_encoder
from ..evaluation import PROBE_HOLDOUT, evaluate_features, extract_features, holdout_split
from ..objectives import Objective, encoder_features
from ..objectives.base import PIXEL_MEAN, PIXEL_STD
from .build import (
    SKELETON_METHODS,
    SKELETON_SOURCES,
    build_augment,
    build_model_encoder,
    build_objective,
    build_skeleton_augment,
    build_skeleton_encoder,
    check_data,
    initialise_encoder,
    input_filter_of,
    load_data,
    trainer_config,
)


def model_inputs(data: LabelledRows) -> torch.Tensor:
    """The tensor an encoder reads: ``images``, or the attribute a dataset names in ``input_key``."""
    return getattr(data, getattr(data, "input_key", "images"))


PROBE_HOLDOUTS = ("random", "sources", "latest")


def probe_holdout_setting(eval_cfg: dict[str, Any]) -> tuple[str, int]:
    """(``eval.probe_holdout``, ``eval.probe_gap``), checked (one line on a bad value)."""
    kind = str(eval_cfg.get("probe_holdout", "random"))
    gap = eval_cfg.get("probe_gap", 0)
    if kind not in PROBE_HOLDOUTS:
        raise UserError(f"eval.probe_holdout must be one of {', '.join(PROBE_HOLDOUTS)}, got {kind!r}")
    if isinstance(gap, bool) or not isinstance(gap, int) or gap < 0:
        raise UserError(f"eval.probe_gap must be a count of rows >= 0, got {gap!r}")
    return kind, gap


def probe_holdout(eval_cfg: dict[str, Any], bank: LabelledRows) -> tuple[dict[str, Any], str]:
    """The linear probe's holdout for ``bank`` (``holdout_split`` arguments) and its name for eval.json.

    ``eval.probe_holdout`` says which train rows choose the probe's L2: ``random`` rows, whole
    ``sources`` or each source's ``latest`` rows, with the ``eval.probe_gap`` rows before each cut
    left out of the fit. Overlapping windows of one video are near-duplicates: split between fit and
    held-out rows they reward memorising and pick the weakest penalty. Data that names no sources
    gets the random holdout.
    """
    kind, gap = probe_holdout_setting(eval_cfg)
    if kind == "random":
        return {}, "random"
    if bank.sources is None:
        return {}, f"random (eval.probe_holdout={kind}, but the data names no sources)"
    holdout = {"groups": bank.sources, **({"latest": True, "gap": gap} if kind == "latest" else {})}
    try:
        holdout_split(len(bank), PROBE_HOLDOUT, 0, **holdout)
    except ValueError:  # e.g. a small eval.train_limit leaves one clip of most sources
        return {}, f"random (too few clips per source for eval.probe_holdout={kind})"
    return holdout, f"latest (gap {gap})" if kind == "latest" else "sources"


def evaluate_encoder(encoder: nn.Module, train: LabelledRows, test: LabelledRows,
                     eval_cfg: dict[str, Any],
                     input_filter: str = "none", seed: int = 0,
                     device: torch.device | str = "cpu") -> dict[str, Any]:
    """kNN + linear-probe accuracy (percent) of frozen features on (train bank, test split)."""
    if (train.labels < 0).any() or (test.labels < 0).any():
        raise DataError("the data has no labels: kNN / linear evaluation needs labelled train and test images")
    bank = train.limit(eval_cfg.get("train_limit"), seed)
    holdout, holdout_name = probe_holdout(eval_cfg, bank)
    queries = test.limit(eval_cfg.get("test_limit"), seed + 1)
    was_training = encoder.training
    encoder.eval()
    try:
        fn = lambda x: encoder_features(encoder, x, input_filter, pixels=train.pixels)  # noqa: E731
        batch = int(eval_cfg.get("batch_size", 512))
        train_f = extract_features(fn, model_inputs(bank), batch, device)
        test_f = extract_features(fn, model_inputs(queries), batch, device)
    finally:
        encoder.train(was_training)
    classes = max(train.num_classes, test.num_classes)
    scores = evaluate_features(train_f, bank.labels, test_f, queries.labels, k=int(eval_cfg.get("k", 20)),
                               temperature=float(eval_cfg.get("temperature", 0.07)), seed=seed,
                               num_classes=classes, **holdout)
    return {**scores, "units": "percent", "k": int(eval_cfg.get("k", 20)), "n_train": len(bank),
            "n_test": len(queries), "feature_dim": int(train_f.shape[1]), "input_filter": input_filter,
            "probe_holdout": holdout_name}


def _runtime(cfg: dict[str, Any], dist: dist_utils.DistContext) -> Runtime:
    device = str(cfg.get("device", "auto"))
    if dist.enabled and dist.backend == "nccl":
        device = f"cuda:{dist.local_rank}"
    return Runtime(device=device, precision=str(cfg.get("precision", "auto")), compile=bool(cfg.get("compile")),
                   seed=int(cfg["seed"]), num_threads=cfg.get("threads"))


def _shared_run_dir(run_dir: Path, dist: dist_utils.DistContext) -> Path:
    """Every rank writes under rank 0's directory (hydra's timestamps may differ between ranks)."""
    if not dist.enabled:
        return run_dir
    import torch.distributed as tdist

    holder = [str(run_dir)]
    tdist.broadcast_object_list(holder, src=0)
    return Path(holder[0])


def pretrain(cfg: dict[str, Any], run_dir: str | Path) -> dict[str, Any]:
    """Run (or resume) one pretraining job into ``run_dir``; returns the eval dict (rank 0)."""
    dist = dist_utils.init_distributed(str(cfg.get("device", "auto")))
    try:
        return _pretrain(cfg, Path(run_dir), dist)
    finally:
        dist_utils.cleanup()


def _pretrain(cfg: dict[str, Any], run_dir: Path, dist: dist_utils.DistContext) -> dict[str, Any]:
    run_dir = _shared_run_dir(run_dir, dist)
    tcfg = trainer_config(cfg)  # validates the loop settings before anything is loaded or written
    eval_cfg = dict(cfg.get("eval") or {})
    probe_holdout_setting(eval_cfg)
    seed = int(cfg["seed"])
    skeleton_method = cfg["method"]["objective"] in SKELETON_METHODS
    if skeleton_method and cfg["data"]["source"] not in SKELETON_SOURCES:  # say so before loading anything
        raise UserError(f"method {cfg['method']['name']} trains on skeletons; use data=mocap or data=ntu")
    train, test = load_data(cfg["data"], seed)
    runtime = _runtime(cfg, dist)
    device = runtime.torch_device
    extra: dict[str, Any] = {}
    if isinstance(train, SkeletonData):
        encoder = build_skeleton_encoder(cfg["encoder"], cfg["method"], train)
        augment = build_skeleton_augment(cfg["data"])
        extra["parts"] = train.layout
    else:
        channels, size = check_data(train, cfg["data"])
        encoder = build_model_encoder(cfg["encoder"], cfg["method"], channels, size)
        augment = build_augment(cfg["data"], size)
    if cfg.get("init"):
        initialise_encoder(encoder, cfg["init"])
    generators = {"augment": runtime.generator("augment"), "mask": runtime.generator("mask")}
    objective = build_objective(cfg["method"], encoder, augment, generators, device, extra)
    labelled = bool((train.labels >= 0).all() and (test.labels >= 0).all())
    input_filter = input_filter_of(cfg["method"])

    def hook(obj: Objective, step: int) -> dict[str, float]:
        scores = evaluate_encoder(obj.export_encoder, train, test, eval_cfg, input_filter, seed, device)
        return {"knn_top1": scores["knn_top1"], "linear_top1": scores["linear_top1"]}

    if dist.is_main:
        import yaml

        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        atomic_write_json(run_dir / "runtime.json", runtime.describe())
    trainer = Trainer(objective, train, tcfg, runtime=runtime, run_dir=run_dir, dist=dist,
                      eval_hook=hook if labelled and eval_cfg.get("enabled", True) else None,
                      run_config={"pretrain": cfg})
    summary = trainer.fit(resume=bool(cfg.get("resume", False)))
    if not dist.is_main:
        return {}
    summary.update(method=cfg["method"]["name"], data=cfg["data"]["name"], encoder=cfg["encoder"]["name"],
                   global_batch=tcfg.batch_size, world_size=dist.world_size, seed=seed)
    atomic_write_json(run_dir / "train_summary.json", summary, sort_keys=True)
    # image and video methods train on normalise()d pixels: record it so RL / SB3 consumers can match it
    stats = (PIXEL_MEAN, PIXEL_STD) if train.pixels else None
    save_encoder(objective.export_encoder, run_dir / "encoder.pt", input_normalisation=stats)
    if not eval_cfg.get("enabled", True):
        return summary
    if not labelled:
        print("mcrl-pretrain: data has no labels; skipping the kNN / linear evaluation")
        return summary
    result = evaluate_encoder(objective.export_encoder, train, test, eval_cfg, input_filter, seed, device)
    result.update(step=summary["steps"], method=cfg["method"]["name"], data=cfg["data"]["name"], seed=seed)
    atomic_write_json(run_dir / "eval.json", result, sort_keys=True)
    return result


def evaluate_run(run_dir: str | Path, overrides: dict[str, Any] | None = None,
                 device: str = "cpu", overwrite: bool = False) -> dict[str, Any]:
    """Re-evaluate ``RUN_DIR/encoder.pt`` on the run's data config and write ``eval.json``.

    An ``eval.json`` made with other settings is replaced only with ``overwrite`` (checked before
    any feature is computed): a kNN score must never silently change meaning.
    """
    import yaml

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run directory not found: {run_dir}")
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise UserError(f"{run_dir} has no config.yaml (is it an mcrl-pretrain run directory?)")
    cfg = yaml.safe_load(config_path.read_text())
    eval_cfg = {**(cfg.get("eval") or {}), **(overrides or {})}
    probe_holdout_setting(eval_cfg)
    out = run_dir / "eval.json"
    if out.is_file() and not overwrite:
        try:
            previous = json.loads(out.read_text()).get("eval_settings") or (cfg.get("eval") or {})
        except ValueError:
            previous = {}
        changed = differing_keys(eval_cfg, previous)
        if changed:
            detail = ", ".join(f"{k} {previous.get(k)!r} -> {eval_cfg.get(k)!r}" for k in changed)
            raise UserError(f"{out} holds an evaluation with other settings ({detail}); pass --overwrite to "
                            "replace it")
    if not (run_dir / "encoder.pt").is_file():
        raise UserError(f"{run_dir} has no encoder.pt (the run did not finish)")
    encoder = load_pretrained(run_dir / "encoder.pt").to(device)
    train, test = load_data(cfg["data"], int(cfg["seed"]))
    result = evaluate_encoder(encoder, train, test, eval_cfg, input_filter_of(cfg["method"]), int(cfg["seed"]),
                              device)
    result.update(method=cfg["method"]["name"], data=cfg["data"]["name"], seed=int(cfg["seed"]),
                  eval_settings=eval_cfg)
    summary = run_dir / "train_summary.json"
    if summary.is_file():
        result["step"] = json.loads(summary.read_text()).get("steps")
    atomic_write_json(out, result, sort_keys=True)
    return result
