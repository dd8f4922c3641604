"""Each image method learns on real Fashion-MNIST images; mask, saliency and hard-negative details."""

import pytest
import torch

from representations.core import Runtime
from representations.core.trainer import Trainer, TrainerConfig
from representations.encoders import save_encoder
from representations.objectives import MiCL, MoCo, MoCoMask, MoCoSaliency, moco_logits
from representations.objectives.moco import Views

from .pretrain_utils import augment, fashion_subset, generators, needs_fashion, tiny_resnet, tiny_vit

pytestmark = needs_fashion


def _losses(objective, steps=48, lr=0.05, optimizer="sgd", tmp_path=None):
    cfg = TrainerConfig(steps=steps, batch_size=32, lr=lr, optimizer=optimizer, schedule="constant", log_every=1,
                        progress=False, tensorboard=False)
    trainer = Trainer(objective, fashion_subset(512), cfg, runtime=Runtime(device="cpu", seed=0), run_dir=tmp_path)
    trainer.fit()
    return trainer.losses


def _moco_kwargs():
    return dict(dim=16, hidden_dim=32, queue_size=128, generators=generators())


@pytest.mark.parametrize("make", [
    lambda: MoCo(tiny_resnet(), augment(), **_moco_kwargs()),
    lambda: MoCoMask(tiny_resnet(), augment(), fill="mean", **_moco_kwargs()),
    lambda: MoCoSaliency(tiny_resnet(), augment(), fill="zero", **_moco_kwargs()),
    lambda: MoCoSaliency(tiny_resnet(), augment(), fill="highpass", **_moco_kwargs()),
], ids=["moco", "moco_mask", "moco_saliency", "moco_saliency_highpass"])
def test_moco_family_loss_falls(make, tmp_path):
    # The first steps are skipped: the queue starts as random vectors (an easy task) and fills
    # with real keys after 4 steps (batch 32, queue 128), which raises the loss before it falls.
    losses = _losses(make(), tmp_path=tmp_path)
    early, late = sum(losses[4:10]) / 6, sum(losses[-6:]) / 6
    assert late < early - 0.15, (early, late)


def test_micl_loss_falls(tmp_path):
    losses = _losses(MiCL(tiny_vit(), augment(), dim=16, hidden_dim=32, generators=generators()), steps=40,
                     lr=1e-3, optimizer="adamw", tmp_path=tmp_path)
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.1


def _batch(n=16):
    return {"images": fashion_subset(64).images[:n]}


def test_random_mask_ratio_and_fill():
    obj = MoCoMask(tiny_resnet(), augment(), mask_ratio=(0.2, 0.2), grid=7, fill="zero", **_moco_kwargs())
    obj(_batch())
    assert obj.last_mask.shape == (16, 7, 7)
    assert (obj.last_mask.sum(dim=(1, 2)) == round(0.2 * 49)).all()
    with pytest.raises(ValueError, match="unknown fill"):
        MoCoMask(tiny_resnet(), augment(), fill="checkerboard")


def test_saliency_mask_balances_foreground_and_background():
    obj = MoCoSaliency(tiny_resnet(), augment(), mask_ratio=(0.25, 0.25), **_moco_kwargs())
    obj(_batch())
    fg, mask = obj.last_foreground, obj.last_mask
    total = mask.sum(dim=(1, 2))
    assert (total == round(0.25 * 49)).all()
    expected_fg = torch.round(total.double() * fg.sum(dim=(1, 2)).double() / 49)
    assert torch.equal((mask & fg).sum(dim=(1, 2)).double(), expected_fg)


def test_warped_saliency_equals_direct_when_views_coincide():
    """With identical query and key crops, reading the key map through the boxes is the direct map."""
    obj = MoCoSaliency(tiny_resnet(), augment(), **_moco_kwargs())
    images = _batch(8)["images"]
    view, crop = obj.augment(images, torch.Generator().manual_seed(0))
    _, conv_map = obj.encode_keys(view)
    views = Views(view, view, crop, crop, torch.arange(8), 8, conv_map, view)
    warped, key_fg = obj._foregrounds(views)
    obj.query_saliency = "direct"
    direct, _ = obj._foregrounds(views)
    assert torch.equal(warped, direct) and torch.equal(key_fg, direct)


def test_bn_splits_keep_sample_order():
    """Chunked (shuffle-BN style) embedding returns rows in their original order: without BatchNorm
    the chunking must not change anything."""
    from representations.encoders import ConvEncoder

    conv = ConvEncoder(in_channels=1, image_size=28, num_layers=2, num_filters=4, feature_dim=8)
    obj = MoCo(conv, augment(), bn_splits=4, **_moco_kwargs())
    x = torch.rand(16, 1, 28, 28)
    split, split_map = obj.encode_keys(x)
    obj.bn_splits = 1
    whole, whole_map = obj.encode_keys(x)
    assert torch.allclose(split, whole, atol=1e-6) and torch.allclose(split_map, whole_map, atol=1e-6)


def test_hard_negative_logit_weighting():
    q = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
    k, hard = q.roll(1, 0), q.roll(2, 0)
    queue = torch.nn.functional.normalize(torch.randn(5, 8), dim=1)
    plain = moco_logits(q, k, queue, 0.2)
    term = moco_logits(q, k, queue, 0.2, hard, 2.0, "term")
    logit = moco_logits(q, k, queue, 0.2, hard, 2.0, "logit")
    assert plain.shape == (4, 6) and term.shape == (4, 7)
    sim = (q * hard).sum(1)
    assert torch.allclose(term[:, -1].exp(), 2.0 * (sim / 0.2).exp(), rtol=1e-5)
    assert torch.allclose(logit[:, -1], 2.0 * sim / 0.2)


def test_frozen_saliency_encoder_from_a_file(tmp_path):
    path = save_encoder(tiny_resnet(), tmp_path / "sal.pt")
    from representations.encoders import load_pretrained

    net = load_pretrained(path)
    obj = MoCoSaliency(tiny_resnet(), augment(), saliency_encoder=net, **_moco_kwargs())
    before = {k: v.clone() for k, v in net.state_dict().items()}
    optimizer = torch.optim.SGD([p for p in obj.parameters() if p.requires_grad], lr=0.1)
    obj.train()
    loss, metrics = obj(_batch())
    loss.backward()
    optimizer.step()
    assert not net.training and "hard_sim" in metrics
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(not p.requires_grad for p in net.parameters())


def test_micl_needs_a_two_cls_vit():
    with pytest.raises(ValueError, match="needs a ViT"):
        MiCL(tiny_resnet(), augment())
    from representations.encoders import ViT

    with pytest.raises(ValueError, match="num_cls=2"):
        MiCL(ViT(image_size=28, patch_size=2, in_channels=1, width=16, depth=1, heads=2), augment())
