"""kNN (k=20, cosine) and linear probe reach ~100% on a trivially separable set; feature extraction."""

import pytest
import torch
from torch import nn

from representations.evaluation import (
    evaluate_features,
    extract_features,
    holdout_split,
    knn_accuracy,
    linear_probe,
)


def _separable(n=600, classes=5, dim=16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=gen) * 4
    labels = torch.arange(n) % classes
    feats = centres[labels] + 0.3 * torch.randn(n, dim, generator=gen)
    return feats[: n // 2], labels[: n // 2], feats[n // 2:], labels[n // 2:]


def test_knn_and_linear_probe_on_separable_features():
    scores = evaluate_features(*_separable(), k=20, l2_grid=(1e-2,))
    assert scores["knn_top1"] >= 99.0 and scores["linear_top1"] >= 99.0


def test_knn_uses_cosine_and_clamps_k():
    train = torch.tensor([[1.0, 0.0], [10.0, 0.5], [0.0, 1.0], [0.2, 9.0]])
    labels = torch.tensor([0, 0, 1, 1])
    test = torch.tensor([[100.0, 1.0], [0.01, 0.5]])  # scale must not matter under cosine
    assert knn_accuracy(train, labels, test, torch.tensor([0, 1]), k=50) == 100.0
    assert knn_accuracy(train, labels, test, torch.tensor([1, 0]), k=1) == 0.0
    with pytest.raises(ValueError, match="k must be"):
        knn_accuracy(train, labels, test, labels[:2], k=0)


def test_linear_probe_is_seeded_and_chance_on_noise():
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(400, 8, generator=gen), torch.randint(0, 4, (400,), generator=gen)
    a = linear_probe(x[:200], y[:200], x[200:], y[200:], seed=3)
    assert a == linear_probe(x[:200], y[:200], x[200:], y[200:], seed=3)
    assert a < 50.0


def _overlapping(n=2000, classes=6, dim=24, seed=0):
    """Gaussian classes that overlap (a probe's convergence and regularisation matter)."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=gen) * 0.6
    labels = torch.randint(0, classes, (n,), generator=gen)
    scales = torch.rand(dim, generator=gen) * 5 + 0.1  # unequal feature scales: standardising matters
    feats = (centres[labels] + torch.randn(n, dim, generator=gen)) * scales
    return feats[: n // 2], labels[: n // 2], feats[n // 2:], labels[n // 2:]


def test_linear_probe_matches_sklearn_logistic_regression():
    """Same problem, same penalty: our L-BFGS probe vs scikit-learn's converged LogisticRegression,
    with C = 1 / (l2 * n) (sklearn sums the loss over samples, we average it)."""
    sklearn = pytest.importorskip("sklearn.linear_model")
    from sklearn.preprocessing import StandardScaler

    tr, ytr, te, yte = _overlapping()
    details: dict[str, float] = {}
    ours = linear_probe(tr, ytr, te, yte, details=details)
    # the L2 was chosen on a held-out part of train, never on test: redo that choice by hand
    scaler = StandardScaler().fit(tr.numpy())
    reference = sklearn.LogisticRegression(C=1.0 / (details["l2"] * tr.shape[0]), max_iter=5000, tol=1e-8)
    reference.fit(scaler.transform(tr.numpy()), ytr.numpy())
    theirs = 100.0 * float((reference.predict(scaler.transform(te.numpy())) == yte.numpy()).mean())
    assert 30.0 < ours < 95.0  # not a trivial problem
    assert abs(ours - theirs) <= 0.5


def test_linear_probe_picks_l2_on_train_holdout_only():
    """Shuffling the TEST labels must not change which L2 is chosen (test never enters the choice)."""
    tr, ytr, te, yte = _overlapping(600)
    grid = (1e-4, 1e-2, 1.0)
    a, b = {}, {}
    linear_probe(tr, ytr, te, yte, l2_grid=grid, details=a)
    linear_probe(tr, ytr, te, yte[torch.randperm(yte.shape[0])], l2_grid=grid, details=b)
    assert a == b and a["l2"] in grid


def test_grouped_holdout_takes_whole_groups():
    """Groups of 3, 5, 7, ... rows: the held-out rows are whole groups, at least the asked share, the
    fewest groups that reach it in the seeded order; the rest are the fit rows; without groups the
    split is the seeded permutation it always was."""
    groups = torch.cat([torch.full((3 + 2 * g,), g) for g in range(10)])  # 120 rows
    groups = groups[torch.randperm(len(groups), generator=torch.Generator().manual_seed(5))]
    val, fit = holdout_split(len(groups), 0.2, seed=1, groups=groups)
    assert sorted(torch.cat([val, fit]).tolist()) == list(range(120))
    held = set(groups[val].tolist())
    assert held.isdisjoint(groups[fit].tolist())  # no group on both sides
    assert len(val) >= 24  # round(0.2 * 120)
    sizes = {g: 3 + 2 * g for g in held}
    assert len(val) - min(sizes.values()) < 24  # without its smallest group the share is not reached
    again, _ = holdout_split(len(groups), 0.2, seed=1, groups=groups)
    assert torch.equal(val, again)
    plain_val, plain_fit = holdout_split(120, 0.2, seed=1)
    order = torch.randperm(120, generator=torch.Generator().manual_seed(1))
    assert torch.equal(plain_val, order[:24]) and torch.equal(plain_fit, order[24:])
    with pytest.raises(ValueError, match="one id per train row"):
        holdout_split(120, 0.2, groups=groups[:10])


def test_latest_holdout_takes_the_end_of_every_group():
    """latest=True: the last round(0.2 * size) rows of each group (in row order), whatever the seed."""
    groups = torch.tensor([0] * 10 + [1] * 5 + [0] * 5 + [2] * 3)  # group 0 has rows 0-9 and 15-19
    val, fit = holdout_split(len(groups), 0.2, seed=7, groups=groups, latest=True)
    assert val.tolist() == [14, 17, 18, 19, 22]  # group 1: 1 of 5; group 0: 3 of 15; group 2: max(1, 0.6 -> 1)
    assert sorted(torch.cat([val, fit]).tolist()) == list(range(23))
    assert torch.equal(val, holdout_split(len(groups), 0.2, seed=0, groups=groups, latest=True)[0])
    with pytest.raises(ValueError, match="give groups"):
        holdout_split(23, 0.2, latest=True)
    # gap=2: the two rows before each cut leave the fit (group 0: 15, 16; group 1: 12, 13; group 2: 20, 21)
    val, fit = holdout_split(len(groups), 0.2, groups=groups, latest=True, gap=2)
    assert val.tolist() == [14, 17, 18, 19, 22]
    assert sorted(fit.tolist()) == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    with pytest.raises(ValueError, match="with latest"):
        holdout_split(23, 0.2, groups=groups, gap=2)


def test_grouped_holdout_stops_near_duplicates_rewarding_memorisation():
    """Rows that are noisy copies of their group's point, labels random per group: a random holdout
    sees copies of its rows in the fit set and scores near 100% (the L2 it picks rewards memorising); holding out
    whole groups shows the features say nothing about unseen groups (chance, 25%)."""
    gen = torch.Generator().manual_seed(0)
    groups = torch.arange(150).repeat_interleave(4)  # 256-d: the fit groups are linearly separable
    points, labels = torch.randn(150, 256, generator=gen), torch.randint(0, 4, (150,), generator=gen)
    x = points[groups] + 0.05 * torch.randn(600, 256, generator=gen)
    y = labels[groups]
    leaky, whole = {}, {}
    linear_probe(x, y, x[:40], y[:40], l2_grid=(1e-5, 1e-1), details=leaky)
    linear_probe(x, y, x[:40], y[:40], l2_grid=(1e-5, 1e-1), groups=groups, details=whole)
    assert leaky["holdout_top1"] > 95
    assert whole["holdout_top1"] < 50


def test_extract_features_pools_several_cls_and_restores_mode():
    class TwoCls(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(1))

        def forward(self, x):
            flat = x.float().flatten(1)[:, :3] * self.scale
            return torch.stack([flat, flat + 2], dim=1)  # (B, 2, 3)

    model = TwoCls().train()
    feats = extract_features(model, torch.ones(5, 1, 2, 2, dtype=torch.uint8), batch_size=2)
    assert feats.shape == (5, 3) and torch.allclose(feats, torch.full((5, 3), 2.0)) and model.training


def test_unlabelled_data_is_rejected():
    tr, ytr, te, yte = _separable(20)
    with pytest.raises(ValueError, match="labelled"):
        evaluate_features(tr, ytr - 10, te, yte)


class _Recorder(nn.Module):
    """Returns its (flattened) input as features and keeps every batch it was given."""

    def __init__(self):
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return x.float().flatten(1)


def test_evaluation_feeds_each_domain_what_its_methods_train_on():
    """Pixels (images, video) are normalised as in pretraining; skeleton coordinates go in unchanged
    (CML trains on raw coordinates, so a pixel normalisation at evaluation would shift its inputs)."""
    from representations.data import ImageData, SkeletonData
    from representations.data.video import VideoData
    from representations.objectives.base import PIXEL_MEAN, PIXEL_STD
    from representations.pretrain.run import evaluate_encoder

    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(6) % 2
    pixels = torch.randint(0, 256, (6, 3, 2, 4, 4), generator=gen, dtype=torch.uint8)
    coords = torch.randn(6, 3, 4, 25, 1, generator=gen)
    cases = [(VideoData(pixels, labels), (pixels.float() / 255 - PIXEL_MEAN) / PIXEL_STD),
             (ImageData(pixels[:, :, 0], labels), (pixels[:, :, 0].float() / 255 - PIXEL_MEAN) / PIXEL_STD),
             (SkeletonData(coords, labels), coords)]
    for data, expected in cases:
        encoder = _Recorder()
        evaluate_encoder(encoder, data, data, {"k": 2, "batch_size": 6})
        assert torch.allclose(encoder.seen[0], expected, atol=1e-6), type(data).__name__


def test_probe_holdout_follows_the_config_and_the_data():
    """eval.probe_holdout picks holdout_split's arguments from the bank's sources; data without sources
    falls back to the random holdout and says so; bad settings are one-line user errors."""
    from representations.core.errors import UserError
    from representations.data.video import VideoData
    from representations.pretrain.run import probe_holdout

    clips, labels = torch.zeros(12, 3, 1, 2, 2, dtype=torch.uint8), torch.arange(12) % 2
    sourced = VideoData(clips, labels, sources=torch.arange(12) // 6)
    plain = VideoData(clips, labels)
    assert probe_holdout({}, sourced) == ({}, "random")
    kwargs, name = probe_holdout({"probe_holdout": "latest", "probe_gap": 2}, sourced)
    assert name == "latest (gap 2)" and kwargs["latest"] and kwargs["gap"] == 2
    assert kwargs["groups"] is sourced.sources
    kwargs, name = probe_holdout({"probe_holdout": "sources"}, sourced)
    assert name == "sources" and set(kwargs) == {"groups"}
    assert probe_holdout({"probe_holdout": "latest"}, plain) == (
        {}, "random (eval.probe_holdout=latest, but the data names no sources)")
    for bad in ({"probe_holdout": "newest"}, {"probe_gap": -1}, {"probe_gap": 1.5}, {"probe_gap": True}):
        with pytest.raises(UserError, match=r"eval\.probe_"):
            probe_holdout(bad, sourced)


def test_evaluate_encoder_chooses_the_l2_on_each_sources_latest_clips(monkeypatch):
    """With eval.probe_holdout=latest, the probe's L2 is chosen on the latest clips of each source of the
    (limited) bank, after the gap: the scores equal linear_probe given those groups by hand."""
    import representations.evaluation as evaluation
    from representations.data.video import VideoData
    from representations.objectives.base import PIXEL_MEAN, PIXEL_STD
    from representations.pretrain.run import evaluate_encoder

    gen = torch.Generator().manual_seed(0)
    sources = torch.arange(20).repeat_interleave(6)  # 20 sources x 6 windows, in time order
    start, drift = torch.rand(20, 48, generator=gen) * 150, torch.randn(20, 48, generator=gen) * 8
    t = torch.arange(6).repeat(20).unsqueeze(1)
    pixels = (start[sources] + t * drift[sources] + 4 * torch.randn(120, 48, generator=gen)).clamp(0, 255)
    labels = torch.randint(0, 3, (20,), generator=gen)[sources]
    train = VideoData(pixels.round().to(torch.uint8).view(120, 3, 1, 4, 4), labels, sources=sources)
    test = VideoData(train.clips[::3].clone(), labels[::3])
    seen = []
    real_split = evaluation.holdout_split
    monkeypatch.setattr(evaluation, "holdout_split", lambda *a, **kw: seen.append((a, kw)) or real_split(*a, **kw))
    eval_cfg = {"k": 5, "train_limit": 90, "probe_holdout": "latest", "probe_gap": 2}
    result = evaluate_encoder(nn.Flatten(), train, test, eval_cfg, seed=4)
    assert result["probe_holdout"] == "latest (gap 2)"
    bank = train.limit(90, 4)
    (args, _), = seen
    n, holdout, seed, groups, latest, gap = args
    assert (n, seed, latest, gap) == (90, 4, True, 2) and torch.equal(groups, bank.sources)

    def features(data):
        return ((data.clips.float() / 255 - PIXEL_MEAN) / PIXEL_STD).flatten(1)

    details: dict = {}
    expected = evaluation.linear_probe(features(bank), bank.labels, features(test), test.labels, seed=4,
                                       num_classes=3, groups=bank.sources, latest=True, gap=2, details=details)
    assert result["linear_top1"] == expected and result["linear_l2"] == details["l2"]


def test_probe_holdout_falls_back_to_random_when_sources_are_too_thin():
    """A bank with one clip of each source (a small eval.train_limit) cannot hold out each source's
    latest clips and still fit: the random holdout runs, and the name says why."""
    from representations.data.video import VideoData
    from representations.pretrain.run import probe_holdout

    thin = VideoData(torch.zeros(5, 3, 1, 2, 2, dtype=torch.uint8), torch.arange(5) % 2, sources=torch.arange(5))
    assert probe_holdout({"probe_holdout": "latest", "probe_gap": 2}, thin) == (
        {}, "random (too few clips per source for eval.probe_holdout=latest)")
    assert probe_holdout({"probe_holdout": "sources"}, thin)[1] == "sources"  # whole sources still split
