"""M2CRL objective: masks, losses against naive transcriptions, gradients, EMA, CLI and a short learning run."""

import json
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from representations.data.video_views import MultiViewConfig, MultiViewSampler
from representations.encoders import VideoViT
from representations.objectives import M2CRL, METHODS
from representations.objectives.base import PIXEL_MEAN, PIXEL_STD


def tiny(global_mask="attention", drop_path=0.0, **kwargs) -> M2CRL:
    torch.manual_seed(0)
    encoder = VideoViT(image_size=32, patch_size=8, num_frames=4, tubelet_size=2, width=32, depth=2, heads=2,
                       attention="divided", mask_token=True, drop_path=drop_path)
    views = MultiViewSampler(MultiViewConfig(global_size=32, local_size=24, global_frames=(4, 4),
                                             local_frames=(2, 2, 4), global_offset=0.1, local_span=0.5))
    return M2CRL(encoder, views, out_dim=64, hidden_dim=32, bottleneck_dim=16, global_mask=global_mask,
                 generators={"augment": torch.Generator().manual_seed(1), "mask": torch.Generator().manual_seed(2)},
                 **kwargs)


def clips(batch: int = 4) -> torch.Tensor:
    return torch.randint(0, 256, (batch, 3, 8, 32, 32), generator=torch.Generator().manual_seed(3), dtype=torch.uint8)


def test_registered_and_validates():
    assert METHODS["m2crl"] is M2CRL
    plain = VideoViT(image_size=32, patch_size=8, num_frames=4, width=32, depth=1, heads=2)
    with pytest.raises(ValueError, match="mask token"):
        M2CRL(plain, MultiViewSampler())
    with pytest.raises(ValueError, match="global_mask"):
        tiny(global_mask="saliency")


def test_global_masks_keep_visible_tokens_in_the_top_fraction():
    obj = tiny()
    views = obj.views(clips(), obj.generators["augment"])
    _, attention = obj.teacher_forward(views.globals)
    rows = torch.arange(4)
    masks = obj.global_masks(views.globals, attention, rows, 4)
    n = 16  # 32 px / patch 8 = 4 x 4 tokens per step
    for mask, attn in zip(masks, attention):
        assert mask.shape == (4, 2, n) and attn.shape == (4, 2, 2, n)  # (B, T', N), attention (B, heads, T', N)
        assert torch.equal(mask, mask[:, :1].expand_as(mask))  # a tube: the same cells at every step
        assert (mask[:, 0].sum(dim=1) == round(0.9 * n)).all()  # 14 masked, 2 visible
        # independent reference: average over heads and frames, the top round(0.6 * N) cells
        score = attn.mean(dim=(1, 2))
        top = score.argsort(dim=1, descending=True)[:, :round(0.6 * n)]
        for b in range(4):
            visible = set((~mask[b, 0]).nonzero().flatten().tolist())
            assert visible <= set(top[b].tolist())
    random = tiny(global_mask="random")
    r = random.global_masks(views.globals, attention, rows, 4)[0]
    assert (r[:, 0].sum(dim=1) == 14).all() and torch.equal(r, r[:, :1].expand_as(r))


def test_local_masks_ratio():
    obj = tiny()
    view = torch.zeros(4, 3, 2, 24, 24)
    mask = obj._random_masks(view, 0.9, torch.arange(4), 4)
    assert mask.shape == (4, 1, 9) and (mask.sum(dim=(1, 2)) == round(0.9 * 9)).all()


