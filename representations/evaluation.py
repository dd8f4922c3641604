"""Frozen-feature evaluation of a pretrained encoder: weighted kNN (cosine, k=20) and a linear probe.

Both read features computed once with the encoder in eval mode. Accuracies are percentages.
The linear probe standardises features with the training statistics and solves L2-regularised
multinomial logistic regression to convergence (full-batch L-BFGS), with the L2 strength chosen on
a held-out part of the train features: a converged probe measures the features, not the probe's
optimiser budget (an under-trained SGD probe lost 0.5-2.8 points on low-dimensional features).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

FeatureFn = Callable[[torch.Tensor], torch.Tensor]


@torch.no_grad()
def extract_features(fn: FeatureFn | nn.Module, images: torch.Tensor, batch_size: int = 512,
                     device: torch.device | str | None = None) -> torch.Tensor:
    """Features (N, D) float32 on CPU of uint8 images (N, C, H, W); modules run in eval mode.

    A module's output is pooled when it has several [CLS] tokens (B, K, D) -> (B, D).
    """
    was_training = fn.training if isinstance(fn, nn.Module) else None
    if isinstance(fn, nn.Module):
        fn.eval()
        if device is None:
            device = next(fn.parameters()).device
    device = torch.device(device or "cpu")
    out = []
    try:
        for start in range(0, images.shape[0], batch_size):
            feats = fn(images[start:start + batch_size].to(device))
            if feats.dim() == 3:
                feats = feats.mean(dim=1)
            out.append(feats.float().cpu())
    finally:
        if was_training:
            fn.train()  # type: ignore[union-attr]
    return torch.cat(out)


@torch.no_grad()
def knn_accuracy(train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor,
                 test_labels: torch.Tensor, k: int = 20, temperature: float = 0.07,
                 num_classes: int | None = None, chunk: int = 1024) -> float:
    """Top-1 (%) of a cosine kNN classifier with exp(sim / T)-weighted votes (InstDisc / DINO style).

    ``temperature=None`` is not allowed; use a large T for (almost) uniform votes.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if train_features.shape[0] == 0 or test_features.shape[0] == 0:
        raise ValueError("kNN needs non-empty train and test features")
    k = min(k, train_features.shape[0])
    num_classes = num_classes or int(max(train_labels.max(), test_labels.max()).item()) + 1
    train = F.normalize(train_features.float(), dim=1)
    test = F.normalize(test_features.float(), dim=1)
    correct = 0
    for start in range(0, test.shape[0], chunk):
        sim = test[start:start + chunk] @ train.t()
        top_sim, top_idx = sim.topk(k, dim=1)
        votes = torch.zeros(top_sim.shape[0], num_classes)
        votes.scatter_add_(1, train_labels[top_idx].long(), torch.exp(top_sim / temperature))
        correct += int((votes.argmax(dim=1) == test_labels[start:start + chunk]).sum())
    return 100.0 * correct / test.shape[0]


L2_GRID = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)  # sklearn's default C=1 is l2 = 1/n, ~1e-4 here
PROBE_HOLDOUT = 0.2  # share of the train features that chooses the probe's L2


