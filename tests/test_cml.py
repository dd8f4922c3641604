"""CML: body parts and graphs of both skeletons, gradient flow, balanced assignments, end-to-end runs."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from representations.core import Runtime
from representations.core.trainer import Trainer, TrainerConfig
from representations.data import SkeletonAugment, mocap_windows
from representations.encoders import STGCN, load_pretrained
from representations.losses import sinkhorn_knopp
from representations.masking import body_part_mask
from representations.objectives import CML
from representations.pretrain.run import evaluate_encoder

# Body-part maps transcribed from the joint lists (NTU: dataset docs, 1-based numbers minus 1;
# humanoid: representations.encoders.stgcn.HUMANOID_JOINT_NAMES order).
NTU_PARTS = [{0, 1, 2, 3, 20}, {4, 5, 6, 7, 21, 22}, {8, 9, 10, 11, 23, 24}, {12, 13, 14, 15}, {16, 17, 18, 19}]
HUMANOID_PARTS = [{0, 1, 2, 3}, {15, 16, 17}, {8, 9, 10}, {11, 12, 13, 14}, {4, 5, 6, 7}]
HUMANOID_EDGES = {(0, 1), (1, 2), (2, 3), (0, 4), (4, 5), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (0, 11),
                  (11, 12), (12, 13), (13, 14), (1, 15), (15, 16), (16, 17)}


@pytest.mark.parametrize(("layout", "joints", "parts"), [("ntu", 25, NTU_PARTS), ("humanoid", 18, HUMANOID_PARTS)])
def test_body_part_masks_hide_whole_parts(layout, joints, parts):
    mask = body_part_mask(400, (1, 3), parts=layout, num_joints=joints, generator=torch.Generator().manual_seed(0))
    assert mask.shape == (400, joints)
    counts = []
    for row in mask:
        hidden = set(torch.nonzero(row).flatten().tolist())
        chosen = [p for p in parts if p <= hidden]
        assert set().union(*chosen) == hidden  # a union of whole parts, nothing else
        counts.append(len(chosen))
    assert set(counts) == {1, 2, 3}
    with pytest.raises(ValueError, match="joints"):
        body_part_mask(2, 1, parts=layout, num_joints=joints + 1)


def test_stgcn_takes_the_humanoid_graph():
    enc = STGCN(num_joints=18, num_persons=1, channels=[8, 16], graph="humanoid", kernel_t=3)
    assert enc(torch.randn(2, 3, 10, 18, 1)).shape == (2, 16)
    # spatial partitions: self + neighbours of A + I, normalised; their support is exactly the bones
    support = (enc.adjacency.sum(0) > 0).float() - torch.eye(18)
    edges = {(i, j) for i, j in torch.nonzero(support).tolist() if i < j}
    assert edges == HUMANOID_EDGES
    assert enc.init_kwargs["graph"] == "humanoid" and enc.init_kwargs["center"] == 1
    with pytest.raises(ValueError, match="unknown built-in graph"):
        STGCN(graph="kinect")


def tiny_cml(**kwargs) -> CML:
    enc = STGCN(num_joints=18, num_persons=1, channels=[8, 16], graph="humanoid", kernel_t=3)
    gens = {"augment": torch.Generator().manual_seed(0), "mask": torch.Generator().manual_seed(1)}
    return CML(enc, SkeletonAugment(), parts="humanoid", dim=16, hidden_dim=32, queue_size=64, num_prototypes=8,
               decoder_dim=8, generators=gens, **kwargs)


def test_gradients_reach_student_and_decoder_not_teacher():
    torch.manual_seed(0)
    obj = tiny_cml()
    x = torch.randn(16, 3, 12, 18, 1)
    loss, metrics = obj({"sequences": x})
    loss.backward()
    assert metrics["loss_reconstruction"] > 0 and metrics["loss_cluster"] > 0 and metrics["loss_instance"] > 0
    for name, module in (("encoder", obj.encoder), ("decoder", obj.decoder), ("head", obj.head),
                         ("prototypes", obj.prototypes)):
        grads = [p.grad for p in module.parameters()]
        assert all(g is not None for g in grads), name
        assert sum(float(g.abs().sum()) for g in grads) > 0, name
    teacher = list(obj.key.parameters())
    assert teacher and all(p.grad is None and not p.requires_grad for p in teacher)
    # the teacher moves only by EMA: after a step it equals m * old + (1 - m) * student
    old = [p.detach().clone() for p in teacher]
    with torch.no_grad():
        for p in obj.encoder.parameters():
            p.add_(0.1)
    m = obj.after_step(1)["momentum"]
    student = list(obj.encoder.parameters()) + list(obj.head.parameters())
    for t, o, s in zip(teacher, old, student):
        torch.testing.assert_close(t, m * o + (1 - m) * s)


def test_ablations_switch_their_terms_off():
    torch.manual_seed(0)
    x = torch.randn(8, 3, 12, 18, 1)
    no_mask = tiny_cml(mask_branch=False, w_reconstruction=0.0)
    assert no_mask.decoder is None
    loss, metrics = no_mask({"sequences": x})
    assert float(metrics["loss_reconstruction"]) == 0 and "masked_joints" not in metrics
    no_cluster = tiny_cml(w_cluster=0.0)
    loss, metrics = no_cluster({"sequences": x})
    loss.backward()
    assert float(metrics["loss_cluster"]) == 0 and no_cluster.prototypes.weight.grad is None
    with pytest.raises(ValueError, match="w_cluster"):
        tiny_cml(w_cluster=-1.0)


def test_cluster_targets_are_balanced_assignments():
    """The codes CML trains on: every sample a distribution, every prototype used B/K times."""
    torch.manual_seed(0)
    obj = tiny_cml()
    keys = obj._teacher(torch.randn(64, 3, 12, 18, 1))
    scores = obj._scores(keys)
    codes = sinkhorn_knopp(scores, *obj.sinkhorn)
    torch.testing.assert_close(codes.sum(1), torch.ones(64))
    assert (codes.sum(0) - 64 / 8).abs().max() < 0.5  # 8 columns of 8, within 3 Sinkhorn iterations
    # a naive transcription of Sinkhorn-Knopp (SwAV, Algorithm 1) gives the same codes
    q = torch.exp(scores.double() / obj.sinkhorn[0]).t()
    q /= q.sum()
    for _ in range(obj.sinkhorn[1]):
        q /= q.sum(1, keepdim=True) * 8
        q /= q.sum(0, keepdim=True) * 64
    torch.testing.assert_close(codes.double(), (q * 64).t(), rtol=1e-4, atol=1e-6)


def test_masked_view_zeroes_whole_parts_every_frame():
    obj = tiny_cml()
    x = torch.randn(6, 3, 12, 18, 1) + 5
    xm, mask = obj.masked_view(x, torch.arange(6), 6)
    assert torch.equal(xm[mask[:, None, None, :, None].expand_as(x)], torch.zeros(int(mask.sum()) * 3 * 12))
    torch.testing.assert_close(xm[~mask[:, None, None, :, None].expand_as(x)], x[~mask[:, None, None, :, None]
                                                                                   .expand_as(x)])


@pytest.mark.slow
def test_short_run_loss_falls_and_probe_beats_untrained(tmp_path):
    """The data=mocap defaults (300 steps x 32): the loss falls and the linear probe on frozen features
    (the paper's evaluation protocol) beats the same encoder before training."""
    torch.manual_seed(0)
    train, test = mocap_windows()
    enc = STGCN(num_joints=18, num_persons=1, channels=[16, 32, 32], graph="humanoid", kernel_t=5)
    untrained = evaluate_encoder(enc, train, test, {}, seed=0)
    gens = {"augment": torch.Generator().manual_seed(0), "mask": torch.Generator().manual_seed(1)}
    obj = CML(enc, SkeletonAugment(), parts="humanoid", dim=64, hidden_dim=128, queue_size=64,
              num_prototypes=32, decoder_dim=32, generators=gens)
    cfg = TrainerConfig(steps=300, batch_size=32, lr=0.05, weight_decay=1e-4, warmup_steps=10, log_every=10,
                        progress=False, tensorboard=False)
    Trainer(obj, train, cfg, runtime=Runtime(device="cpu", seed=0), run_dir=tmp_path).fit()
    trained = evaluate_encoder(obj.encoder, train, test, {}, seed=0)
    rows = (tmp_path / "train.csv").read_text().splitlines()
    col = rows[0].split(",").index("loss")
    losses = [float(r.split(",")[col]) for r in rows[1:]]
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:2]), losses
    assert trained["linear_top1"] > untrained["linear_top1"], (trained, untrained)


