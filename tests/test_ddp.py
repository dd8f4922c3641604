"""2-process DDP (gloo, CPU) matches 1 process with the same global batch.

Same global batch of 16 (2 x 8), same seeds. Encoders without BatchNorm (ConvEncoder for the MoCo
family, ViT/LayerNorm for MiCL): per-rank BN statistics would legitimately differ (use
``sync_bn=true`` on CUDA for that). Augmentations and masks are drawn for the global batch and
indexed by global row, keys are all-gathered into the queue, MiCL gathers with gradient.
Tolerance: per-step losses within 1e-4 absolute (observed ~1e-6: float summation order only).
"""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from representations.core import Runtime
from representations.core.distributed import DistContext
from representations.core.trainer import Trainer, TrainerConfig
from representations.encoders import ConvEncoder
from representations.objectives import MiCL, MoCo, MoCoSaliency

from .pretrain_utils import augment, fashion_subset, generators, needs_fashion, tiny_vit

TOLERANCE = 1e-4
STEPS = 5


def _conv():
    torch.manual_seed(0)
    return ConvEncoder(in_channels=1, image_size=28, num_layers=2, num_filters=8, feature_dim=16)


def _methods():
    kw = dict(dim=8, hidden_dim=16, queue_size=48, generators=generators(3))
    torch.manual_seed(0)
    vit = tiny_vit()
    return {
        "moco": (lambda: MoCo(_conv(), augment(), **kw), "sgd", 0.1),
        "moco_saliency": (lambda: MoCoSaliency(_conv(), augment(), fill="zero", **kw), "sgd", 0.1),
        "micl": (lambda: MiCL(vit, augment(), generators=generators(3)), "adamw", 1e-3),
    }


def _losses(name, run_dir, ctx):
    make, optimizer, lr = _methods()[name]
    torch.manual_seed(0)
    objective = make()
    cfg = TrainerConfig(steps=STEPS, batch_size=16, optimizer=optimizer, lr=lr, log_every=1, progress=False,
                        tensorboard=False, checkpoint_every=0)
    trainer = Trainer(objective, fashion_subset(128), cfg, runtime=Runtime(device="cpu", seed=0),
                      run_dir=run_dir, dist=ctx)
    trainer.fit()
    return trainer.losses


def _worker(rank, port, run_dir, out):
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        ctx = DistContext(rank=rank, world_size=2, backend="gloo")
        result = {name: _losses(name, f"{run_dir}/{name}", ctx) for name in _methods()}
        if rank == 0:
            torch.save(result, out)
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@needs_fashion
def test_two_processes_match_one(tmp_path):
    out = tmp_path / "ddp.pt"
    mp.spawn(_worker, args=(_free_port(), str(tmp_path / "ddp"), str(out)), nprocs=2, join=True)
    two = torch.load(out, weights_only=True)
    for name in _methods():
        one = _losses(name, tmp_path / "single" / name, DistContext())
        assert len(one) == len(two[name]) == STEPS
        diff = max(abs(a - b) for a, b in zip(one, two[name]))
        print(f"{name}: max |1-proc - 2-proc| loss difference {diff:.2e}")
        assert diff < TOLERANCE, (name, one, two[name])


@pytest.mark.slow
def test_torchrun_cli(tmp_path):
    """The CLI under torchrun: one run directory, written by rank 0 only."""
    import subprocess
    import sys

    run_dir = tmp_path / "run"
    args = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
            str(_free_port()), "-m", "representations.pretrain.cli", "encoder=conv", "encoder.num_layers=2",
            "encoder.num_filters=8", "steps=6", "batch_size=32", "threads=1", "progress=false",
            "data.train_limit=512", "method.queue_size=128", "eval.train_limit=300", "eval.test_limit=100",
            f"hydra.run.dir={run_dir}"]
    proc = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert (run_dir / "eval.json").is_file() and (run_dir / "encoder.pt").is_file()
    assert '"world_size": 2' in (run_dir / "train_summary.json").read_text()


