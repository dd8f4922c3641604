"""Losses against naive float64 loop implementations, known values, gradients and input checks."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from representations.losses import (
    DINOLoss,
    dino_loss,
    info_nce,
    info_nce_logits,
    masked_reconstruction_loss,
    sinkhorn_knopp,
    swapped_prediction_loss,
)

# ------------------------------------------------------------------------------ naive references


def _dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b))


def _bilinear(a: list[float], w: list[list[float]] | None, b: list[float]) -> float:
    if w is None:
        return _dot(a, b)
    return sum(a[d] * w[d][e] * b[e] for d in range(len(a)) for e in range(len(b)))


def _unit(v: list[float]) -> list[float]:
    norm = math.sqrt(_dot(v, v))
    return [x / max(norm, 1e-12) for x in v]


def _log_sum_exp(values: list[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def naive_info_nce_one_way(q, k, temperature, similarity, w, extra, alpha) -> float:
    q, k = q.tolist(), k.tolist()
    w = None if w is None else w.tolist()
    extra = None if extra is None else extra.tolist()
    if similarity == "cosine":
        q, k = [_unit(v) for v in q], [_unit(v) for v in k]
        if extra is not None:
            extra = [_unit(v) if not isinstance(v[0], list) else [_unit(u) for u in v] for v in extra]
    total = 0.0
    for i in range(len(q)):
        row = [_bilinear(q[i], w, k[j]) / temperature for j in range(len(k))]
        if extra is not None:
            negatives = extra[i] if isinstance(extra[0][0], list) else extra
            row += [alpha * _bilinear(q[i], w, n) / temperature for n in negatives]
        total += -row[i] + _log_sum_exp(row)
    return total / len(q)


def naive_info_nce(q, k, temperature=1.0, similarity="dot", w=None, extra=None, alpha=1.0, symmetric=False):
    forward = naive_info_nce_one_way(q, k, temperature, similarity, w, extra, alpha)
    if not symmetric:
        return forward
    backward = naive_info_nce_one_way(k, q, temperature, similarity, None if w is None else w.T, extra, alpha)
    return 0.5 * (forward + backward)


def _softmax(values: list[float]) -> list[float]:
    lse = _log_sum_exp(values)
    return [math.exp(v - lse) for v in values]


def naive_dino(student, teacher, center, student_temp, teacher_temp) -> float:
    s = student.tolist() if student.dim() == 3 else [student.tolist()]
    t = teacher.tolist() if teacher.dim() == 3 else [teacher.tolist()]
    c = [0.0] * len(s[0][0]) if center is None else center.flatten().tolist()
    total, pairs = 0.0, 0
    for i in range(len(t)):
        for j in range(len(s)):
            if len(s) > 1 and i == j:
                continue
            for b in range(len(s[0])):
                target = _softmax([(x - cc) / teacher_temp for x, cc in zip(t[i][b], c)])
                logits = [x / student_temp for x in s[j][b]]
                lse = _log_sum_exp(logits)
                total += -sum(p * (z - lse) for p, z in zip(target, logits))
                pairs += 1
    return total / pairs


def naive_sinkhorn(scores, epsilon, iterations):
    rows = [[math.exp(x / epsilon) for x in r] for r in scores.tolist()]
    batch, k = len(rows), len(rows[0])
    for _ in range(iterations):
        for c in range(k):
            col = sum(rows[b][c] for b in range(batch))
            for b in range(batch):
                rows[b][c] /= col * k
        for b in range(batch):
            row = sum(rows[b])
            rows[b] = [x / (row * batch) for x in rows[b]]
    return torch.tensor([[x * batch for x in r] for r in rows], dtype=torch.float64)


def naive_swapped(scores_a, scores_b, codes_a, codes_b, temperature) -> float:
    total = 0.0
    a, b, qa, qb = scores_a.tolist(), scores_b.tolist(), codes_a.tolist(), codes_b.tolist()
    for i in range(len(a)):
        la = [x / temperature for x in a[i]]
        lb = [x / temperature for x in b[i]]
        lse_a, lse_b = _log_sum_exp(la), _log_sum_exp(lb)
        total += sum(q * (z - lse_a) for q, z in zip(qb[i], la))
        total += sum(q * (z - lse_b) for q, z in zip(qa[i], lb))
    return -0.5 * total / len(a)


def naive_reconstruction(pred, target, mask, loss, normalize_target, eps=1e-6) -> float:
    p, t, m = pred.reshape(-1, pred.shape[-1]).tolist(), target.reshape(-1, pred.shape[-1]).tolist(), mask
    per_element = mask.shape == pred.shape
    m = mask.reshape(len(p), -1).tolist() if per_element else [[x] for x in mask.reshape(-1).tolist()]
    total, count = 0.0, 0.0
    for row in range(len(p)):
        target_row = t[row]
        if normalize_target:
            mean = sum(target_row) / len(target_row)
            var = sum((x - mean) ** 2 for x in target_row) / len(target_row)
            target_row = [(x - mean) / math.sqrt(var + eps) for x in target_row]
        errors = [abs(a - b) if loss == "l1" else (a - b) ** 2 for a, b in zip(p[row], target_row)]
        if per_element:
            total += sum(e * w for e, w in zip(errors, m[row]))
            count += sum(m[row])
        else:
            total += m[row][0] * sum(errors) / len(errors)
            count += m[row][0]
    return total / max(count, 1.0)


# ------------------------------------------------------------------------------------------ InfoNCE

EXTRA_KINDS = (None, "shared", "per_query")


def _inputs(batch=5, dim=4, extra_kind=None, k=3, seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, dim, generator=g, dtype=torch.float64)
    keys = torch.randn(batch, dim, generator=g, dtype=torch.float64)
    w = torch.randn(dim, dim, generator=g, dtype=torch.float64)
    extra = None
    if extra_kind == "shared":
        extra = torch.randn(k, dim, generator=g, dtype=torch.float64)
    elif extra_kind == "per_query":
        extra = torch.randn(batch, k, dim, generator=g, dtype=torch.float64)
    tensors = [q, keys, w] + ([extra] if extra is not None else [])
    for x in tensors:
        x.requires_grad_(requires_grad)
    return q, keys, w, extra


@pytest.mark.parametrize(
    "similarity,use_weight,extra_kind,symmetric",
    list(itertools.product(("dot", "cosine"), (False, True), EXTRA_KINDS, (False, True))),
)
def test_info_nce_matches_naive_loops(similarity, use_weight, extra_kind, symmetric):
    q, keys, w, extra = _inputs(extra_kind=extra_kind)
    w = w if use_weight else None
    got = info_nce(
        q, keys, temperature=0.3, similarity=similarity, weight=w, extra_negatives=extra,
        extra_negative_weight=2.0, symmetric=symmetric,
    )
    want = naive_info_nce(q, keys, 0.3, similarity, w, extra, 2.0, symmetric)
    assert got.dtype == torch.float64
    assert got.item() == pytest.approx(want, rel=1e-10, abs=1e-10)


@pytest.mark.parametrize(
    "similarity,use_weight,extra_kind,symmetric",
    list(itertools.product(("dot", "cosine"), (False, True), EXTRA_KINDS, (False, True))),
)
def test_info_nce_gradcheck(similarity, use_weight, extra_kind, symmetric):
    q, keys, w, extra = _inputs(batch=3, dim=3, k=2, extra_kind=extra_kind, requires_grad=True)
    inputs = (q, keys, w) + ((extra,) if extra is not None else ())

    def fn(q, keys, w, extra=None):
        return info_nce(
            q, keys, temperature=0.5, similarity=similarity, weight=w if use_weight else None,
            extra_negatives=extra, extra_negative_weight=2.0, symmetric=symmetric,
        )

    assert torch.autograd.gradcheck(fn, inputs)


def test_info_nce_identical_logits_give_log_batch():
    q = torch.zeros(8, 6)
    keys = torch.randn(8, 6)
    assert info_nce(q, keys).item() == pytest.approx(math.log(8), rel=1e-6)
    queue = torch.randn(5, 6)
    assert info_nce(q, keys, extra_negatives=queue).item() == pytest.approx(math.log(13), rel=1e-6)
    same = torch.ones(4, 3)
    assert info_nce(same, same, similarity="cosine", symmetric=True).item() == pytest.approx(math.log(4))


def test_info_nce_stable_for_huge_logits():
    q, keys, _, extra = _inputs(batch=6, dim=5, extra_kind="shared")
    loss = info_nce(q.float() * 1e4, keys.float() * 1e4, extra_negatives=extra.float() * 1e4)
    assert torch.isfinite(loss)
    want = naive_info_nce(q * 1e4, keys * 1e4, extra=extra * 1e4)
    assert loss.item() == pytest.approx(want, rel=1e-4)


def test_info_nce_logits_labels_and_accuracy():
    keys = torch.eye(4)
    logits, labels = info_nce_logits(keys * 5, keys, temperature=0.5, extra_negatives=torch.zeros(4, 2, 4))
    assert logits.shape == (4, 6)
    assert labels.tolist() == [0, 1, 2, 3]
    assert (logits.argmax(1) == labels).float().mean().item() == 1.0
    assert logits[0, 0].item() == pytest.approx(10.0)


def test_info_nce_extra_weight_scales_logits():
    q, keys, _, extra = _inputs(extra_kind="per_query")
    plain, _ = info_nce_logits(q, keys, extra_negatives=extra)
    doubled, _ = info_nce_logits(q, keys, extra_negatives=extra, extra_negative_weight=2.0)
    torch.testing.assert_close(doubled[:, 5:], 2 * plain[:, 5:])
    torch.testing.assert_close(doubled[:, :5], plain[:, :5])


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(similarity="euclid"), "similarity"),
        (dict(keys=torch.randn(4, 5)), "same shape"),
        (dict(query=torch.randn(5)), "same shape"),
        (dict(weight=torch.randn(3, 4)), "weight"),
        (dict(extra_negatives=torch.randn(3, 5)), "extra_negatives"),
        (dict(extra_negatives=torch.randn(2, 3, 4)), "extra_negatives"),
        (dict(temperature=0.0), "temperature"),
    ],
)
def test_info_nce_rejects_bad_inputs(kwargs, match):
    args = dict(query=torch.randn(5, 4), keys=torch.randn(5, 4))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        info_nce(args.pop("query"), args.pop("keys"), **args)


# --------------------------------------------------------------------------------------------- DINO


@pytest.mark.parametrize("views", [(1, 1), (2, 2), (4, 2)])
def test_dino_matches_naive(views):
    g = torch.Generator().manual_seed(1)
    vs, vt = views
    student = torch.randn(vs, 3, 6, generator=g, dtype=torch.float64)
    teacher = torch.randn(vt, 3, 6, generator=g, dtype=torch.float64)
    center = torch.randn(1, 6, generator=g, dtype=torch.float64)
    got = dino_loss(student, teacher, center, student_temp=0.1, teacher_temp=0.04)
    assert got.item() == pytest.approx(naive_dino(student, teacher, center, 0.1, 0.04), rel=1e-10)


def test_dino_known_value_and_gradcheck():
    teacher = torch.randn(2, 4, 7, dtype=torch.float64)
    assert dino_loss(torch.zeros(2, 4, 7), teacher.float()).item() == pytest.approx(math.log(7), rel=1e-6)
    student = torch.randn(3, 2, 5, dtype=torch.float64, requires_grad=True)
    teacher = torch.randn(2, 2, 5, dtype=torch.float64)
    center = torch.randn(1, 5, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda s: dino_loss(s, teacher, center, teacher_temp=0.2), (student,))


def test_dino_module_updates_center_by_ema():
    loss_fn = DINOLoss(4, center_momentum=0.9)
    teacher = torch.randn(2, 3, 4)
    student = torch.randn(2, 3, 4)
    first = loss_fn(student, teacher)
    assert first.item() == pytest.approx(dino_loss(student, teacher).item())
    torch.testing.assert_close(loss_fn.center, 0.1 * teacher.reshape(-1, 4).mean(0, keepdim=True))
    loss_fn.eval()
    before = loss_fn.center.clone()
    loss_fn(student, teacher)
    torch.testing.assert_close(loss_fn.center, before)
    assert "center" in loss_fn.state_dict()


def test_dino_rejects_mismatched_views():
    with pytest.raises(ValueError, match="share"):
        dino_loss(torch.randn(2, 3, 4), torch.randn(2, 3, 5))


# ----------------------------------------------------------------------------------------- Sinkhorn


def test_sinkhorn_matches_naive_and_marginals():
    g = torch.Generator().manual_seed(2)
    scores = torch.randn(12, 4, generator=g, dtype=torch.float64) * 0.2
    q = sinkhorn_knopp(scores, epsilon=0.1, iterations=3)
    torch.testing.assert_close(q, naive_sinkhorn(scores, 0.1, 3))
    torch.testing.assert_close(q.sum(1), torch.ones(12, dtype=torch.float64))
    balanced = sinkhorn_knopp(scores, epsilon=0.1, iterations=200)
    torch.testing.assert_close(balanced.sum(1), torch.ones(12, dtype=torch.float64))
    torch.testing.assert_close(balanced.sum(0), torch.full((4,), 3.0, dtype=torch.float64), atol=1e-6, rtol=0)


def test_sinkhorn_stable_with_small_epsilon():
    scores = torch.randn(64, 10) * 5
    q = sinkhorn_knopp(scores, epsilon=0.01, iterations=10)
    assert torch.isfinite(q).all()
    torch.testing.assert_close(q.sum(1), torch.ones(64), atol=1e-5, rtol=0)


def test_swapped_prediction_matches_naive_and_gradcheck():
    g = torch.Generator().manual_seed(3)
    a = torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    qa, qb = sinkhorn_knopp(a, 0.05, 3), sinkhorn_knopp(b, 0.05, 3)
    got = swapped_prediction_loss(a, b, temperature=0.1)
    assert got.item() == pytest.approx(naive_swapped(a, b, qa, qb, 0.1), rel=1e-10)
    given = swapped_prediction_loss(a, b, temperature=0.1, codes_a=qa, codes_b=qb)
    assert given.item() == pytest.approx(got.item(), rel=1e-12)
    # codes are constants of the loss, so check gradients with fixed codes
    assert torch.autograd.gradcheck(
        lambda x, y: swapped_prediction_loss(x, y, temperature=0.5, codes_a=qa, codes_b=qb), (a, b)
    )


def test_swapped_prediction_rejects_bad_shapes():
    with pytest.raises(ValueError, match="same shape"):
        swapped_prediction_loss(torch.randn(3, 4), torch.randn(3, 5))
    with pytest.raises(ValueError, match="codes_a"):
        swapped_prediction_loss(torch.randn(3, 4), torch.randn(3, 4), codes_a=torch.rand(3, 3))


# ------------------------------------------------------------------------------------ reconstruction


@pytest.mark.parametrize(
    "loss,normalize,per_element", list(itertools.product(("l1", "l2"), (False, True), (False, True)))
)
def test_reconstruction_matches_naive_and_gradcheck(loss, normalize, per_element):
    g = torch.Generator().manual_seed(4)
    pred = torch.randn(2, 5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.randn(2, 5, 3, generator=g, dtype=torch.float64)
    shape = pred.shape if per_element else pred.shape[:-1]
    mask = torch.rand(shape, generator=g) < 0.5
    mask.view(-1)[0] = True
    got = masked_reconstruction_loss(pred, target, mask, loss=loss, normalize_target=normalize)
    assert got.item() == pytest.approx(naive_reconstruction(pred, target, mask, loss, normalize), rel=1e-10)
    assert torch.autograd.gradcheck(
        lambda p: masked_reconstruction_loss(p, target, mask, loss=loss, normalize_target=normalize), (pred,)
    )


def test_reconstruction_ignores_visible_and_handles_empty_mask():
    pred = torch.zeros(2, 4, 3, requires_grad=True)
    target = torch.ones(2, 4, 3)
    mask = torch.zeros(2, 4, dtype=torch.bool)
    empty = masked_reconstruction_loss(pred, target, mask)
    assert empty.item() == 0.0
    empty.backward()
    mask[0, 1] = True
    target[1] = 100.0  # visible only: must not matter
    assert masked_reconstruction_loss(pred, target, mask, loss="l2").item() == pytest.approx(1.0)


@pytest.mark.parametrize(
    "kwargs,match",
    [(dict(loss="huber"), "reconstruction loss"), (dict(target=torch.zeros(2, 4, 2)), "shapes differ"),
     (dict(mask=torch.ones(2, 3, dtype=torch.bool)), "mask")],
)
def test_reconstruction_rejects_bad_inputs(kwargs, match):
    args = dict(pred=torch.zeros(2, 4, 3), target=torch.zeros(2, 4, 3), mask=torch.ones(2, 4, dtype=torch.bool))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        masked_reconstruction_loss(args.pop("pred"), args.pop("target"), args.pop("mask"), **args)


def test_moco_form_with_hard_negatives_matches_the_official_builder():
    """builder.py: logits = cat([q.k, q.queue, alpha * q.t]) / T, label 0 ("logit" mode); the
    "term" mode adds log(alpha) to the hard logit instead (alpha * exp(s / T) in the denominator)."""
    gen = torch.Generator().manual_seed(3)
    q, k = (F.normalize(torch.randn(5, 8, generator=gen), dim=1) for _ in range(2))
    queue = F.normalize(torch.randn(7, 8, generator=gen), dim=1)
    hard = F.normalize(torch.randn(5, 8, generator=gen), dim=1)
    alpha, temp = 2.0, 0.2
    for mode in ("logit", "term"):
        got = info_nce(q, k, temperature=temp, batch_negatives=False, extra_negatives=queue, hard_negatives=hard,
                       hard_negative_weight=alpha, hard_mode=mode)
        want = 0.0
        for i in range(5):
            pos = float(q[i] @ k[i]) / temp
            negs = [float(q[i] @ n) / temp for n in queue]
            s = float(q[i] @ hard[i])
            hard_logit = alpha * s / temp if mode == "logit" else s / temp + math.log(alpha)
            terms = [pos, *negs, hard_logit]
            want += -pos + math.log(sum(math.exp(t) for t in terms))
        assert got.item() == pytest.approx(want / 5, rel=1e-5), mode
    logits, labels = info_nce_logits(q, k, batch_negatives=False, extra_negatives=queue, hard_negatives=hard)
    assert logits.shape == (5, 1 + 7 + 1) and (labels == 0).all()


def test_tvmf_similarity_is_the_micl_formula():
    """compute_tSP of models_mae.py: 0.5 (1 + s) / (1 + kappa (1 - s)) / T on cosine s."""
    gen = torch.Generator().manual_seed(4)
    q, k = torch.randn(6, 5, generator=gen), torch.randn(6, 5, generator=gen)
    logits, _ = info_nce_logits(q, k, temperature=0.07, similarity="tvmf", kappa=1 / 64)
    s = F.normalize(q, dim=1) @ F.normalize(k, dim=1).T
    assert torch.allclose(logits, 0.5 * (1 + s) / (1 + (1 - s) / 64) / 0.07, atol=1e-5)
    with pytest.raises(ValueError, match="bilinear"):
        info_nce_logits(q, k, similarity="tvmf", weight=torch.eye(5))