def _cli(args, cwd):
    return subprocess.run([sys.executable, "-m", "representations.pretrain.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


TINY = ["steps=3", "batch_size=16", "log_every=1", "checkpoint_every=0", "threads=1", "progress=false",
        "encoder.channels=[8,16]", "encoder.kernel_t=3", "method.queue_size=32", "method.num_prototypes=8"]


def test_cli_cml_on_mocap_and_bad_pairings(tmp_path):
    from benchmarks.pretrain_skeleton import compose
    from representations.data import DataError
    from representations.pretrain.run import pretrain

    run_dir = tmp_path / "run"
    proc = _cli(["method=cml", *TINY, f"hydra.run.dir={run_dir}"], tmp_path)  # data=mocap encoder=stgcn implied
    assert proc.returncode == 0, proc.stderr
    result = json.loads((run_dir / "eval.json").read_text())
    assert result["data"] == "mocap" and result["method"] == "cml" and result["n_test"] > 0
    assert isinstance(load_pretrained(run_dir / "encoder.pt"), STGCN)
    from representations.pretrain.run import evaluate_run  # what mcrl-pretrain-eval RUN_DIR calls

    again = evaluate_run(run_dir)
    assert again["knn_top1"] == result["knn_top1"] and json.loads((run_dir / "eval.json").read_text()) == again
    proc = _cli(["method=cml", "data=fashion_mnist", *TINY, f"hydra.run.dir={tmp_path / 'bad'}"], tmp_path)
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "trains on skeletons" in lines[0], proc.stderr
    for args, error, fragment in ((["method=moco", "data=mocap", "encoder=stgcn"], ValueError, "needs method=cml"),
                                  (["method=moco", "data=mocap"], ValueError, "needs encoder=stgcn"),
                                  (["method=cml", "data=ntu", "data.path=null"], DataError, "data.path")):
        with pytest.raises(error, match=fragment):
            pretrain(compose([*args, *TINY[:6]]), tmp_path / "bad2")


def test_pretrain_on_ntu_format_arrays(tmp_path):
    """data=ntu on an ST-GCN style array + label pickle written here: trains and evaluates."""
    import pickle

    from representations.pretrain.build import load_data
    from tests.test_skeleton_data import PAPER_XSUB_TRAIN

    rng = np.random.default_rng(0)
    names = [f"S001C001P{PAPER_XSUB_TRAIN[i % 4] if i < 24 else 3:03d}R001A{i % 3 + 1:03d}" for i in range(32)]
    np.save(tmp_path / "data.npy", rng.normal(size=(32, 3, 20, 25, 2)).astype(np.float32))
    with (tmp_path / "label.pkl").open("wb") as fh:
        pickle.dump((names, [i % 3 for i in range(32)]), fh)
    from benchmarks.pretrain_skeleton import compose
    from representations.pretrain.run import pretrain

    cfg = compose(["method=cml", "data=ntu", f"data.path={tmp_path / 'data.npy'}",
                   f"data.label_path={tmp_path / 'label.pkl'}", "data.frames=12", *TINY])
    train, test = load_data(cfg["data"], 0)
    assert (len(train), len(test)) == (24, 8) and train.layout == "ntu"
    result = pretrain(cfg, tmp_path / "run")
    assert result["n_train"] == 24 and result["n_test"] == 8 and 0 <= result["knn_top1"] <= 100
