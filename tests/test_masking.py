"""Mask generators: exact counts, placement rules, determinism, ratio checks and CPU/CUDA equality."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from representations.masking import (
    KEEP,
    NTU_BODY_PARTS,
    RANDOM,
    ZERO,
    apply_bert_replacement,
    apply_patch_mask,
    attention_tube_mask,
    bert_replacement_plan,
    body_part_mask,
    fast_blur,
    frame_mask,
    gaussian_blur,
    hard_negative_mask,
    high_pass,
    random_patch_mask,
    random_tube_mask,
    saliency_guided_mask,
    scda_foreground,
    split_visible_groups,
    upsample_mask,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_foreground(batch=64, h=9, w=9, seed=5) -> torch.Tensor:
    g = gen(seed)
    rates = torch.rand(batch, 1, 1, generator=g)
    fg = torch.rand(batch, h, w, generator=g) < rates
    fg[0] = True  # all foreground
    fg[1] = False  # no foreground
    return fg


# -------------------------------------------------------------------------------------------- patch


@pytest.mark.parametrize("ratio", [0.0, 0.25, 0.5, 0.75, 1.0, 0.1234])
def test_random_patch_mask_exact_count(ratio):
    mask = random_patch_mask(16, 7, ratio, generator=gen())
    assert mask.shape == (16, 7, 7) and mask.dtype == torch.bool
    assert (mask.sum((1, 2)) == round(ratio * 49)).all()


def test_random_patch_mask_ratio_range_per_sample():
    mask = random_patch_mask(200, (6, 8), (0.05, 0.25), generator=gen())
    counts = mask.sum((1, 2))
    assert counts.min() >= round(0.05 * 48) and counts.max() <= round(0.25 * 48)
    assert len(set(counts.tolist())) > 3  # really drawn per sample


def test_random_patch_mask_is_uniform_over_cells():
    mask = random_patch_mask(4000, 4, 0.25, generator=gen())
    rate = mask.float().mean(0)
    assert torch.allclose(rate, torch.full_like(rate, 0.25), atol=0.04)


def test_upsample_mask_matches_loop():
    mask = random_patch_mask(2, (3, 4), 0.5, generator=gen())
    for height, width in [(6, 8), (7, 10)]:
        up = upsample_mask(mask, height, width)
        for i in range(height):
            for j in range(width):
                assert torch.equal(up[:, i, j], mask[:, i * 3 // height, j * 4 // width])


def _reference_blur(images: torch.Tensor, kernel: int, sigma: float) -> torch.Tensor:
    x = images.double()
    r = kernel // 2
    taps = torch.exp(-(torch.arange(-r, r + 1, dtype=torch.float64) ** 2) / (2 * sigma**2))
    taps = taps / taps.sum()
    c = x.shape[1]
    x = F.pad(x, (r, r, r, r), mode="reflect")
    x = F.conv2d(x, taps.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(x, taps.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def test_gaussian_blur_matches_depthwise_conv_and_keeps_dtype():
    images = torch.rand(2, 3, 40, 36, generator=gen()) * 255
    torch.testing.assert_close(gaussian_blur(images, 31, 10.0).double(), _reference_blur(images, 31, 10.0),
                               atol=1e-3, rtol=1e-5)
    as_uint8 = images.to(torch.uint8)
    out = gaussian_blur(as_uint8, 11, 5.0)
    assert out.dtype == torch.uint8
    assert (out.double() - _reference_blur(as_uint8, 11, 5.0)).abs().max() <= 0.5 + 1e-6
    constant = torch.full((1, 1, 9, 9), 7.0)
    torch.testing.assert_close(gaussian_blur(constant, 31, 10.0), constant)  # kernel wider than image


def test_high_pass_is_signed_float_residual():
    images = torch.randint(0, 256, (2, 3, 20, 20), generator=gen(), dtype=torch.uint8)
    out = high_pass(images)
    assert out.dtype == torch.float32 and (out < 0).any()
    torch.testing.assert_close(out.double(), images.double() - _reference_blur(images, 11, 5.0), atol=1e-3, rtol=0)
    assert high_pass(torch.full((1, 1, 8, 8), 3.0)).abs().max() < 1e-5


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
@pytest.mark.parametrize("fill", ["zero", "mean", "blur", "noise"])
def test_apply_patch_mask_fills_only_masked_pixels(fill, dtype):
    images = (torch.rand(3, 2, 12, 12, generator=gen(1)) * 255).to(dtype)
    mask = random_patch_mask(3, 4, 0.5, generator=gen(2))
    out = apply_patch_mask(images, mask, fill, generator=gen(3))
    assert out.dtype == dtype and out.shape == images.shape
    pixel = upsample_mask(mask, 12, 12)[:, None].expand_as(images)
    assert torch.equal(out[~pixel], images[~pixel])
    if fill == "zero":
        assert (out[pixel] == 0).all()
    elif fill == "mean":
        mean = images.double().mean((2, 3), keepdim=True).expand_as(images)
        assert (out[pixel].double() - mean[pixel]).abs().max() <= 0.5 + 1e-4
    elif fill == "blur":
        want = fast_blur(images, 31, 10.0)
        want = want.round().clamp(0, 255).to(images.dtype) if images.dtype == torch.uint8 else want
        assert torch.equal(out[pixel], want[pixel])
    else:
        assert not torch.equal(out[pixel], images[pixel])
        again = apply_patch_mask(images, mask, fill, generator=gen(3))
        assert torch.equal(out, again)


def test_apply_patch_mask_noise_statistics():
    images = torch.randn(4, 3, 32, 32, generator=gen()) * 4 + 10
    mask = torch.ones(4, 8, 8, dtype=torch.bool)
    out = apply_patch_mask(images, mask, "noise", generator=gen(1))
    assert torch.allclose(out.mean((2, 3)), images.mean((2, 3)), atol=0.5)
    assert torch.allclose(out.std((2, 3)), images.std((2, 3)), rtol=0.1)


def test_apply_patch_mask_rejects_bad_inputs():
    images = torch.zeros(2, 3, 8, 8)
    with pytest.raises(ValueError, match="fill"):
        apply_patch_mask(images, torch.zeros(2, 4, 4, dtype=torch.bool), "gray")
    with pytest.raises(ValueError, match="mask"):
        apply_patch_mask(images, torch.zeros(3, 4, 4, dtype=torch.bool))


# ----------------------------------------------------------------------------------------- saliency


def test_scda_foreground_matches_loop():
    fmap = torch.rand(3, 8, 5, 6, generator=gen()) ** 3
    fg = scda_foreground(fmap, std_factor=0.6)
    for b in range(3):
        sal = [[sum(fmap[b, c, i, j].item() for c in range(8)) for j in range(6)] for i in range(5)]
        cells = [v for row in sal for v in row]
        mean = sum(cells) / len(cells)
        std = math.sqrt(sum((v - mean) ** 2 for v in cells) / len(cells))
        for i in range(5):
            for j in range(6):
                assert fg[b, i, j].item() == (sal[i][j] >= mean - 0.6 * std - 1e-6)
    assert not scda_foreground(fmap, std_factor=-10.0).any()


@pytest.mark.parametrize("ratio", [0.25, (0.05, 0.25), 0.9, 1.0])
def test_saliency_guided_mask_splits_in_proportion(ratio):
    fg = random_foreground()
    mask = saliency_guided_mask(fg, ratio, generator=gen())
    assert mask.shape == fg.shape
    cells = 81
    total = mask.sum((1, 2)).double()
    low, high = (ratio, ratio) if isinstance(ratio, float) else ratio
    assert total.min() >= round(low * cells) and total.max() <= round(high * cells)
    area = fg.sum((1, 2)).double()
    in_fg = (mask & fg).sum((1, 2)).double()
    in_bg = (mask & ~fg).sum((1, 2)).double()
    assert ((in_fg - total * area / cells).abs() <= 0.5 + 1e-9).all()
    assert ((in_bg - total * (cells - area) / cells).abs() <= 0.5 + 1e-9).all()


def test_hard_negative_mask_only_on_foreground():
    fg = random_foreground()
    mask = hard_negative_mask(fg, 0.55, generator=gen())
    assert not (mask & ~fg).any()
    assert (mask.sum((1, 2)) == torch.round(0.55 * fg.sum((1, 2)).double()).long()).all()


def test_hard_negative_mask_ratio_range():
    fg = random_foreground()
    mask = hard_negative_mask(fg, (0.4, 0.7), generator=gen())
    area = fg.sum((1, 2)).double()
    count = mask.sum((1, 2)).double()
    assert not (mask & ~fg).any()
    assert (count >= torch.round(0.4 * area) - 1e-9).all() and (count <= torch.round(0.7 * area) + 1e-9).all()


# ------------------------------------------------------------------------------------------- frames


def test_frame_mask_rate_and_at_least_one():
    mask = frame_mask(400, 32, 0.5, generator=gen())
    assert mask.shape == (400, 32) and mask.dtype == torch.bool
    assert abs(mask.float().mean().item() - 0.5) < 0.02
    sparse = frame_mask(500, 4, 0.01, generator=gen())
    assert (sparse.sum(1) >= 1).all()
    only_one = frame_mask(300, 6, 0.0, generator=gen())
    assert (only_one.sum(1) == 1).all()
    positions = only_one.float().argmax(1).bincount(minlength=6)
    assert positions.min() > 20  # the forced position is spread over the sequence
    assert frame_mask(3, 5, 1.0, generator=gen()).all()
    with pytest.raises(ValueError, match="p must be in"):
        frame_mask(2, 5, 1.5)


def test_bert_plan_frequencies():
    selected = torch.ones(200, 500, dtype=torch.bool)
    selected[:, :100] = False
    plan = bert_replacement_plan(selected, generator=gen())
    assert (plan[:, :100] == KEEP).all()
    chosen = plan[:, 100:]
    n = chosen.numel()
    for code, p in ((ZERO, 0.8), (RANDOM, 0.1), (KEEP, 0.1)):
        freq = (chosen == code).sum().item() / n
        assert abs(freq - p) < 6 * math.sqrt(p * (1 - p) / n) + 1e-3
    with pytest.raises(ValueError):
        bert_replacement_plan(selected, zero=0.95, random=0.1)


def test_apply_bert_replacement():
    b, length, d = 4, 6, 3
    features = torch.arange(b * length * d, dtype=torch.float64).reshape(b, length, d).requires_grad_(True)
    plan = torch.tensor([KEEP, ZERO, RANDOM] * (b * length // 3)).reshape(b, length)
    out = apply_bert_replacement(features, plan, gen())
    flat_in, flat_out = features.detach().reshape(-1, d), out.detach().reshape(-1, d)
    for i, code in enumerate(plan.reshape(-1).tolist()):
        if code == KEEP:
            assert torch.equal(flat_out[i], flat_in[i])
        elif code == ZERO:
            assert (flat_out[i] == 0).all()
        else:
            source = int(flat_out[i, 0].item()) // d
            assert source != i and torch.equal(flat_out[i], flat_in[source])
    out.sum().backward()
    assert features.grad is not None
    assert torch.equal(out, apply_bert_replacement(features, plan, gen()))
    with pytest.raises(ValueError, match="plan shape"):
        apply_bert_replacement(features, plan[:, :3], gen())


# -------------------------------------------------------------------------------------------- tubes


def test_random_tube_mask_constant_over_time():
    mask = random_tube_mask(8, 5, (4, 4), 0.75, generator=gen())
    assert mask.shape == (8, 5, 16)
    assert (mask == mask[:, :1]).all()
    assert (mask[:, 0].sum(1) == 12).all()
    assert random_tube_mask(2, 3, 10, 0.3, generator=gen()).shape == (2, 3, 10)


def test_attention_tube_mask_visible_within_top_fraction():
    attention = torch.rand(6, 3, 4, 50, generator=gen())
    mask = attention_tube_mask(attention, 0.9, 0.6, generator=gen(1))
    assert mask.shape == (6, 4, 50) and (mask == mask[:, :1]).all()
    visible = ~mask[:, 0]
    assert (visible.sum(1) == 5).all()
    score = attention.mean((1, 2))
    for b in range(6):
        top = set(sorted(range(50), key=lambda j: -score[b, j].item())[:30])
        assert set(torch.nonzero(visible[b]).flatten().tolist()) <= top
    with pytest.raises(ValueError, match="top"):
        attention_tube_mask(attention, 0.2, 0.5)


def test_attention_tube_mask_draws_vary_within_top():
    attention = torch.rand(1, 2, 2, 20, generator=gen()).expand(300, 2, 2, 20)
    visible = ~attention_tube_mask(attention, 0.9, 0.5, generator=gen())[:, 0]
    assert (visible.sum(0) > 0).sum().item() == 10  # all of the top half get used, nothing else


# ----------------------------------------------------------------------------------------- skeleton


def test_ntu_parts_partition_the_25_joints():
    joints = sorted(j for part in NTU_BODY_PARTS.values() for j in part)
    assert joints == list(range(25))
    assert set(NTU_BODY_PARTS) == {"torso", "left_arm", "right_arm", "left_leg", "right_leg"}


@pytest.mark.parametrize("k", [0, 1, 2, 5])
def test_body_part_mask_masks_whole_parts(k):
    mask = body_part_mask(50, k, generator=gen())
    assert mask.shape == (50, 25)
    for row in mask:
        full = [all(row[j] for j in part) for part in NTU_BODY_PARTS.values()]
        none = [not any(row[j] for j in part) for part in NTU_BODY_PARTS.values()]
        assert all(f or n for f, n in zip(full, none)) and sum(full) == k


def test_body_part_mask_custom_map_and_range():
    part_of_joint = torch.tensor([0, 0, 1, 1, 1, 2, -1])
    mask = body_part_mask(100, (1, 2), parts=part_of_joint, num_joints=7, generator=gen())
    assert not mask[:, 6].any()
    parts_masked = mask[:, 0].long() + mask[:, 2].long() + mask[:, 5].long()
    assert set(parts_masked.tolist()) == {1, 2}
    lists = body_part_mask(10, 1, parts=[[0, 1], [2]], num_joints=3, generator=gen())
    assert (lists.sum(1) >= 1).all()
    with pytest.raises(ValueError, match="num_parts_to_mask"):
        body_part_mask(2, 6)
    with pytest.raises(ValueError, match="outside"):
        body_part_mask(2, 1, parts=[[0, 30]], num_joints=25)


# ------------------------------------------------------------------------------------------- groups


@pytest.mark.parametrize("num_tokens,ratio", [(196, 0.9), (49, 0.75), (10, 0.5)])
def test_split_visible_groups_disjoint_sorted(num_tokens, ratio):
    idx_a, idx_b = split_visible_groups(16, num_tokens, ratio, generator=gen())
    n = int(num_tokens * (1 - ratio)) // 2 * 2 // 2  # official: len_keep = int(L * (1 - r)) // 2 * 2, halved
    assert idx_a.shape == idx_b.shape == (16, n) and idx_a.dtype == torch.long
    assert (idx_a.diff(dim=1) > 0).all() and (idx_b.diff(dim=1) > 0).all()
    both = torch.cat([idx_a, idx_b], 1)
    assert all(len(set(row.tolist())) == 2 * n for row in both)
    assert both.min() >= 0 and both.max() < num_tokens
    with pytest.raises(ValueError, match="visible"):
        split_visible_groups(2, 10, 0.95)


# ----------------------------------------------------------------------- determinism, ratios, devices

def _tie_free_attention(device) -> torch.Tensor:
    """(4, 2, 2, 30) integer-valued attention whose head/frame means are distinct per row (no top-k ties)."""
    b, h, t, n = torch.meshgrid(*(torch.arange(s) for s in (4, 2, 2, 30)), indexing="ij")
    return (((n * 37 + b * 11) % 30) * 4 + h + 2 * t).float().to(device)


GENERATORS = {
    "random_patch_mask": lambda g, d: random_patch_mask(8, 6, (0.1, 0.6), generator=g, device=d),
    "saliency_guided_mask": lambda g, d: saliency_guided_mask(random_foreground(8).to(d), (0.05, 0.25), generator=g),
    "hard_negative_mask": lambda g, d: hard_negative_mask(random_foreground(8).to(d), (0.4, 0.7), generator=g),
    "frame_mask": lambda g, d: frame_mask(8, 16, 0.3, generator=g, device=d),
    "bert_plan": lambda g, d: bert_replacement_plan(torch.ones(4, 16, dtype=torch.bool, device=d), generator=g),
    "bert_apply": lambda g, d: apply_bert_replacement(
        torch.arange(96.0, device=d).reshape(4, 8, 3), torch.full((4, 8), RANDOM, device=d), g
    ),
    "random_tube_mask": lambda g, d: random_tube_mask(4, 3, 20, (0.5, 0.9), generator=g, device=d),
    "attention_tube_mask": lambda g, d: attention_tube_mask(_tie_free_attention(d), 0.8, 0.5, generator=g),
    "body_part_mask": lambda g, d: body_part_mask(8, (1, 3), generator=g, device=d),
    "split_visible_groups": lambda g, d: split_visible_groups(8, 30, 0.6, generator=g, device=d),
    "apply_patch_mask_noise": lambda g, d: apply_patch_mask(
        torch.arange(2 * 3 * 8 * 8, dtype=torch.float32, device=d).reshape(2, 3, 8, 8),
        torch.eye(4, dtype=torch.bool, device=d).expand(2, 4, 4), "noise", generator=g,
    ),
}


def _as_tuple(x):
    return x if isinstance(x, tuple) else (x,)


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_same_generator_same_result(name):
    make = GENERATORS[name]
    first, second, other = (_as_tuple(make(gen(s), "cpu")) for s in (7, 7, 8))
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert not all(torch.equal(a, c) for a, c in zip(first, other))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_cpu_and_cuda_agree(name):
    make = GENERATORS[name]
    on_cpu, on_cuda = _as_tuple(make(gen(11), "cpu")), _as_tuple(make(gen(11), "cuda"))
    for a, b in zip(on_cpu, on_cuda):
        assert b.device.type == "cuda"
        torch.testing.assert_close(a, b.cpu(), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("bad", [-0.1, 1.5, (0.3, 0.2), (0.1, 1.2), float("nan")])
def test_ratios_outside_unit_interval_raise(bad):
    fg = random_foreground(4)
    calls = [
        lambda: random_patch_mask(2, 4, bad),
        lambda: saliency_guided_mask(fg, bad),
        lambda: random_tube_mask(2, 2, 4, bad),
        lambda: attention_tube_mask(torch.rand(2, 1, 1, 8), bad, 1.0),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="ratio"):
            call()
    if isinstance(bad, float):
        with pytest.raises(ValueError, match="ratio"):
            split_visible_groups(2, 8, bad)
        with pytest.raises(ValueError, match="top_fraction"):
            attention_tube_mask(torch.rand(2, 1, 1, 8), 0.5, bad)


# ------------------------------------------------------------ the official high-pass noise recipe

def _recipe_inputs(b=4, c=3, size=28, grid=7, seed=0):
    gen = torch.Generator().manual_seed(seed)
    images = torch.randn(b, c, size, size, generator=gen)
    cells = torch.rand(b, c, grid, grid, generator=gen) < 0.3
    noise = torch.randn(c, size // grid, size // grid, generator=gen)
    return images, cells, noise


def test_noise_recipe_query_focal_keeps_a_square_and_noises_the_rest():
    from representations.masking import QUERY_RECIPE, noise_recipe_fill

    images, cells, noise = _recipe_inputs()
    draws = torch.tensor([[0.1, 0.9, 0.0, 0.0]] * 4)  # focal (0.1 < 0.2), square at the top-left
    out, pixels = noise_recipe_fill(images, cells, QUERY_RECIPE, draws, noise)
    side = round(200 / 224 * 28)  # the official crop 200 of 224
    inside = torch.zeros(28, 28, dtype=torch.bool)
    inside[:side, :side] = True
    assert torch.equal(pixels, (~inside).expand(4, 3, 28, 28))
    assert torch.equal(out[..., :side, :side], images[..., :side, :side])
    tiled = 0.18 * noise.repeat(1, 7, 7)  # one 4x4 patch repeated in every cell, N(0, 0.18)
    assert torch.allclose(out[:, :, side:, :], tiled[None, :, side:, :].expand(4, -1, -1, -1))


def test_noise_recipe_negative_focal_fills_a_square():
    from representations.masking import NEGATIVE_RECIPE, noise_recipe_fill

    images, cells, noise = _recipe_inputs()
    draws = torch.tensor([[0.0, 0.0, 0.999, 0.999]] * 4)
    _, pixels = noise_recipe_fill(images, cells, NEGATIVE_RECIPE, draws, noise)
    side = round(130 / 224 * 28)
    want = torch.zeros(28, 28, dtype=torch.bool)
    want[28 - side:, 28 - side:] = True
    assert torch.equal(pixels, want.expand(4, 3, 28, 28))
    assert NEGATIVE_RECIPE.noise_std == 0.14


def test_noise_recipe_spatial_versus_channel_wise_cells():
    from representations.masking import QUERY_RECIPE, noise_recipe_fill, upsample_mask

    images, cells, noise = _recipe_inputs()
    spatial = torch.tensor([[0.5, 0.1, 0.0, 0.0]] * 4)  # not focal; 0.1 < 0.3: spatial
    channel = torch.tensor([[0.5, 0.5, 0.0, 0.0]] * 4)  # not focal, not spatial: channel-wise
    _, p_spatial = noise_recipe_fill(images, cells, QUERY_RECIPE, spatial, noise)
    _, p_channel = noise_recipe_fill(images, cells, QUERY_RECIPE, channel, noise)
    first = upsample_mask(cells[:, 0], 28, 28)
    assert all(torch.equal(p_spatial[:, ch], first) for ch in range(3))
    assert all(torch.equal(p_channel[:, ch], upsample_mask(cells[:, ch], 28, 28)) for ch in range(3))
    # official split: focal 0.2, then spatial 0.3 / channel 0.7 of the rest = 0.24 / 0.56
    assert QUERY_RECIPE.focal_p == 0.2 and (1 - 0.2) * (1 - QUERY_RECIPE.spatial_p) == pytest.approx(0.56)


def test_fast_blur_matches_the_exact_blur():
    from representations.masking import fast_blur, gaussian_blur

    gen = torch.Generator().manual_seed(0)
    images = torch.rand(2, 9, 84, 84, generator=gen)
    exact, fast = gaussian_blur(images, 31, 10.0), fast_blur(images, 31, 10.0)
    assert fast.shape == images.shape and (fast - exact).abs().max() < 0.02
    assert torch.equal(fast_blur(images, 11, 5.0), gaussian_blur(images, 11, 5.0))  # f = 1: exact