def test_loss_is_the_sum_of_naive_terms():
    """Loss = DINO (teacher global views -> student unmasked views) + L1 on masked pixels (global, local),
    all on views normalised as the official transform does ((x - mean) / std, here one grey mean / std)."""
    obj = tiny()
    batch = {"clips": clips(), "labels": torch.zeros(4, dtype=torch.long)}
    states = obj.generator_states()
    loss, metrics = obj(batch)
    obj.load_generator_states(states)
    sampled = obj.views(batch["clips"], obj.generators["augment"])
    views = sampled._replace(globals=[(v - PIXEL_MEAN) / PIXEL_STD for v in sampled.globals],
                             locals=[(v - PIXEL_MEAN) / PIXEL_STD for v in sampled.locals])
    with torch.no_grad():
        t_logits = [obj.teacher["head"](obj.teacher["encoder"](v)) for v in views.globals]
        s_logits = [obj.head(obj.encoder(v)) for v in views.globals + views.locals]
    naive, pairs = 0.0, 0
    for i, t in enumerate(t_logits):  # centre is zero at the first step
        q = F.softmax(t / 0.04, dim=-1)
        for j, s in enumerate(s_logits):
            if i == j:
                continue
            naive += (-q * F.log_softmax(s / 0.1, dim=-1)).sum(dim=-1).mean()
            pairs += 1
    assert torch.allclose(metrics["dino"], naive / pairs, rtol=1e-4, atol=1e-5)
    assert torch.allclose(loss, metrics["dino"] + metrics["rec_global"] + metrics["rec_local"], rtol=1e-5)
    # reconstruction: recompute the local term by hand with the masks drawn from the same stream
    _, attention = obj.teacher_forward(views.globals)
    obj.global_masks(views.globals, attention, torch.arange(4), 4)  # advance the mask stream as forward did
    local_errors = []
    with torch.no_grad():
        for v in views.locals:
            mask = obj._random_masks(v, 0.9, torch.arange(4), 4)
            out = obj.encoder(v, mask=mask, return_tokens=True)
            pred, target = obj.decoder(out.tokens), obj.encoder.patchify(v)
            per_patch = (pred - target).abs().mean(dim=-1)
            m = mask.flatten(1).float()
            local_errors.append((per_patch * m).sum() / m.sum())
    assert torch.allclose(metrics["rec_local"], torch.stack(local_errors).mean(), rtol=1e-4, atol=1e-6)


def test_gradients_reach_the_student_only_and_teacher_follows_by_ema():
    obj = tiny()
    obj.configure(10, 5)
    loss, _ = obj({"clips": clips(), "labels": torch.zeros(4, dtype=torch.long)})
    loss.backward()
    assert all(p.grad is None for p in obj.teacher.parameters())
    for name, module in (("encoder", obj.encoder), ("head", obj.head), ("decoder", obj.decoder)):
        assert all(p.grad is not None for p in module.parameters() if p.requires_grad), name
    assert obj.encoder.mask_token.token.grad.abs().sum() > 0
    before = obj.teacher["encoder"].cls_token.detach().clone()
    with torch.no_grad():
        obj.encoder.cls_token.add_(1.0)
    m = obj.after_step(1)["momentum"]
    expected = 1.0 - (1.0 - 0.996) * (torch.cos(torch.tensor(torch.pi / 10)) + 1) / 2  # cosine 0.996 -> 1
    assert m == pytest.approx(float(expected), abs=1e-6)
    assert torch.allclose(obj.teacher["encoder"].cls_token, m * before + (1 - m) * obj.encoder.cls_token)


def test_teacher_drops_paths_like_the_official_teacher():
    """The official teacher is built with drop-path 0.1 like the student and never put in eval mode."""
    obj = tiny(drop_path=0.5)
    obj.eval()  # even when the caller left the objective in eval mode
    view = torch.rand(4, 3, 4, 32, 32)
    first, _ = obj.teacher_forward([view])
    second, _ = obj.teacher_forward([view])
    assert obj.teacher["encoder"].training and obj.teacher["encoder"].blocks[1].drop_path.rate == 0.5
    assert not torch.allclose(first, second)
    with torch.no_grad():
        obj.teacher["encoder"].eval()
        assert torch.equal(obj.teacher["encoder"](view), obj.teacher["encoder"](view))


def test_ablation_without_reconstruction_skips_the_masked_passes():
    obj = tiny(global_rec_weight=0.0, local_rec_weight=0.0)
    loss, metrics = obj({"clips": clips(), "labels": torch.zeros(4, dtype=torch.long)})
    assert "rec_global" not in metrics and torch.allclose(loss, metrics["dino"])
    masked = tiny(distill_views="masked")
    loss, metrics = masked({"clips": clips(), "labels": torch.zeros(4, dtype=torch.long)})
    assert torch.isfinite(loss) and {"dino", "rec_global", "rec_local"} <= set(metrics)