def _m2crl_worker(rank, port, run_dir, out, listing=None, stream=False):
    """Tiny M2CRL under DDP for 4 steps: 2 with the prototypes frozen (one epoch), 2 without. With
    ``listing``, on those video files: decoded up front, or per batch with ``stream``."""
    from representations.data.video import ClipEntries, VideoData, parse_clip_list
    from representations.data.video_views import MultiViewConfig, MultiViewSampler
    from representations.encoders import VideoViT
    from representations.objectives import M2CRL

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        encoder = VideoViT(image_size=32, patch_size=8, num_frames=4, tubelet_size=2, width=32, depth=1, heads=2,
                           attention="divided", mask_token=True)
        views = MultiViewSampler(MultiViewConfig(global_size=32, local_size=24, global_frames=(4, 4),
                                                 local_frames=(2, 2), global_offset=0.1, local_span=0.5))
        objective = M2CRL(encoder, views, out_dim=32, hidden_dim=16, bottleneck_dim=8, generators=generators(3))
        start = objective.head.prototypes.detach().clone()
        clips = torch.randint(0, 256, (16, 3, 4, 32, 32), generator=torch.Generator().manual_seed(0),
                              dtype=torch.uint8)
        cfg = TrainerConfig(steps=4, batch_size=8, optimizer="adamw", lr=1e-3, log_every=1, progress=False,
                            tensorboard=False, checkpoint_every=0)
        data = VideoData(clips, torch.arange(16) % 2)
        if listing is not None:
            entries = ClipEntries.of(parse_clip_list(listing)[0], [], "clips")
            data = entries.stream(4, 32, workers=2) if stream else entries.decode(4, 32)
        trainer = Trainer(objective, data, cfg,
                          runtime=Runtime(device="cpu", seed=0), run_dir=run_dir, dist=DistContext(
                              rank=rank, world_size=2, backend="gloo"))
        trainer.fit()
        moved = float((objective.head.prototypes.detach() - start).abs().max())
        torch.save({"losses": trainer.losses, "moved": moved,
                    "params": [p.detach().clone() for p in objective.parameters()]}, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def test_m2crl_trains_under_ddp_through_its_frozen_first_epoch(tmp_path):
    """The frozen prototypes get a zero (not a missing) gradient, so DDP's reducer sees every
    parameter; after the frozen epoch they learn, and both ranks hold the same weights."""
    out = tmp_path / "m2crl"
    mp.spawn(_m2crl_worker, args=(_free_port(), str(tmp_path / "run"), str(out)), nprocs=2, join=True)
    ranks = [torch.load(f"{out}.{r}", weights_only=True) for r in range(2)]
    assert len(ranks[0]["losses"]) == 4 and all(torch.isfinite(torch.tensor(ranks[0]["losses"])))
    assert ranks[0]["moved"] > 0
    for a, b in zip(ranks[0]["params"], ranks[1]["params"]):
        assert torch.allclose(a, b, atol=1e-6)


def test_m2crl_streamed_under_ddp_is_the_in_memory_run(tmp_path):
    """data.stream under DDP: each rank decodes (and prefetches) its own shard's clips; the losses and
    weights equal those of the same DDP run on the clips decoded up front."""
    from representations.data.video import write_video

    frames = torch.randint(0, 256, (16, 4, 32, 32, 3), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    for i in range(16):
        write_video(tmp_path / f"{i}.mp4", frames[i].numpy())
    listing = tmp_path / "clips.csv"
    listing.write_text("".join(f"{i}.mp4,{i % 2}\n" for i in range(16)))
    runs = {}
    for stream in (False, True):
        out = tmp_path / f"stream_{stream}"
        mp.spawn(_m2crl_worker, args=(_free_port(), str(tmp_path / f"run_{stream}"), str(out), str(listing), stream),
                 nprocs=2, join=True)
        runs[stream] = [torch.load(f"{out}.{r}", weights_only=True) for r in range(2)]
    for rank in range(2):
        assert runs[True][rank]["losses"] == runs[False][rank]["losses"]
        for a, b in zip(runs[True][rank]["params"], runs[False][rank]["params"]):
            assert torch.equal(a, b)