def _standardise(train: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    """Features scaled by the TRAIN mean / std (float64: L-BFGS line searches need the precision)."""
    mean = train.double().mean(dim=0, keepdim=True)
    std = train.double().std(dim=0, keepdim=True).clamp(min=1e-6)
    return [((x.double() - mean) / std) for x in (train, *others)]


def fit_logistic(x: torch.Tensor, y: torch.Tensor, num_classes: int, l2: float, *, max_iter: int = 500,
                 tolerance: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression by full-batch L-BFGS: (weight (K, D), bias (K,)).

    Minimises mean cross-entropy + l2 / 2 * ||W||^2 (bias not penalised), the problem scikit-learn's
    ``LogisticRegression(C=1 / (l2 * n))`` solves. The objective is strictly convex, so a converged
    solve is the probe's answer, independent of seeds and learning rates.
    """
    if not l2 > 0:
        raise ValueError(f"l2 must be > 0, got {l2}")
    x, y = x.double(), y.long()
    weight = torch.zeros(num_classes, x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter, history_size=20,
                                  tolerance_grad=tolerance, tolerance_change=1e-10,
                                  line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ weight.T + bias, y) + 0.5 * l2 * weight.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return weight.detach(), bias.detach()


def _accuracy(weight: torch.Tensor, bias: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> float:
    return 100.0 * float(((x.double() @ weight.T + bias).argmax(dim=1) == y.long()).double().mean())


def holdout_split(n: int, holdout: float, seed: int = 0, groups: torch.Tensor | None = None,
                  latest: bool = False, gap: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(held-out rows, fit rows) for choosing the probe's L2: a seeded random ``holdout`` share of
    ``n`` rows, or, with ``groups`` (one id per row), whole groups drawn in seeded order until they
    hold that share. Rows of one group (overlapping windows of one video) are near-duplicates: split
    between fit and held-out rows, they reward memorising and pick the weakest penalty. With
    ``latest`` (rows of a group in time order), the last ``holdout`` share of every group is held out,
    as a test split cut by time inside each video is, and the ``gap`` rows before each cut (windows
    that share frames with the first held-out one) are left out of the fit.
    """
    if not 0.0 < holdout < 1.0:
        raise ValueError(f"holdout must be in (0, 1), got {holdout}")
    n_val = max(1, int(round(holdout * n)))
    generator = torch.Generator().manual_seed(seed)
    if groups is not None and groups.shape != (n,):
        raise ValueError(f"groups must hold one id per train row ({n}), got shape {tuple(groups.shape)}")
    if latest and groups is None:
        raise ValueError("latest holds out the last rows of each group: give groups")
    if gap < 0 or (gap and not latest):
        raise ValueError(f"gap ({gap}) purges rows before each group's cut: a count >= 0, with latest")
    if groups is None:
        order = torch.randperm(n, generator=generator)
        val_idx, fit_idx = order[:n_val], order[n_val:]
    elif latest:
        held, purged = torch.zeros(n, dtype=torch.bool), torch.zeros(n, dtype=torch.bool)
        for group in groups.unique():
            rows = (groups == group).nonzero().flatten()
            cut = len(rows) - max(1, int(round(holdout * len(rows))))
            held[rows[cut:]] = True
            purged[rows[max(0, cut - gap):cut]] = True
        val_idx, fit_idx = held.nonzero().flatten(), (~held & ~purged).nonzero().flatten()
    else:
        ids = groups.unique()
        ids = ids[torch.randperm(len(ids), generator=generator)]
        sizes = torch.stack([(groups == i).sum() for i in ids])
        taken = ids[: int((sizes.cumsum(0) < n_val).sum()) + 1]
        held = torch.isin(groups, taken)
        val_idx, fit_idx = held.nonzero().flatten(), (~held).nonzero().flatten()
    if fit_idx.numel() == 0:
        raise ValueError(f"holding out {holdout:.0%} of {n} rows{' by group' if groups is not None else ''} leaves "
                         "none to fit")
    return val_idx, fit_idx


def linear_probe(train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor,
                 test_labels: torch.Tensor, *, l2_grid: tuple[float, ...] = L2_GRID, holdout: float = PROBE_HOLDOUT,
                 seed: int = 0, num_classes: int | None = None, max_iter: int = 500,
                 groups: torch.Tensor | None = None, latest: bool = False, gap: int = 0,
                 details: dict[str, float] | None = None) -> float:
    """Top-1 (%) of a converged L2-regularised logistic regression on frozen, standardised features.

    The L2 strength is chosen on a seeded ``holdout`` share of the TRAIN features (never the test
    set; ``holdout_split``: whole ``groups``, or each group's ``latest`` rows after a ``gap``): fit on
    the rest for every value of ``l2_grid``, keep the best held-out accuracy (ties: the stronger
    penalty), refit on all train features and score the test features. ``details``, when given,
    receives the chosen ``l2`` and its held-out accuracy.
    """
    if not l2_grid:
        raise ValueError("l2_grid must hold at least one value")
    num_classes = num_classes or int(max(train_labels.max(), test_labels.max()).item()) + 1
    val_idx, fit_idx = holdout_split(train_features.shape[0], holdout, seed, groups, latest, gap)
    x_fit, x_val = _standardise(train_features[fit_idx], train_features[val_idx])
    best_l2, best_acc = None, -1.0
    for l2 in sorted(l2_grid, reverse=True):
        weight, bias = fit_logistic(x_fit, train_labels[fit_idx], num_classes, l2, max_iter=max_iter)
        acc = _accuracy(weight, bias, x_val, train_labels[val_idx])
        if acc > best_acc:
            best_l2, best_acc = l2, acc
    assert best_l2 is not None
    x_train, x_test = _standardise(train_features, test_features)
    weight, bias = fit_logistic(x_train, train_labels, num_classes, best_l2, max_iter=max_iter)
    if details is not None:
        details.update(l2=best_l2, holdout_top1=best_acc)
    return _accuracy(weight, bias, x_test, test_labels)


def evaluate_features(train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor,
                      test_labels: torch.Tensor, *, k: int = 20, temperature: float = 0.07,
                      seed: int = 0, num_classes: int | None = None,
                      l2_grid: tuple[float, ...] = L2_GRID, groups: torch.Tensor | None = None,
                      latest: bool = False, gap: int = 0) -> dict[str, float]:
    """``{"knn_top1", "linear_top1", "linear_l2"}`` (percent; the probe's chosen L2) from features;
    ``groups`` / ``latest`` / ``gap`` choose the rows that pick the L2 (``holdout_split``)."""
    if (train_labels < 0).any() or (test_labels < 0).any():
        raise ValueError("evaluation needs labelled train and test images (labels >= 0)")
    scores = {
        "knn_top1": knn_accuracy(train_features, train_labels, test_features, test_labels, k, temperature,
                                 num_classes),
    }
    details: dict[str, float] = {}
    scores["linear_top1"] = linear_probe(train_features, train_labels, test_features, test_labels, seed=seed,
                                         num_classes=num_classes, l2_grid=l2_grid, groups=groups, latest=latest,
                                         gap=gap, details=details)
    scores["linear_l2"] = details["l2"]
    return scores
