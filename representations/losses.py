"""Losses of the suite: InfoNCE family, DINO self-distillation, Sinkhorn cluster contrast, masked
reconstruction. Pure functions on batched tensors (plus a tiny ``DINOLoss`` module for its centre).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SIMILARITIES = ("dot", "cosine", "tvmf")
HARD_MODES = ("logit", "term")


# ----------------------------------------------------------------------------------------- InfoNCE


def _check_info_nce(
    query: torch.Tensor,
    keys: torch.Tensor,
    temperature: float,
    similarity: str,
    weight: torch.Tensor | None,
    extra_negatives: torch.Tensor | None,
    hard_negatives: torch.Tensor | None = None,
    hard_negative_weight: float = 1.0,
    hard_mode: str = "logit",
) -> None:
    if similarity not in SIMILARITIES:
        raise ValueError(f"unknown similarity {similarity!r}; expected one of {', '.join(SIMILARITIES)}")
    if query.dim() != 2 or keys.dim() != 2 or query.shape != keys.shape:
        raise ValueError(
            f"query and keys must both be (B, D) with the same shape, got {tuple(query.shape)} "
            f"and {tuple(keys.shape)}"
        )
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    dim = query.shape[1]
    if weight is not None and tuple(weight.shape) != (dim, dim):
        raise ValueError(f"weight must be (D, D) = ({dim}, {dim}), got {tuple(weight.shape)}")
    if extra_negatives is not None:
        shape = tuple(extra_negatives.shape)
        ok = (len(shape) == 2 and shape[1] == dim) or (
            len(shape) == 3 and shape[0] == query.shape[0] and shape[2] == dim
        )
        if not ok:
            raise ValueError(
                f"extra_negatives must be (K, {dim}) shared or ({query.shape[0]}, K, {dim}) per query, "
                f"got {shape}"
            )
    if hard_negatives is not None:
        shape = tuple(hard_negatives.shape)
        if not (len(shape) in (2, 3) and shape[0] == query.shape[0] and shape[-1] == dim):
            raise ValueError(f"hard_negatives must be ({query.shape[0]}, {dim}) or ({query.shape[0]}, K, {dim}), "
                             f"got {shape}")
        if hard_mode not in HARD_MODES:
            raise ValueError(f"hard_mode must be 'logit' or 'term', got {hard_mode!r}")
        if hard_mode == "term" and not hard_negative_weight > 0:
            raise ValueError(f"hard_negative_weight must be > 0 in 'term' mode, got {hard_negative_weight}")


def _tvmf(cos: torch.Tensor, kappa: float) -> torch.Tensor:
    return 0.5 * (1.0 + cos) / (1.0 + kappa * (1.0 - cos))


def info_nce_logits(
    query: torch.Tensor,
    keys: torch.Tensor,
    *,
    temperature: float = 1.0,
    similarity: str = "dot",
    weight: torch.Tensor | None = None,
    extra_negatives: torch.Tensor | None = None,
    extra_negative_weight: float = 1.0,
    batch_negatives: bool = True,
    hard_negatives: torch.Tensor | None = None,
    hard_negative_weight: float = 1.0,
    hard_mode: str = "logit",
    kappa: float = 1.0 / 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (B, P + K + H) and labels (B,) of the InfoNCE classification problem.

    ``similarity="tvmf"`` is MiCL's t-vMF similarity of L2-normalised vectors,
    0.5 (1 + cos) / (1 + kappa (1 - cos)) (``kappa`` = 1/64 in the official code): in [0, 1],
    1 at cos = 1, more peaked around cos = 1 as kappa grows; kappa = 0 is (1 + cos) / 2.

    Columns, in order: the keys (P = B, query i against key j, positive j = i; or P = 1, only the
    own key, when ``batch_negatives=False`` as in MoCo, whose negatives are its queue); the extra
    negatives (K; a shared (K, D) queue or per-query (B, K, D)), multiplied by
    ``extra_negative_weight`` before the temperature; the hard negatives (H; per query, (B, D) or
    (B, H, D)) weighted by alpha = ``hard_negative_weight``: ``hard_mode="logit"`` multiplies the
    similarity inside the logit, alpha * s / t (the saliency paper's official code), ``"term"``
    multiplies the term, alpha * exp(s / t), i.e. adds log(alpha) to the logit. ``labels`` holds the
    positive's column, so ``(logits.argmax(1) == labels).float().mean()`` is the accuracy.
    """
    _check_info_nce(query, keys, temperature, similarity, weight, extra_negatives, hard_negatives,
                    hard_negative_weight, hard_mode)
    if similarity == "tvmf" and weight is not None:
        raise ValueError("similarity='tvmf' takes no bilinear weight")
    if similarity == "tvmf" and not kappa >= 0:
        raise ValueError(f"kappa must be >= 0, got {kappa}")
    if similarity in ("cosine", "tvmf"):
        query = F.normalize(query, dim=-1)
        keys = F.normalize(keys, dim=-1)
        if extra_negatives is not None:
            extra_negatives = F.normalize(extra_negatives, dim=-1)
        if hard_negatives is not None:
            hard_negatives = F.normalize(hard_negatives, dim=-1)
    projected = query if weight is None else query @ weight
    if batch_negatives:
        parts = [projected @ keys.T]
        labels = torch.arange(query.shape[0], device=query.device)
    else:
        parts = [(projected * keys).sum(dim=1, keepdim=True)]
        labels = torch.zeros(query.shape[0], dtype=torch.long, device=query.device)
    if extra_negatives is not None:
        if extra_negatives.dim() == 2:
            extra = projected @ extra_negatives.T
        else:
            extra = torch.einsum("bd,bkd->bk", projected, extra_negatives)
        parts.append(extra * extra_negative_weight)
    logits = torch.cat(parts, dim=1)
    if similarity == "tvmf":
        logits = _tvmf(logits, kappa)
    logits = logits / temperature
    if hard_negatives is not None:
        hard = hard_negatives if hard_negatives.dim() == 3 else hard_negatives[:, None]
        sim = torch.einsum("bd,bkd->bk", projected, hard)
        if similarity == "tvmf":
            sim = _tvmf(sim, kappa)
        if hard_mode == "logit":
            hard_logits = sim * hard_negative_weight / temperature
        else:
            hard_logits = sim / temperature + math.log(hard_negative_weight)
        logits = torch.cat([logits, hard_logits], dim=1)
    return logits, labels


