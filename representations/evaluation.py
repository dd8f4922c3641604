"""Frozen-feature evaluation of a pretrained encoder: weighted kNN (cosine, k=20) and a linear probe.

Both read features computed once with the encoder in eval mode. Accuracies are percentages.
The linear probe standardises features with the training statistics and trains one linear layer
with AdamW + cosine lr on its own seeded generator, so evaluating never touches a training stream.
"""

from __future__ import annotations

import math
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


def linear_probe(train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor,
                 test_labels: torch.Tensor, *, epochs: int = 100, lr: float = 1e-2, weight_decay: float = 1e-4,
                 batch_size: int = 256, seed: int = 0, num_classes: int | None = None) -> float:
    """Top-1 (%) of a linear classifier trained on frozen, standardised features."""
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    num_classes = num_classes or int(max(train_labels.max(), test_labels.max()).item()) + 1
    mean = train_features.mean(dim=0, keepdim=True)
    std = train_features.std(dim=0, keepdim=True).clamp(min=1e-6)
    x_train = ((train_features - mean) / std).float()
    x_test = ((test_features - mean) / std).float()
    y_train = train_labels.long()
    gen = torch.Generator().manual_seed(seed)
    layer = nn.Linear(x_train.shape[1], num_classes)
    with torch.no_grad():
        bound = 1.0 / math.sqrt(x_train.shape[1])
        layer.weight.uniform_(-bound, bound, generator=gen)
        layer.bias.zero_()
    optimizer = torch.optim.AdamW(layer.parameters(), lr=lr, weight_decay=weight_decay)
    n = x_train.shape[0]
    steps_per_epoch = max(1, math.ceil(n / batch_size))
    total = epochs * steps_per_epoch
    step = 0
    with torch.enable_grad():
        for _ in range(epochs):
            order = torch.randperm(n, generator=gen)
            for start in range(0, n, batch_size):
                idx = order[start:start + batch_size]
                for group in optimizer.param_groups:
                    group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / total))
                loss = F.cross_entropy(layer(x_train[idx]), y_train[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
    with torch.no_grad():
        pred = layer(x_test).argmax(dim=1)
    return 100.0 * float((pred == test_labels.long()).float().mean())


def evaluate_features(train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor,
                      test_labels: torch.Tensor, *, k: int = 20, temperature: float = 0.07,
                      linear_epochs: int = 100, linear_lr: float = 1e-2, seed: int = 0,
                      num_classes: int | None = None) -> dict[str, float]:
    """``{"knn_top1", "linear_top1"}`` (percent) from precomputed features."""
    if (train_labels < 0).any() or (test_labels < 0).any():
        raise ValueError("evaluation needs labelled train and test images (labels >= 0)")
    return {
        "knn_top1": knn_accuracy(train_features, train_labels, test_features, test_labels, k, temperature,
                                 num_classes),
        "linear_top1": linear_probe(train_features, train_labels, test_features, test_labels,
                                    epochs=linear_epochs, lr=linear_lr, seed=seed, num_classes=num_classes),
    }