TINY_CLI = ["method=m2crl", "data=video", "encoder=video_vit", "steps=2", "batch_size=8", "log_every=1",
            "threads=1", "progress=false", "data.train_limit=16", "data.test_limit=16",
            "method.out_dim=64", "method.hidden_dim=32", "method.bottleneck_dim=16", "encoder.width=32",
            "encoder.depth=1"]


@pytest.mark.slow
def test_cli_runs_on_the_bundled_set(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "representations.pretrain.cli", *TINY_CLI,
                           f"hydra.run.dir={run_dir}"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((run_dir / "eval.json").read_text())
    assert result["method"] == "m2crl" and result["n_test"] == 16 and 0 <= result["knn_top1"] <= 100
    # encoder.pt is the EMA teacher's encoder (the official downstream code loads ``teacher``), not the student's
    saved = torch.load(run_dir / "encoder.pt", weights_only=False)["state_dict"]
    (ckpt,) = (run_dir / "checkpoints").glob("*.pt")
    state = torch.load(ckpt, weights_only=False)["state"]["objective"]
    for name, value in saved.items():
        assert torch.equal(value, state[f"teacher.encoder.{name}"]), name
    assert any(not torch.equal(v, state[f"encoder.{k}"]) for k, v in saved.items() if v.is_floating_point())


def test_cli_bad_video_list_is_one_line(tmp_path):
    bad = subprocess.run([sys.executable, "-m", "representations.pretrain.cli", *TINY_CLI, "data.source=video_list",
                          f"data.path={tmp_path}/none.csv", f"hydra.run.dir={tmp_path}/bad"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    lines = [line for line in bad.stderr.strip().splitlines() if line.strip()]
    assert bad.returncode == 2 and len(lines) == 1 and "clip list not found" in lines[0], bad.stderr


# The slow runs use the benchmark's CPU schedule (benchmarks/pretrain_video.py CPU_SCHEDULE): at the official lr
# scaled to 32 clips (6.25e-5) a short run does not even teach the decoder the mean pixel.


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    """150 steps of the CPU config and schedule on the bundled set; an untrained encoder under the same probe;
    the L1 error of the best constant prediction (the median) of the normalised global and local views."""
    from benchmarks.pretrain_video import CPU_SCHEDULE, compose, constant_prediction_l1
    from representations.core.logger import read_csv_column
    from representations.pretrain.build import build_model_encoder, load_data
    from representations.pretrain.run import evaluate_encoder, pretrain

    run_dir = tmp_path_factory.mktemp("m2crl") / "run"
    cfg = compose(["steps=150", "batch_size=32", "log_every=10", "threads=1", "progress=false", "checkpoint_every=0",
                   *CPU_SCHEDULE])
    result = pretrain(cfg, run_dir)
    log = {key: read_csv_column(run_dir / "train.csv", key) for key in ("loss", "rec_global", "rec_local")}
    train, test = load_data(cfg["data"], 0)
    torch.manual_seed(0)
    untrained = build_model_encoder(cfg["encoder"], cfg["method"], 3, 32)
    constant = {f"rec_{k}": v for k, v in constant_prediction_l1(cfg["data"], train.clips[:256]).items()}
    return result, log, evaluate_encoder(untrained, train, test, cfg["eval"], "none", 0), constant


@pytest.mark.slow
def test_short_run_reconstruction_falls_below_a_constant(short_run):
    """Both reconstruction terms fall and end below the best constant prediction's masked-pixel L1: the
    decoder predicts pixel content, not just the mean."""
    _, log, _, constant = short_run
    for key in ("rec_global", "rec_local"):
        assert log[key][-1] < log[key][0], key
        assert log[key][-1] < constant[key], (key, log[key][-1], constant[key])


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="on the bundled clips the centred DINO teacher turns uniform (the DINO term "
                   "rises to log(out_dim) and stays), so the total loss rises although reconstruction learns, and "
                   "the teacher's [CLS] probes stay at the untrained level after 150 steps "
                   "(benchmarks/results/pretrain_video.md); see README")
def test_short_run_loss_falls_and_probe_beats_untrained(short_run):
    result, log, untrained, _ = short_run
    assert log["loss"][-1] < log["loss"][0]
    assert result["knn_top1"] > untrained["knn_top1"] and result["linear_top1"] > untrained["linear_top1"]


def test_prototypes_are_frozen_in_the_first_epoch_only():
    """Official freeze_last_layer=1: the last layer gets no update while step < one epoch."""
    obj = tiny()
    obj.configure(20, 4)
    assert obj.freeze_steps == 4
    for step, frozen in ((0, True), (3, True), (4, False)):
        obj.zero_grad(set_to_none=True)
        loss, _ = obj({"clips": clips(), "labels": torch.zeros(4, dtype=torch.long), "step": step})
        loss.backward()
        assert (obj.head.prototypes.grad.abs().sum() == 0) == frozen, step
        assert obj.head.mlp.net[0].weight.grad.abs().sum() > 0  # the rest of the head still learns


def test_batchnorm_head_gives_the_untrained_teacher_diverse_targets():
    """With clips an untrained encoder maps to nearly one vector, centring leaves a uniform teacher
    unless the head standardises over the batch (DINO's use_bn_in_head); the teacher uses batch statistics."""
    entropies = {}
    for norm in (None, "bn"):
        obj = tiny(head_norm=norm)
        video = clips(16).float() / 255
        views = obj.views(video, obj.generators["augment"], torch.arange(16), 16)
        logits, _ = obj.teacher_forward(views.globals)
        centred = (logits - logits.mean(dim=(0, 1))) / 0.04
        p = centred.softmax(-1)
        entropies[norm] = float(-(p * p.clamp_min(1e-12).log()).sum(-1).mean())
        assert obj.teacher["head"].training and obj.teacher["encoder"].training  # never in eval mode, as officially
    assert entropies["bn"] < entropies[None] - 0.5


@pytest.mark.slow
def test_linear_probe_beats_untrained_on_moving_fashion_mnist(tmp_path):
    """Is it the code or the data? On clips whose class is appearance (benchmarks/pretrain_video.py
    --fashion-sanity: Fashion-MNIST garments drifting over 8 frames, real mp4s in the clip-list layout),
    1000 steps of the CPU schedule lower the loss and the teacher's linear probe beats the untrained
    encoder (seed 0 of benchmarks/results/pretrain_video_fashion_sanity_1000_steps: 63.6 vs 53.8)."""
    from pathlib import Path

    from benchmarks.pretrain_video import CPU_SCHEDULE, compose, make_fashion_clips
    from representations.core.logger import read_csv_column
    from representations.data.images import FASHION_MNIST_ROOT
    from representations.pretrain.build import build_model_encoder, load_data
    from representations.pretrain.run import evaluate_encoder, pretrain

    if not Path(FASHION_MNIST_ROOT).is_dir():
        pytest.skip("needs Fashion-MNIST (apt-get install dataset-fashion-mnist)")
    train_csv, test_csv = make_fashion_clips(tmp_path / "clips", 1000, 500)
    cfg = compose(["steps=1000", "batch_size=32", "threads=1", "progress=false", "log_every=10", "checkpoint_every=0",
                   "data.source=video_list", f"data.path={train_csv}", f"data.test_path={test_csv}", *CPU_SCHEDULE,
                   "seed=0"])
    result = pretrain(cfg, tmp_path / "run")
    losses = read_csv_column(tmp_path / "run" / "train.csv", "loss")
    train, test = load_data(cfg["data"], 0)
    torch.manual_seed(0)
    untrained = evaluate_encoder(build_model_encoder(cfg["encoder"], cfg["method"], 3, 32), train, test,
                                 cfg["eval"], "none", 0)
    assert losses[-1] < losses[0]
    assert result["linear_top1"] > untrained["linear_top1"] + 5, (result, untrained)


@pytest.mark.slow
def test_real_footage_checkpoint_keeps_dino_targets(tmp_path):
    """Stage 1 of the warm start (benchmarks/pretrain_video.py --warm-start --stage1-data footage): 1000
    CPU-schedule steps on the bundled unlabelled real footage keep the DINO teacher's targets (the term
    ends well below ln K: 6.17-6.23 against ln 1024 = 6.93 in benchmarks/results/
    pretrain_video_warm_start_footage.json). Whether the checkpoint then helps the DeepMimic clips is a
    result, not a property: with the leak-free probe it does not (-0.7 / +4.9 / -2.5 points linear
    against the same seed untrained, docs/m2crl_experiments.md), so no test asserts it."""
    import argparse
    import math

    from benchmarks.pretrain_video import CPU_SCHEDULE, compose, stage1_corpus
    from representations.core.logger import read_csv_column
    from representations.pretrain.run import pretrain

    _, data = stage1_corpus(argparse.Namespace(stage1_data="footage"))
    common = ["batch_size=32", "threads=1", "progress=false", "log_every=10", "checkpoint_every=0", "seed=0"]
    cfg = compose(["steps=1000", *common, *CPU_SCHEDULE, *data])
    pretrain(cfg, tmp_path / "stage1")
    dino = read_csv_column(tmp_path / "stage1" / "train.csv", "dino")
    assert sum(dino[-10:]) / 10 < math.log(cfg["method"]["out_dim"]) - 0.5, dino[-10:]


def test_results_figure_draws_from_the_committed_files(tmp_path):
    """The README's M2CRL figure is redrawn from committed result files only (every run it plots has its
    train.csv beside the results)."""
    from benchmarks.pretrain_video import figure

    out = tmp_path / "m2crl.png"
    figure(out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_view_agreement_matches_a_hand_computation():
    """The view-consistency diagnostic on two clips: view 1 = e1, e2; view 2 = e1, (0.6, 0.8). Same-clip
    cosines 1 and 0.8, other-clip 0.6 and 0; both views find their clip; clip means (1, 0) and (0.3, 0.9)
    around (0.65, 0.45) give between-clip variance 0.325, clip 2's views lie 0.1 from their mean: within
    (0 + 0 + 0.1 + 0.1) / 4 = 0.05."""
    from benchmarks.pretrain_video import view_agreement

    out = view_agreement(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[1.0, 0.0], [0.6, 0.8]]))
    assert out == {"same_clip_cosine": 0.9, "other_clip_cosine": 0.3, "view_retrieval_top1": 1.0,
                   "within_over_between_variance": round(0.05 / 0.325, 3)}


def test_finetune_shows_each_epoch_and_augments_only_what_it_trains_on():
    """The supervised ceiling's training loop: ``after_epoch`` sees every epoch's head, the last one's test
    accuracy is what ``finetune`` returns (a hand count of the argmax hits), and ``augment`` gets the uint8
    training batches only."""
    from benchmarks.pretrain_video import finetune, head_top1

    class Clips:
        def __init__(self, n: int, gen: torch.Generator) -> None:
            self.clips = torch.randint(0, 256, (n, 3, 4, 16, 16), generator=gen, dtype=torch.uint8)
            self.labels, self.num_classes = torch.arange(n) % 3, 3

        def __len__(self) -> int:
            return len(self.labels)

    gen = torch.Generator().manual_seed(0)
    train, test = Clips(12, gen), Clips(6, gen)
    torch.manual_seed(0)
    encoder = VideoViT(image_size=16, patch_size=8, num_frames=4, tubelet_size=2, width=16, depth=1, heads=2)
    seen, batches = [], []

    def augment(clips):
        batches.append((clips.dtype, clips.shape[0]))
        return clips.float() / 255

    def after_epoch(epoch, head):
        seen.append((epoch, head_top1(encoder, head, test)))
        with torch.no_grad():
            logits = head(encoder((test.clips.float() / 255 - PIXEL_MEAN) / PIXEL_STD))
        assert seen[-1][1] == pytest.approx(100 * float((logits.argmax(1) == test.labels).float().mean()))

    final = finetune(encoder, train, test, 2, 0, batch=8, augment=augment, after_epoch=after_epoch)
    assert [e for e, _ in seen] == [1, 2] and seen[-1][1] == final
    assert batches == [(torch.uint8, 8), (torch.uint8, 4)] * 2


def test_patch_token_features_are_the_mean_of_the_normalised_clips_tokens():
    """--token-mean probes the last layer's patch tokens averaged over the clip, of the same normalised
    input the [CLS] evaluation sees; the reference runs the encoder and averages by hand."""
    from benchmarks.pretrain_video import patch_token_view
    from representations.objectives.base import encoder_features

    encoder = tiny().encoder.eval()
    video = clips()[:, :, :4]
    by_hand = encoder((video.float() / 255 - PIXEL_MEAN) / PIXEL_STD, return_tokens=True).tokens.mean(dim=1)
    assert by_hand.shape == (4, 32)
    torch.testing.assert_close(encoder_features(patch_token_view(encoder), video), by_hand)
    assert not torch.allclose(encoder_features(encoder, video), by_hand)  # not the [CLS]


def test_probe_l2_rows_score_each_holdouts_pick_on_the_curve():
    """--probe-l2: the L2 each holdout picks is the one linear_probe picks with that holdout, and the
    test score reported for it is the curve's value at that L2 (on overlapping Gaussian classes)."""
    from types import SimpleNamespace

    from benchmarks.pretrain_video import probe_l2_rows
    from representations.evaluation import linear_probe

    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(5, 16, generator=gen) * 0.7
    y = torch.randint(0, 5, (300,), generator=gen)
    x = centres[y] + torch.randn(300, 16, generator=gen)
    train, test = SimpleNamespace(labels=y[:200]), SimpleNamespace(labels=y[200:])
    groups = torch.arange(200) // 10
    row = probe_l2_rows("toy", x[:200], x[200:], train, test, groups, seed=3, gap=2)
    assert list(row["test_top1_by_l2"]) == ["1e-05", "0.0001", "0.001", "0.01", "0.1", "1.0", "10.0"]
    for key, kwargs in (("random_holdout", {}), ("source_holdout", {"groups": groups}),
                        ("latest_holdout", {"groups": groups, "latest": True}),
                        ("purged_latest_holdout", {"groups": groups, "latest": True, "gap": 2})):
        details: dict = {}
        score = linear_probe(x[:200], y[:200], x[200:], y[200:], seed=3, details=details, **kwargs)
        assert row[key]["l2"] == details["l2"] and row[key]["test_top1"] == round(score, 2)
        assert row[key]["test_top1"] == row["test_top1_by_l2"][str(details["l2"])]


def test_a_streamed_run_is_the_in_memory_run(tmp_path):
    """data.stream=true (clips decoded per batch, the next batch prefetched) trains on the same tensors:
    the same losses at every step and the same evaluation as the run that decodes everything up front."""
    from benchmarks.pretrain_video import compose
    from representations.core.logger import read_csv_column
    from representations.pretrain.run import pretrain

    tiny_run = [o for o in TINY_CLI if o.split("=")[0] not in ("method", "data", "encoder")] + ["steps=3"]
    runs = {}
    for stream in (False, True):
        cfg = compose([*tiny_run, f"data.stream={stream}", "data.decode_workers=2"])
        result = pretrain(cfg, tmp_path / f"stream_{stream}")
        runs[stream] = (read_csv_column(tmp_path / f"stream_{stream}" / "train.csv", "loss"),
                        result["knn_top1"], result["linear_top1"])
    assert len(runs[True][0]) == 3 and runs[True] == runs[False]


def test_benchmark_reuses_a_finished_run_only_under_the_same_settings(tmp_path, capsys):
    """benchmarks/pretrain_video.py keeps a stopped sweep's finished runs; a run of other settings in the
    same --runs-dir (there: 250 steps, asked: 1000) once passed for the requested one. Now it stops the sweep."""
    import yaml

    from benchmarks.pretrain_video import compose, finished_run

    cfg = compose(["steps=250", "seed=0"])
    run = tmp_path / "m2crl_s0"
    assert not finished_run(run, cfg)
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert not finished_run(run, cfg)  # started, not finished: trained again
    (run / "eval.json").write_text("{}")
    assert finished_run(run, cfg)
    with pytest.raises(SystemExit) as stop:
        finished_run(run, compose(["steps=1000", "seed=0"]))
    lines = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(lines) == 1 and "steps 250 there, 1000 here" in lines[0], lines


def _sweep(seeds, linear, untrained_linear, steps=1000):
    """A minimal result file of the sweep: one variant, kNN = linear - 1, student linear = linear - 2,
    untrained kNN = untrained linear."""
    from benchmarks.pretrain_video import mean_ci

    runs = [{"variant": "v", "seed": s, "knn_top1": x - 1, "linear_top1": x, "student_linear_top1": x - 2,
             "first_loss": 9.0, "final_loss": 7.0, "step_time_s": 0.5} for s, x in zip(seeds, linear)]
    return {"title": "t", "data": "d", "budget": {"steps": steps, "seeds": list(seeds), "epochs": 1.0},
            "table": {"v": {}}, "runs": runs, "wall_time_s": 10.0,
            "references": {"raw pixels": {"linear_top1": 38.7},
                           "untrained VideoViT": {"knn_top1": mean_ci(untrained_linear),
                                                  "linear_top1": mean_ci(untrained_linear)}}}


def test_merged_sweeps_give_paired_gains_by_hand(tmp_path):
    """Seeds 0-1 from one sweep and 5-6 from another: gains are each run minus the untrained encoder of its own
    seed (31-30, 29-30, 33-28, 28-28 = 1, -1, 5, 0; mean 1.25, sd sqrt(6.9167), t(0.975, 3) = 3.1824), means
    and intervals over all four seeds; a file of another budget or a repeated seed is refused."""
    from benchmarks.pretrain_video import merge_results

    paths = []
    for i, sweep in enumerate((_sweep([0, 1], [31, 29], [30, 30]), _sweep([5, 6], [33, 28], [28, 28]),
                               _sweep([7], [30], [30], steps=250), _sweep([1], [30], [30]))):
        paths.append(tmp_path / f"{i}.json")
        paths[-1].write_text(json.dumps(sweep))
    merged = merge_results(paths[:2])
    assert merged["budget"]["seeds"] == [0, 1, 5, 6] and len(merged["runs"]) == 4
    gain = merged["table"]["v"]["linear_top1_gain"]
    assert gain["values"] == [1, -1, 5, 0] and gain["mean"] == 1.25 and gain["seeds_above"] == 2
    assert gain["ci95"] == round(3.1824 * (6.9167 / 4) ** 0.5, 2)
    assert merged["table"]["v"]["knn_top1_gain"]["values"] == [0, -2, 4, -1]  # kNN 1 lower, same untrained
    assert merged["table"]["v"]["student_linear_top1_gain"]["values"] == [-1, -3, 3, -2]
    assert "student_knn_top1_gain" not in merged["table"]["v"]  # no student kNN in the runs
    assert merged["table"]["v"]["linear_top1"]["mean"] == 30.25
    assert merged["references"]["untrained VideoViT"]["linear_top1"]["values"] == [30, 30, 28, 28]
    for bad in (paths[2], paths[3]):
        with pytest.raises(ValueError):
            merge_results([paths[0], bad])
    wider = _sweep([8], [32], [30])
    wider["table"]["w"] = {}
    wider["runs"].append({**wider["runs"][0], "variant": "w"})
    paths.append(tmp_path / "wider.json")
    paths[-1].write_text(json.dumps(wider))
    with pytest.raises(ValueError):  # another set of variants
        merge_results([paths[0], paths[-1]])
    assert merge_results([paths[0], paths[-1]], ["v"])["table"]["v"]["linear_top1_gain"]["values"] == [1, -1, 2]
    with pytest.raises(ValueError):
        merge_results([paths[0], paths[-1]], ["w"])  # the first file has no w