def info_nce(
    query: torch.Tensor,
    keys: torch.Tensor,
    *,
    temperature: float = 1.0,
    similarity: str = "dot",
    weight: torch.Tensor | None = None,
    extra_negatives: torch.Tensor | None = None,
    extra_negative_weight: float = 1.0,
    symmetric: bool = False,
    batch_negatives: bool = True,
    hard_negatives: torch.Tensor | None = None,
    hard_negative_weight: float = 1.0,
    hard_mode: str = "logit",
    kappa: float = 1.0 / 64,
) -> torch.Tensor:
    """Mean InfoNCE loss: each query must pick its own key among the negatives.

    loss_i = -s(q_i, k_i)/t + log( sum_j exp(s(q_i, k_j)/t) + sum_n exp(beta * s(q_i, n)/t)
                                   + sum_h exp(alpha * s(q_i, h)/t) ),
    with s = q . k ("dot"), cos(q, k) ("cosine", all vectors L2-normalised first), MiCL's t-vMF
    0.5 (1 + cos) / (1 + kappa (1 - cos)) ("tvmf"), or q W k^T when
    ``weight`` W is given (CURL's bilinear form, applied after normalisation). The other keys of the
    batch are negatives unless ``batch_negatives=False`` (MoCo: only the queue). ``extra_negatives``
    n (weight beta = ``extra_negative_weight``) are shared (K, D) (a MoCo queue) or per query
    (B, K, D). ``hard_negatives`` h are per query, weighted by alpha = ``hard_negative_weight``
    inside the logit as above (``hard_mode="logit"``, Chin et al. WACV 2024's official code,
    ``moco/builder.py``: the hard negative's similarity times alpha, then divided by T) or on the
    term, alpha * exp(s/t) (``hard_mode="term"``). This is the one place hard negatives are weighted.

    Cross-entropy over logits (logsumexp with max subtraction) keeps this stable for large logits.
    ``symmetric=True`` averages this with the keys -> queries direction (keys as anchors against all
    queries, W transposed, the same extra and hard negatives).
    """
    options = dict(
        temperature=temperature,
        similarity=similarity,
        extra_negatives=extra_negatives,
        extra_negative_weight=extra_negative_weight,
        batch_negatives=batch_negatives,
        hard_negatives=hard_negatives,
        hard_negative_weight=hard_negative_weight,
        hard_mode=hard_mode,
        kappa=kappa,
    )
    logits, labels = info_nce_logits(query, keys, weight=weight, **options)
    loss = F.cross_entropy(logits, labels)
    if not symmetric:
        return loss
    back_weight = None if weight is None else weight.T
    logits_back, labels_back = info_nce_logits(keys, query, weight=back_weight, **options)
    return 0.5 * (loss + F.cross_entropy(logits_back, labels_back))


