"""Modules: positions, EMA maths, mask token, patch embeddings, heads, sequence transformer."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from representations.modules import (
    EMA,
    Attention,
    DINOHead,
    DropPath,
    MaskToken,
    MLPHead,
    PatchEmbed,
    SequenceTransformer,
    TubeletEmbed,
    cosine_momentum,
    drop_path_rates,
    ema_update,
    inverse_sqrt_warmup,
    linear_momentum,
    resize_grid_positions,
    sinusoidal_positions,
)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------- positions

@pytest.mark.parametrize("length,dim", [(7, 8), (5, 9), (3, 1), (32, 50)])
def test_sinusoidal_positions_match_naive_loop(length: int, dim: int) -> None:
    table = sinusoidal_positions(length, dim, dtype=torch.float64)
    assert table.shape == (length, dim)
    for pos in range(length):
        for j in range(dim):
            angle = pos / 10000 ** (2 * (j // 2) / dim)
            expected = math.sin(angle) if j % 2 == 0 else math.cos(angle)
            assert table[pos, j].item() == pytest.approx(expected, abs=1e-12)


def test_sinusoidal_positions_rejects_bad_dim() -> None:
    with pytest.raises(ValueError):
        sinusoidal_positions(4, 0)


def test_resize_grid_positions_identity_and_shape() -> None:
    pos = torch.randn(1, 16, 6)
    assert resize_grid_positions(pos, (4, 4), (4, 4)) is pos
    assert resize_grid_positions(pos, (4, 4), (2, 3)).shape == (1, 6, 6)


# ---------------------------------------------------------------- EMA

def _pair() -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    online = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    target = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    online[1].running_mean.fill_(0.7)
    return target, online


def test_ema_update_tau_zero_and_one() -> None:
    target, online = _pair()
    before = [p.clone() for p in target.parameters()]
    ema_update(target, online, 0.0)
    assert all(torch.equal(a, b) for a, b in zip(before, target.parameters()))
    ema_update(target, online, 1.0)
    assert all(torch.equal(a, b) for a, b in zip(target.parameters(), online.parameters()))
    assert torch.equal(target[1].running_mean, online[1].running_mean)  # buffers are copied


def test_ema_update_one_step_value() -> None:
    target, online = _pair()
    t0 = target[0].weight.clone()
    o0 = online[0].weight.clone()
    ema_update(target, online, 0.05)
    assert torch.allclose(target[0].weight, 0.95 * t0 + 0.05 * o0, atol=1e-7)
    with pytest.raises(ValueError):
        ema_update(target, online, 1.5)


def test_momentum_schedules() -> None:
    assert cosine_momentum(0, 100, 0.996, 1.0) == pytest.approx(0.996)
    assert cosine_momentum(50, 100, 0.996, 1.0) == pytest.approx(0.998)
    assert cosine_momentum(100, 100, 0.996, 1.0) == pytest.approx(1.0)
    assert linear_momentum(25, 100, 0.9, 1.0) == pytest.approx(0.925)
    assert linear_momentum(500, 100, 0.9, 1.0) == pytest.approx(1.0)


def test_ema_class_follows_hand_formula() -> None:
    online = nn.Linear(4, 3)
    ema = EMA(online, base=0.9, final=1.0, total_steps=10, schedule="linear")
    assert all(not p.requires_grad for p in ema.target.parameters())
    assert torch.equal(ema.target.weight, online.weight)
    t0 = ema.target.weight.clone()
    with torch.no_grad():
        online.weight.add_(1.0)
    m = ema.update(step=5)
    assert m == pytest.approx(0.95)
    assert torch.allclose(ema.target.weight, 0.95 * t0 + 0.05 * online.weight, atol=1e-6)
    assert ema.update(step=10) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        EMA(online, schedule="step")


# ---------------------------------------------------------------- mask token and patches

def test_mask_token_changes_only_masked_positions_and_gets_gradient() -> None:
    tok = MaskToken(5)
    x = torch.randn(2, 6, 5)
    mask = torch.zeros(2, 6, dtype=torch.bool)
    mask[0, 1] = mask[1, 4] = True
    out = tok(x, mask)
    assert torch.equal(out[~mask], x[~mask])
    assert torch.equal(out[mask], tok.token.detach().expand(2, 5))
    out.pow(2).sum().backward()
    assert torch.allclose(tok.token.grad, 2 * 2 * tok.token.detach())  # two masked positions
    tok.zero_grad()
    tok(x, torch.zeros_like(mask)).sum().backward()
    assert tok.token.grad is None or torch.count_nonzero(tok.token.grad) == 0
    with pytest.raises(ValueError):
        tok(x, mask.long())


def test_patch_embed_equals_linear_on_patches() -> None:
    torch.manual_seed(0)
    embed = PatchEmbed(2, 4, 7)
    x = torch.randn(3, 2, 8, 12)
    out = embed(x)
    assert out.shape == (3, 6, 7)
    # token (r, c) in row-major order is the conv weight dotted with the patch at (r, c)
    r, c = 1, 2
    patch = x[:, :, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4].reshape(3, -1)
    manual = patch @ embed.proj.weight.reshape(7, -1).t() + embed.proj.bias
    assert torch.allclose(out[:, r * 3 + c], manual, atol=1e-5)
    with pytest.raises(ValueError, match="patch size"):
        embed(torch.randn(1, 2, 10, 12))


def test_tubelet_embed_shape_and_errors() -> None:
    embed = TubeletEmbed(3, 4, 2, 8)
    assert embed(torch.randn(2, 3, 6, 8, 12)).shape == (2, 3, 6, 8)
    with pytest.raises(ValueError, match="tubelet"):
        embed(torch.randn(1, 3, 5, 8, 8))
    with pytest.raises(ValueError, match="patch size"):
        embed(torch.randn(1, 3, 4, 9, 8))


# ---------------------------------------------------------------- heads

def test_mlp_head_shapes_and_parameter_count() -> None:
    head = MLPHead(8, 16, 4, num_layers=2, norm="bn")
    # Linear 8x16 without bias (BN follows), BN 2x16, Linear 16x4 + bias.
    assert n_params(head) == 8 * 16 + 2 * 16 + 16 * 4 + 4
    assert head(torch.randn(5, 8)).shape == (5, 4)
    ln = MLPHead(8, 16, 4, num_layers=3, norm="ln", last_norm=True)
    assert n_params(ln) == (8 * 16 + 16) + 32 + (16 * 16 + 16) + 32 + (16 * 4 + 4) + 8
    assert ln(torch.randn(2, 3, 8)).shape == (2, 3, 4)
    single = MLPHead(8, 99, 4, num_layers=1, norm=None)
    assert n_params(single) == 8 * 4 + 4
    with pytest.raises(ValueError):
        MLPHead(8, 16, 4, num_layers=0)
    with pytest.raises(ValueError):
        MLPHead(8, 16, 4, norm="gn")


def test_dino_head_gives_cosine_logits() -> None:
    head = DINOHead(8, 10, hidden_dim=16, bottleneck_dim=6)
    out = head(torch.randn(4, 8))
    assert out.shape == (4, 10)
    assert out.abs().max() <= 1.0 + 1e-5


# ---------------------------------------------------------------- transformers

def test_drop_path_zeroes_whole_rows_at_its_rate_and_rescales_the_rest() -> None:
    torch.manual_seed(0)
    drop = DropPath(0.25)
    x = torch.randn(4000, 3, 5)
    out = drop.train()(x)
    kept = (out != 0).flatten(1).any(dim=1)
    # a row is either zeroed as a whole or kept and scaled by 1 / (1 - rate)
    assert torch.equal(out[~kept], torch.zeros_like(out[~kept]))
    assert torch.allclose(out[kept], x[kept] / 0.75)
    dropped = 1 - kept.float().mean().item()
    assert abs(dropped - 0.25) < 4 * (0.25 * 0.75 / 4000) ** 0.5  # binomial: within 4 standard errors
    assert torch.equal(drop.eval()(x), x)
    assert torch.equal(DropPath(0.0).train()(x), x)
    with pytest.raises(ValueError, match="drop-path rate"):
        DropPath(1.0)


def test_drop_path_rates_rise_linearly_over_the_blocks() -> None:
    assert drop_path_rates(0.1, 1) == [0.0]
    assert drop_path_rates(0.0, 3) == [0.0, 0.0, 0.0]
    assert drop_path_rates(0.1, 3) == pytest.approx([0.0, 0.05, 0.1])
    assert drop_path_rates(0.1, 12)[1] == pytest.approx(0.1 / 11)  # TimeSformer's torch.linspace(0, 0.1, 12)


def test_attention_weights_path_matches_fused_path() -> None:
    torch.manual_seed(0)
    attn = Attention(8, 2)
    x = torch.randn(3, 5, 8)
    mask = torch.rand(5, 5) > 0.3
    mask |= torch.eye(5, dtype=torch.bool)
    fused, none = attn(x, mask)
    explicit, weights = attn(x, mask, need_weights=True)
    assert none is None
    assert torch.allclose(fused, explicit, atol=1e-5)
    assert weights.shape == (3, 2, 5, 5)
    assert torch.allclose(weights.sum(-1), torch.ones(3, 2, 5), atol=1e-5)
    assert torch.all(weights[:, :, ~mask] == 0)


def official_layer(layer, x: torch.Tensor) -> torch.Tensor:
    """Transcription of teslacool/m-curl AttnLayer (post-norm, no dropout in eval): one head,
    q scaled by head_dim^-0.5, softmax, no output projection, ReLU feed-forward."""
    q, k, v = layer.in_proj(x).chunk(3, dim=-1)
    q = q * x.shape[-1] ** -0.5
    attn = torch.softmax(q @ k.transpose(1, 2), dim=-1) @ v
    x = layer.attn_norm(x + attn)
    return layer.final_norm(x + layer.fc2(torch.relu(layer.fc1(x))))


def test_sequence_transformer_is_the_official_m_curl_layer() -> None:
    torch.manual_seed(0)
    model = SequenceTransformer().eval()  # official defaults: 2 layers, 1 head, d 50, FFN 100, ReLU
    assert model.dim == 50 and len(model.layers) == 2 and model.layers[0].heads == 1
    assert model.layers[0].fc1.out_features == 100
    assert model.layers[0].dropout == 0.1 and model.layers[0].attention_dropout == 0.0
    assert model.layers[0].relu_dropout == 0.0
    x = torch.randn(3, 32, 50)
    out = model(x)
    manual = x + sinusoidal_positions(32, 50)
    for layer in model.layers:
        manual = official_layer(layer, manual)
    assert torch.allclose(out, manual, atol=1e-5)
    # positions make it order-aware: a permuted input does not give a permuted output
    perm = torch.randperm(32)
    assert not torch.allclose(model(x[:, perm]), out[:, perm], atol=1e-4)
    projected = SequenceTransformer(dim=10, heads=5, ffn_dim=20, in_dim=7)
    assert projected(torch.randn(2, 4, 7)).shape == (2, 4, 7)
    with pytest.raises(ValueError, match="divisible"):
        SequenceTransformer(dim=50, heads=3)


def test_sequence_transformer_dropout_only_on_the_residual_branches() -> None:
    torch.manual_seed(0)
    layer = SequenceTransformer(dim=8, depth=1, ffn_dim=16, dropout=0.5).layers[0].train()
    x = torch.randn(2, 4, 8)
    calls = []
    real = torch.nn.functional.dropout

    def spy(t, p=0.5, training=True, inplace=False):
        calls.append((tuple(t.shape), p))
        return real(t, p, training, inplace)

    torch.nn.functional.dropout, saved = spy, torch.nn.functional.dropout
    try:
        import representations.modules.sequence as seq

        seq.F.dropout = spy
        layer(x)
    finally:
        torch.nn.functional.dropout = saved
        seq.F.dropout = saved
    # attention-branch output, ReLU activations (p=0), feed-forward output
    assert [p for _, p in calls] == [0.5, 0.0, 0.5]


def test_inverse_sqrt_warmup_values() -> None:
    assert inverse_sqrt_warmup(0, 100) == pytest.approx(0.01)
    assert inverse_sqrt_warmup(50, 100) == pytest.approx(0.5)
    assert inverse_sqrt_warmup(100, 100) == pytest.approx(1.0)
    assert inverse_sqrt_warmup(400, 100) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        inverse_sqrt_warmup(3, 0)
    param = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: inverse_sqrt_warmup(s, 4))
    lrs = []
    for _ in range(8):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:5] == pytest.approx([0.25, 0.25, 0.5, 0.75, 1.0])
    assert lrs[7] == pytest.approx(math.sqrt(4 / 7))
