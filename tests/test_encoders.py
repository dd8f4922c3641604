"""Encoders: shapes, hand-counted parameters, visible-token maths, save/rebuild, torch.compile."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from torch import nn

from representations.encoders import (
    NTU_BONES,
    STGCN,
    ConvEncoder,
    ResNetSmall,
    VideoViT,
    ViT,
    build_encoder,
    graph_partitions,
    load_pretrained,
    normalize_adjacency,
    ntu_rgbd_adjacency,
    save_encoder,
)
from representations.encoders.stgcn import hop_distance


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def tiny_vit(**kw: object) -> ViT:
    torch.manual_seed(0)
    args = dict(image_size=16, patch_size=4, in_channels=3, width=16, depth=2, heads=2, mlp_ratio=2.0)
    args.update(kw)
    return ViT(**args).eval()


def tiny_video(**kw: object) -> VideoViT:
    torch.manual_seed(0)
    args = dict(image_size=16, patch_size=8, num_frames=4, tubelet_size=2, width=16, depth=2, heads=2,
                mlp_ratio=2.0)
    args.update(kw)
    return VideoViT(**args).eval()


def random_idx(batch: int, total: int, n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randperm(total, generator=g)[:n] for _ in range(batch)])


# ---------------------------------------------------------------- ConvEncoder

def test_conv_encoder_curl_shape_and_parameter_count() -> None:
    enc = ConvEncoder(in_channels=9, image_size=84, num_layers=4, num_filters=32, feature_dim=50)
    obs = torch.randint(0, 256, (2, 9, 84, 84), dtype=torch.uint8)
    assert enc(obs).shape == (2, 50)
    side = (84 - 3) // 2 + 1 - 2 * 3  # 41 after the stride-2 conv, then three valid 3x3 convs: 35
    assert side == 35 and enc.conv_features(obs).shape == (2, 32, 35, 35)
    first_conv = 9 * 32 * 3 * 3 + 32
    other_convs = 3 * (32 * 32 * 3 * 3 + 32)
    fc = 32 * 35 * 35 * 50 + 50
    layer_norm = 2 * 50
    assert n_params(enc) == first_conv + other_convs + fc + layer_norm == 1_990_518
    with pytest.raises(ValueError, match="too small"):
        ConvEncoder(image_size=10, num_layers=4)


# ---------------------------------------------------------------- ResNetSmall

def test_resnet_small_shapes_and_parameter_count() -> None:
    enc = ResNetSmall(in_channels=3, image_size=28, widths=(4, 8), blocks=(1, 1))
    images = torch.randint(0, 256, (2, 3, 28, 28), dtype=torch.uint8)
    out = enc(images)
    assert out.shape == (2, 8) and enc.feature_dim == 8
    assert enc.conv_features(images).shape == (2, 8, 14, 14) and enc.conv_shape == (8, 14, 14)
    stem = 3 * 4 * 9 + 2 * 4
    block1 = 2 * (4 * 4 * 9 + 2 * 4)  # identity shortcut
    block2 = (4 * 8 * 9 + 2 * 8) + (8 * 8 * 9 + 2 * 8) + (4 * 8 + 2 * 8)  # 1x1 projection shortcut
    assert n_params(enc) == stem + block1 + block2
    big = ResNetSmall(in_channels=9, image_size=96, widths=(8, 8, 16), blocks=(1, 2, 1), stem_stride=2)
    x = torch.randn(1, 9, 96, 96)
    assert big(x).shape == (1, 16) and big.conv_features(x).shape[-1] == 12
    with pytest.raises(ValueError, match="too small"):
        ResNetSmall(image_size=4, widths=(4, 4, 4, 4), blocks=(1, 1, 1, 1))


# ---------------------------------------------------------------- ViT

def test_vit_shapes_and_parameter_count() -> None:
    vit = tiny_vit(num_cls=2)
    x = torch.randn(3, 3, 16, 16)
    out = vit(x, return_tokens=True, return_attention=True)
    assert out.cls.shape == (3, 2, 16) and out.tokens.shape == (3, 16, 16)
    assert out.attention.shape == (3, 2, 18, 18)
    assert torch.allclose(out.attention.sum(-1), torch.ones(3, 2, 18), atol=1e-5)
    assert tiny_vit()(x).shape == (3, 16)
    d, h, n, c, p = 16, 32, 16, 3, 4
    embed = c * p * p * d + d + n * d + 2 * d
    block = 2 * d + (3 * d * d + 3 * d) + (d * d + d) + 2 * d + (d * h + h) + (h * d + d)
    assert n_params(vit) == embed + 2 * block + 2 * d


def test_vit_bad_sizes_are_value_errors() -> None:
    with pytest.raises(ValueError, match="multiple of patch_size"):
        ViT(image_size=30, patch_size=4)
    with pytest.raises(ValueError, match="patch size"):
        tiny_vit()(torch.randn(1, 3, 18, 16))
    with pytest.raises(ValueError, match="divisible"):
        ViT(image_size=16, patch_size=4, width=10, heads=3)


def test_vit_other_image_size_resizes_positions() -> None:
    assert tiny_vit()(torch.randn(2, 3, 24, 20)).shape == (2, 16)


def test_vit_depth_zero_visible_tokens_equal_full_tokens_restricted() -> None:
    vit = tiny_vit(depth=0)
    x = torch.randn(2, 3, 16, 16)
    idx = random_idx(2, 16, 5)
    full = vit(x, return_tokens=True).tokens
    part = vit(x, visible_idx=idx, return_tokens=True).tokens
    assert torch.allclose(part, torch.gather(full, 1, idx[..., None].expand(-1, -1, 16)), atol=1e-6)


def test_vit_permuted_full_visible_set_gives_same_cls() -> None:
    vit = tiny_vit()
    x = torch.randn(2, 3, 16, 16)
    perm = random_idx(2, 16, 16, seed=1)
    full = vit(x, return_tokens=True)
    shuffled = vit(x, visible_idx=perm, return_tokens=True)
    assert torch.allclose(shuffled.cls, full.cls, atol=1e-5)
    expected = torch.gather(full.tokens, 1, perm[..., None].expand(-1, -1, 16))
    assert torch.allclose(shuffled.tokens, expected, atol=1e-5)
    # With depth > 0 a strict subset changes [CLS]: attention sees fewer tokens.
    subset = vit(x, visible_idx=perm[:, :4])
    assert not torch.allclose(subset, full.cls, atol=1e-3)


def test_vit_forward_groups_equals_separate_forwards() -> None:
    vit = tiny_vit()
    x = torch.randn(2, 3, 16, 16)
    idx = random_idx(2, 16, 7)
    a, b = idx[:, :3], idx[:, 3:6]
    grouped = vit.forward_groups(x, [a, b])
    assert grouped.shape == (2, 2, 16)
    assert torch.allclose(grouped[:, 0], vit(x, visible_idx=a), atol=1e-5)
    assert torch.allclose(grouped[:, 1], vit(x, visible_idx=b), atol=1e-5)
    uneven = vit.forward_groups(x, [a, idx[:, 3:]])  # 3 and 4 tokens: block-diagonal path
    assert torch.allclose(uneven[:, 0], vit(x, visible_idx=a), atol=1e-5)
    assert torch.allclose(uneven[:, 1], vit(x, visible_idx=idx[:, 3:]), atol=1e-5)


def test_vit_forward_groups_uses_one_cls_per_group() -> None:
    vit = tiny_vit(num_cls=2)
    x = torch.randn(2, 3, 16, 16)
    idx = random_idx(2, 16, 6)
    grouped = vit.forward_groups(x, [idx[:, :3], idx[:, 3:]])
    single = tiny_vit(num_cls=1)
    state = vit.state_dict()
    for g in range(2):
        state_g = dict(state, cls_tokens=state["cls_tokens"][:, g : g + 1])
        single.load_state_dict(state_g)
        expected = single(x, visible_idx=idx[:, 3 * g : 3 * g + 3])
        assert torch.allclose(grouped[:, g], expected, atol=1e-5)
    with pytest.raises(ValueError, match="CLS"):
        vit.forward_groups(x, [idx[:, :2], idx[:, 2:4], idx[:, 4:]])


def test_vit_patchify_matches_patch_embedding_order() -> None:
    vit = tiny_vit()
    x = torch.randn(2, 3, 16, 16)
    targets = vit.patchify(x)
    assert targets.shape == (2, 16, 48)
    w = vit.patch_embed.proj.weight.permute(0, 2, 3, 1).reshape(16, -1)  # (D, p, p, C) order
    manual = targets @ w.t() + vit.patch_embed.proj.bias
    assert torch.allclose(manual, vit.patch_embed(x), atol=1e-5)


# ---------------------------------------------------------------- VideoViT

@pytest.mark.parametrize("attention", ["joint", "divided"])
def test_video_vit_shapes_and_cls_attention(attention: str) -> None:
    tubelet = 2 if attention == "joint" else 1
    model = tiny_video(attention=attention, tubelet_size=tubelet)
    video = torch.randint(0, 256, (2, 3, 4, 16, 16), dtype=torch.uint8)
    out = model(video, return_tokens=True, return_attention=True)
    steps = 4 // tubelet
    assert out.cls.shape == (2, 16) and out.tokens.shape == (2, steps * 4, 16)
    assert out.attention.shape == (2, 2, steps, 4)
    if attention == "joint":  # one softmax over all space-time tokens (plus [CLS] itself)
        assert torch.all(out.attention.sum(dim=(2, 3)) < 1.0)
    else:  # one softmax per frame
        assert torch.all(out.attention.sum(dim=3) < 1.0)
    assert torch.all(out.attention > 0)
    # another size and frame count (multi-crop local view) goes through resized positions
    assert model(torch.randn(1, 3, 2, 8, 24)).shape == (1, 16)
    with pytest.raises(ValueError, match="patch size"):
        model(torch.randn(1, 3, 4, 12, 16))


def test_video_vit_bad_frame_count() -> None:
    with pytest.raises(ValueError, match="tubelet"):
        tiny_video()(torch.randn(1, 3, 3, 16, 16))
    with pytest.raises(ValueError, match="tubelet"):
        VideoViT(image_size=16, patch_size=8, num_frames=5, tubelet_size=2, width=16, depth=1, heads=2)


def test_video_vit_mask_token() -> None:
    model = tiny_video(mask_token=True)
    video = torch.randn(2, 3, 4, 16, 16)
    plain = model(video, return_tokens=True)
    none_masked = model(video, mask=torch.zeros(2, 4, dtype=torch.bool), return_tokens=True)
    assert torch.allclose(plain.cls, none_masked.cls, atol=1e-6)
    tube = torch.zeros(2, 4, dtype=torch.bool)
    tube[:, 1] = True
    masked = model(video, mask=tube)
    masked_per_step = model(video, mask=tube[:, None, :].expand(2, 2, 4).contiguous())
    assert torch.allclose(masked, masked_per_step, atol=1e-6)
    assert not torch.allclose(masked, plain.cls, atol=1e-4)
    (masked * torch.randn_like(masked)).sum().backward()  # plain sum of a LayerNorm output is constant
    assert model.mask_token.token.grad is not None and model.mask_token.token.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="mask_token"):
        tiny_video()(video, mask=tube)
    with pytest.raises(ValueError, match="cells"):
        model(video, mask=torch.zeros(2, 5, dtype=torch.bool))


def test_video_vit_visible_tokens() -> None:
    joint = tiny_video()
    video = torch.randn(2, 3, 4, 16, 16)
    perm = random_idx(2, 8, 8)
    full = joint(video, return_attention=True)
    shuffled = joint(video, visible_idx=perm, return_attention=True)
    assert torch.allclose(shuffled.cls, full.cls, atol=1e-5)
    assert torch.allclose(shuffled.attention, full.attention, atol=1e-5)
    sub = joint(video, visible_idx=perm[:, :3], return_attention=True)
    dropped = torch.ones(2, 8, dtype=torch.bool).scatter(1, perm[:, :3], False)
    assert torch.all(sub.attention.flatten(2)[dropped[:, None, :].expand(-1, 2, -1)] == 0)
    divided = tiny_video(attention="divided", tubelet_size=1)
    tube = random_idx(2, 4, 2)
    out = divided(video, visible_idx=tube, return_tokens=True, return_attention=True)
    assert out.tokens.shape == (2, 4 * 2, 16) and out.attention.shape == (2, 2, 4, 4)
    hidden = torch.ones(2, 4, dtype=torch.bool).scatter(1, tube, False)
    assert torch.all(out.attention.permute(0, 3, 1, 2)[hidden] == 0)


def official_divided_block(block, x: torch.Tensor, batch: int, frames: int) -> torch.Tensor:
    """TimeSformer's divided space-time ``Block.forward`` (MLMIP/MMCRL ``models/timesformer.py``), eval
    mode, transcribed with reshapes for its rearranges: x (B, 1 + H*W*T, D), tokens ordered (h w t)."""
    b, t, d = batch, frames, x.shape[-1]
    hw = (x.shape[1] - 1) // t
    xt = x[:, 1:].reshape(b * hw, t, d)  # 'b (h w t) m -> (b h w) t m'
    res_temporal = block.temporal_fc(block.attn_t(block.norm_t(xt))[0].reshape(b, hw * t, d))
    xt = x[:, 1:] + res_temporal
    init_cls = x[:, :1]
    cls = init_cls.repeat(1, t, 1).reshape(b * t, 1, d)
    xs = xt.reshape(b, hw, t, d).transpose(1, 2).reshape(b * t, hw, d)  # 'b (h w t) m -> (b t) (h w) m'
    res_spatial = block.attn_s(block.norm_s(torch.cat([cls, xs], dim=1)))[0]
    cls = res_spatial[:, 0].reshape(b, t, d).mean(dim=1, keepdim=True)  # averaging for every frame
    res = res_spatial[:, 1:].reshape(b, t, hw, d).transpose(1, 2).reshape(b, hw * t, d)
    x = torch.cat([init_cls, xt], dim=1) + torch.cat([cls, res], dim=1)
    return x + block.mlp(block.norm_mlp(x))


def test_divided_block_is_the_official_timesformer_block() -> None:
    from representations.encoders.video_vit import DividedBlock

    torch.manual_seed(0)
    block = DividedBlock(16, 2, 2.0, drop_path=0.1).eval()  # eval: stochastic depth off
    nn.init.normal_(block.temporal_fc.weight, std=0.3)  # the model starts it at zero: exercise it here
    nn.init.normal_(block.temporal_fc.bias, std=0.3)
    b, t, n = 2, 3, 4
    official = torch.randn(b, 1 + n * t, 16)
    want = official_divided_block(block, official, b, t)
    tokens = official[:, 1:].reshape(b, n, t, 16).transpose(1, 2)  # ours: (B, T', n, D)
    cls, x, _ = block(official[:, 0], tokens)
    assert torch.allclose(cls, want[:, 0], atol=1e-5)
    assert torch.allclose(x, want[:, 1:].reshape(b, n, t, 16).transpose(1, 2), atol=1e-5)


def test_divided_video_vit_starts_without_temporal_mixing() -> None:
    """TimeSformer zeroes every block's temporal_fc: at initialisation the temporal attention adds
    nothing, and the first gradient reaches temporal_fc (not yet the attention behind it)."""
    model = tiny_video(attention="divided", tubelet_size=1)
    for blk in model.blocks:
        assert torch.count_nonzero(blk.temporal_fc.weight) == 0 and torch.count_nonzero(blk.temporal_fc.bias) == 0
    video = torch.randn(2, 3, 4, 16, 16)
    before = model(video)
    with torch.no_grad():
        for blk in model.blocks:
            blk.attn_t.qkv.weight.normal_()
    assert torch.allclose(model(video), before, atol=1e-6)
    (model(video) * torch.randn(2, 16)).sum().backward()
    assert model.blocks[0].temporal_fc.weight.grad.abs().sum() > 0
    assert model.blocks[0].attn_t.qkv.weight.grad.abs().sum() == 0


@pytest.mark.parametrize("attention", ["joint", "divided"])
def test_video_vit_drop_path_only_in_training(attention: str) -> None:
    tubelet = 2 if attention == "joint" else 1
    plain = tiny_video(attention=attention, tubelet_size=tubelet, depth=3)
    dropping = tiny_video(attention=attention, tubelet_size=tubelet, depth=3, drop_path=0.5)
    assert [blk.drop_path.rate for blk in dropping.blocks] == pytest.approx([0.0, 0.25, 0.5])
    video = torch.randn(4, 3, 4, 16, 16)
    assert torch.equal(dropping(video), plain(video))  # no parameters added: eval mode is the same model
    dropping.train()
    torch.manual_seed(1)
    first = dropping(video)
    assert not torch.allclose(first, dropping(video))


def test_divided_block_draws_stochastic_depth_where_timesformer_does(monkeypatch) -> None:
    """Per (clip, location) on the temporal branch, per (clip, frame) on the spatial one, one draw per
    clip shared by the [CLS] and the patch tokens on the MLP."""
    from representations.encoders.video_vit import DividedBlock
    from representations.modules import DropPath

    block = DividedBlock(16, 2, 2.0, drop_path=0.3).train()
    rows: list[tuple[str, int]] = []
    scale = DropPath.scale
    monkeypatch.setattr(DropPath, "forward", lambda self, x: rows.append(("branch", x.shape[0])) or x)
    monkeypatch.setattr(DropPath, "scale", lambda self, n, like: rows.append(("shared", n)) or scale(self, n, like))
    b, t, n = 2, 3, 4
    block(torch.randn(b, 16), torch.randn(b, t, n, 16))
    assert rows == [("branch", b * n), ("branch", b * t), ("shared", b)]


def test_video_vit_patchify_order() -> None:
    model = tiny_video()
    video = torch.randn(2, 3, 4, 16, 16)
    targets = model.patchify(video)
    assert targets.shape == (2, 8, 2 * 8 * 8 * 3)
    w = model.patch_embed.proj.weight.permute(0, 2, 3, 4, 1).reshape(16, -1)
    manual = targets @ w.t() + model.patch_embed.proj.bias
    assert torch.allclose(manual, model.patch_embed(video).flatten(1, 2), atol=1e-5)


# ---------------------------------------------------------------- STGCN

def test_ntu_adjacency_symmetric_with_24_bones() -> None:
    adj = ntu_rgbd_adjacency()
    assert adj.shape == (25, 25)
    assert torch.equal(adj, adj.t())
    assert len(NTU_BONES) == 24 and len(set(map(frozenset, NTU_BONES))) == 24
    assert int(adj.sum().item()) == 2 * 24 and torch.all(adj.diagonal() == 0)
    assert torch.isfinite(hop_distance(adj)).all()  # one connected tree
    assert hop_distance(adj)[20, 3] == 2  # spine_shoulder -> neck -> head


def test_graph_partitions_split_the_normalised_neighbourhood() -> None:
    adj = ntu_rgbd_adjacency()
    norm = normalize_adjacency(adj + torch.eye(25))
    assert torch.allclose(norm.sum(dim=1), torch.ones(25))
    for strategy, k in (("uniform", 1), ("distance", 2), ("spatial", 3)):
        parts = graph_partitions(adj, strategy, center=20)
        assert parts.shape == (k, 25, 25)
        assert torch.allclose(parts.sum(0), norm, atol=1e-6)
    sym = normalize_adjacency(adj + torch.eye(25), "symmetric")
    assert torch.allclose(sym, sym.t())


def test_stgcn_shapes_and_custom_graph() -> None:
    torch.manual_seed(0)
    model = STGCN(channels=(8, 16), kernel_t=3).eval()
    x = torch.randn(2, 3, 12, 25, 2)
    assert model(x).shape == (2, 16) and model.feature_dim == 16
    assert model.forward_features(x).shape == (2, 2, 16, 6, 25)
    chain = [[1.0 if abs(i - j) == 1 else 0.0 for j in range(4)] for i in range(4)]
    small = STGCN(in_channels=2, num_joints=4, num_persons=1, channels=(4,), kernel_t=3, graph=chain)
    assert small(torch.randn(3, 2, 5, 4, 1)).shape == (3, 4)
    with pytest.raises(ValueError, match="symmetric"):
        STGCN(num_joints=2, graph=[[0.0, 1.0], [0.0, 0.0]])
    with pytest.raises(ValueError, match="V=25"):
        model(torch.randn(1, 3, 12, 20, 2))


# ---------------------------------------------------------------- save / rebuild

CASES = {
    "conv": (dict(in_channels=3, image_size=20, num_layers=2, num_filters=4, feature_dim=6),
             lambda: torch.randint(0, 256, (2, 3, 20, 20), dtype=torch.uint8)),
    "resnet_small": (dict(image_size=16, widths=(4, 8), blocks=(1, 1)), lambda: torch.randn(2, 3, 16, 16)),
    "vit": (dict(image_size=8, patch_size=4, width=8, depth=1, heads=2, num_cls=2), lambda: torch.randn(2, 3, 8, 8)),
    "video_vit": (dict(image_size=8, patch_size=4, num_frames=2, tubelet_size=1, width=8, depth=1, heads=2,
                       attention="divided", mask_token=True), lambda: torch.randn(2, 3, 2, 8, 8)),
    "stgcn": (dict(channels=(4, 8), kernel_t=3, num_persons=1), lambda: torch.randn(2, 3, 6, 25, 1)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_save_and_rebuild_round_trip(name: str, tmp_path: Path) -> None:
    kwargs, make_input = CASES[name]
    torch.manual_seed(0)
    enc = build_encoder(name, **kwargs)
    with torch.no_grad():  # make BN statistics non-trivial so buffers must round-trip too
        enc.train()(make_input())
    enc.eval()
    path = save_encoder(enc, tmp_path / f"{name}.pt")
    raw = torch.load(path, weights_only=True)
    assert raw["class"] == name and set(raw) == {"class", "kwargs", "state_dict"}
    rebuilt = load_pretrained(path).eval()
    assert type(rebuilt) is type(enc) and rebuilt.init_kwargs == enc.init_kwargs
    x = make_input()
    with torch.no_grad():
        assert torch.equal(rebuilt(x), enc(x))


def test_load_pretrained_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no pretrained encoder"):
        load_pretrained(tmp_path / "missing.pt")
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="not a readable"):
        load_pretrained(bad)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(ValueError, match="does not hold an encoder"):
        load_pretrained(other)
    enc = build_encoder("conv", in_channels=3, image_size=20, num_layers=2, num_filters=4, feature_dim=6)
    mixed = tmp_path / "ckpt.pt"
    payload = torch.load(save_encoder(enc, tmp_path / "enc.pt"), weights_only=True)
    torch.save({"encoder": payload, "step": 3}, mixed)
    assert isinstance(load_pretrained(mixed, key="encoder"), ConvEncoder)
    payload["kwargs"]["num_filters"] = 5
    torch.save(payload, mixed)
    with pytest.raises(ValueError, match="do not match"):
        load_pretrained(mixed)
    with pytest.raises(ValueError, match="unknown encoder"):
        build_encoder("resnet50")


# ---------------------------------------------------------------- torch.compile

def _compile_or_skip(model: nn.Module, backend: str) -> nn.Module:
    if not hasattr(torch, "compile"):
        pytest.skip("torch.compile is not available")
    return torch.compile(model, backend=backend, fullgraph=True)


@pytest.mark.parametrize("name", ["conv", "vit"])
def test_torch_compile_traces_without_graph_breaks(name: str) -> None:
    """Dynamo tracing (aot_eager: no C++ build) with fullgraph=True catches graph breaks cheaply."""
    kwargs, make_input = CASES[name]
    enc = build_encoder(name, **kwargs).eval()
    compiled = _compile_or_skip(enc, "aot_eager")
    x = make_input()
    with torch.no_grad():
        assert torch.allclose(compiled(x), enc(x), atol=1e-5)
    if name == "vit":
        idx = random_idx(2, 4, 3)
        with torch.no_grad():
            assert torch.allclose(compiled(x, visible_idx=idx), enc(x, visible_idx=idx), atol=1e-5)


@pytest.mark.slow
def test_torch_compile_inductor_vit() -> None:
    kwargs, make_input = CASES["vit"]
    enc = build_encoder("vit", **kwargs).eval()
    start = time.perf_counter()
    try:
        compiled = torch.compile(enc)
        x = make_input()
        with torch.no_grad():
            out = compiled(x)
    except Exception as exc:  # no C++ toolchain / unsupported platform
        pytest.skip(f"inductor unavailable here: {type(exc).__name__}: {exc}")
    assert torch.allclose(out, enc(x), atol=1e-4)
    assert time.perf_counter() - start < 600


def test_resnet_small_pool_keeps_a_coarse_layout():
    from representations.encoders import ResNetSmall

    torch.manual_seed(0)
    net = ResNetSmall(in_channels=1, image_size=28, widths=(8, 16), blocks=(1, 1), stem_stride=2, pool=2).eval()
    x = torch.rand(3, 1, 28, 28)
    conv_map = net.conv_features(x)  # (3, 16, 7, 7)
    want = torch.stack([conv_map[..., r0:r1, c0:c1].mean(dim=(-2, -1))  # adaptive pooling cells of a 7x7 map
                        for r0, r1 in ((0, 4), (3, 7)) for c0, c1 in ((0, 4), (3, 7))], dim=-1).flatten(1)
    assert net.feature_dim == 64 and torch.allclose(net(x), want, atol=1e-6)


def test_every_image_encoder_scales_uint8_once_and_takes_floats_as_given() -> None:
    """One input convention: uint8 pixels are divided by 255 inside; floats are used as given."""
    from representations.encoders import ViT

    raw = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)
    unit = raw.float() / 255.0  # the hand-scaled equivalent
    for enc in (ConvEncoder(in_channels=3, image_size=16, num_layers=2, num_filters=4, feature_dim=8),
                ResNetSmall(in_channels=3, image_size=16, widths=(4,), blocks=(1,)),
                ViT(in_channels=3, image_size=16, patch_size=4, width=16, depth=1, heads=2)):
        enc.eval()
        assert torch.allclose(enc(raw), enc(unit), atol=1e-6), type(enc).__name__
        assert not torch.allclose(enc(raw), enc(raw.float()), atol=1e-3), type(enc).__name__