# -------------------------------------------------------------------------------------------- DINO


def _views(x: torch.Tensor, name: str) -> torch.Tensor:
    if x.dim() == 2:
        return x[None]
    if x.dim() != 3:
        raise ValueError(f"{name} must be (B, K) or (views, B, K), got shape {tuple(x.shape)}")
    return x


def dino_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    center: torch.Tensor | None = None,
    *,
    student_temp: float = 0.1,
    teacher_temp: float = 0.04,
) -> torch.Tensor:
    """Cross-entropy of sharpened, centred teacher distributions and the student's, over view pairs.

    ``student`` (Vs, B, K) and ``teacher`` (Vt, B, K) are prototype logits (2-D = one view). The
    teacher target is softmax((t - center) / teacher_temp), detached: centring stops one prototype
    from taking over, the low temperature sharpens, and together they avoid collapse. Every
    (teacher view, student view) pair is used except same-view pairs when the student has more than
    one view (its first Vt views are the teacher's views, as in DINO multi-crop); the loss is the
    mean over pairs and samples.
    """
    s_views, t_views = _views(student, "student"), _views(teacher, "teacher")
    if s_views.shape[1:] != t_views.shape[1:]:
        raise ValueError(
            f"student and teacher must share (B, K), got {tuple(s_views.shape[1:])} "
            f"and {tuple(t_views.shape[1:])}"
        )
    if not (student_temp > 0 and teacher_temp > 0):
        raise ValueError(f"temperatures must be > 0, got student {student_temp}, teacher {teacher_temp}")
    t = t_views.detach()
    if center is not None:
        t = t - center.detach().reshape(1, 1, -1)
    targets = F.softmax(t / teacher_temp, dim=-1)
    log_probs = F.log_softmax(s_views / student_temp, dim=-1)
    # cross[i, j, b] = -sum_k targets[i, b, k] * log_probs[j, b, k]
    cross = -torch.einsum("ibk,jbk->ijb", targets, log_probs)
    pair = torch.ones(t_views.shape[0], s_views.shape[0], dtype=torch.bool, device=cross.device)
    if s_views.shape[0] > 1:
        same = torch.arange(min(t_views.shape[0], s_views.shape[0]), device=cross.device)
        pair[same, same] = False
    if not bool(pair.any()):
        raise ValueError("no (teacher view, student view) pair left after skipping same-view pairs")
    return cross[pair].mean()


class DINOLoss(nn.Module):
    """``dino_loss`` with a running teacher centre (EMA of the teacher's mean logits), updated after
    each training forward; the centre is a buffer so it is checkpointed with the model."""

    center: torch.Tensor

    def __init__(
        self,
        out_dim: int,
        *,
        student_temp: float = 0.1,
        teacher_temp: float = 0.04,
        center_momentum: float = 0.9,
    ) -> None:
        super().__init__()
        if not 0.0 <= center_momentum <= 1.0:
            raise ValueError(f"center_momentum must be in [0, 1], got {center_momentum}")
        self.student_temp = student_temp
        self.teacher_temp = teacher_temp
        self.center_momentum = center_momentum
        self.register_buffer("center", torch.zeros(1, out_dim))

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        loss = dino_loss(
            student, teacher, self.center, student_temp=self.student_temp, teacher_temp=self.teacher_temp
        )
        if self.training:
            self.update_center(teacher)
        return loss

    @torch.no_grad()
    def update_center(self, teacher: torch.Tensor) -> None:
        """center <- m * center + (1 - m) * mean teacher logits (averaged across processes under DDP)."""
        batch_mean = teacher.detach().reshape(-1, teacher.shape[-1]).float().mean(dim=0, keepdim=True)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(batch_mean)
            batch_mean /= torch.distributed.get_world_size()
        momentum = self.center_momentum
        self.center.mul_(momentum).add_(batch_mean.to(self.center.dtype), alpha=1.0 - momentum)


# ----------------------------------------------------------------------------- cluster (Sinkhorn)


@torch.no_grad()
def sinkhorn_knopp(scores: torch.Tensor, epsilon: float = 0.05, iterations: int = 3) -> torch.Tensor:
    """Balanced soft assignments (B, K) of B samples to K prototypes from scores (B, K).

    Solves the entropic transport problem with uniform marginals: each row sums to 1 (a distribution
    per sample) and each column to B / K (every prototype used equally), which is what prevents
    all samples collapsing onto one cluster. Log-domain iterations, so small epsilon is safe; the
    last step normalises rows, so rows are exact and columns converge with ``iterations``.
    """
    if scores.dim() != 2:
        raise ValueError(f"scores must be (B, K), got shape {tuple(scores.shape)}")
    if not epsilon > 0 or iterations < 1:
        raise ValueError(f"need epsilon > 0 and iterations >= 1, got {epsilon}, {iterations}")
    dtype = torch.float64 if scores.dtype == torch.float64 else torch.float32
    batch, k = scores.shape
    log_q = scores.to(dtype) / epsilon
    log_k, log_b = math.log(k), math.log(batch)
    for _ in range(iterations):
        log_q = log_q - torch.logsumexp(log_q, dim=0, keepdim=True) - log_k  # prototypes: 1/K each
        log_q = log_q - torch.logsumexp(log_q, dim=1, keepdim=True) - log_b  # samples: 1/B each
    return torch.exp(log_q + log_b)


def swapped_prediction_loss(
    scores_a: torch.Tensor,
    scores_b: torch.Tensor,
    *,
    temperature: float = 0.1,
    epsilon: float = 0.05,
    iterations: int = 3,
    codes_a: torch.Tensor | None = None,
    codes_b: torch.Tensor | None = None,
) -> torch.Tensor:
    """SwAV-style cluster contrast: predict view b's balanced assignment from view a, and vice versa.

    ``scores_*`` (B, K) are similarities of each view to shared prototypes. Codes are the
    Sinkhorn-Knopp assignments of the other view (detached), unless given; the loss is
    -0.5 * mean(sum_k q_b log p_a + sum_k q_a log p_b), p = softmax(scores / temperature).
    Consistent assignments across views cluster instances without negatives.
    """
    if scores_a.dim() != 2 or scores_a.shape != scores_b.shape:
        raise ValueError(
            f"scores_a and scores_b must both be (B, K) with the same shape, got {tuple(scores_a.shape)} "
            f"and {tuple(scores_b.shape)}"
        )
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if codes_a is None:
        codes_a = sinkhorn_knopp(scores_a.detach(), epsilon, iterations)
    if codes_b is None:
        codes_b = sinkhorn_knopp(scores_b.detach(), epsilon, iterations)
    for name, codes in (("codes_a", codes_a), ("codes_b", codes_b)):
        if codes.shape != scores_a.shape:
            raise ValueError(f"{name} must be {tuple(scores_a.shape)}, got {tuple(codes.shape)}")
    log_p_a = F.log_softmax(scores_a / temperature, dim=1)
    log_p_b = F.log_softmax(scores_b / temperature, dim=1)
    codes_a, codes_b = codes_a.detach().to(log_p_a.dtype), codes_b.detach().to(log_p_b.dtype)
    return -0.5 * ((codes_b * log_p_a).sum(1).mean() + (codes_a * log_p_b).sum(1).mean())


# -------------------------------------------------------------------------- masked reconstruction


RECONSTRUCTION_LOSSES = ("l1", "l2")


def masked_reconstruction_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    *,
    loss: str = "l1",
    normalize_target: bool = False,
    eps: float = 1e-6,
) -> torch.Tensor:
    """Mean L1 / L2 error of ``pred`` vs ``target`` (..., D) over masked elements only.

    ``mask`` (True / 1 = masked, counted in the loss) is per patch, shaped like ``pred.shape[:-1]``
    (error averaged over the D values of each patch, then over masked patches), or per element,
    shaped like ``pred``. Visible content is trivially copyable, so scoring it would only dilute
    the signal. ``normalize_target`` standardises each target patch over its last dim
    ((x - mean) / sqrt(var + eps), population variance) as in MAE, which emphasises local
    structure over brightness. L2 is the squared error. The target is a constant (detached).
    Returns 0 (with a graph) if nothing is masked.
    """
    if loss not in RECONSTRUCTION_LOSSES:
        raise ValueError(f"unknown reconstruction loss {loss!r}; expected 'l1' or 'l2'")
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    if pred.dim() < 1 or mask.shape not in (pred.shape, pred.shape[:-1]):
        raise ValueError(
            f"mask must be shaped like pred {tuple(pred.shape)} or its patches {tuple(pred.shape[:-1])}, "
            f"got {tuple(mask.shape)}"
        )
    target = target.detach()
    if normalize_target:
        var, mean = torch.var_mean(target, dim=-1, keepdim=True, correction=0)
        target = (target - mean) / torch.sqrt(var + eps)
    diff = pred - target
    error = diff.abs() if loss == "l1" else diff.square()
    if mask.shape != pred.shape:
        error = error.mean(dim=-1)
    weights = mask.to(error.dtype)
    return (error * weights).sum() / weights.sum().clamp(min=1.0)
