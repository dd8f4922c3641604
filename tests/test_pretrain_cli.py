"""mcrl-pretrain end to end (run dir, encoder.pt, eval.json), mcrl-pretrain-eval, bad input."""

import gzip
import json
import subprocess
import sys

import pytest
import yaml

from representations.encoders import ResNetSmall, load_pretrained

from .pretrain_utils import needs_fashion

TINY = ["steps=12", "batch_size=32", "log_every=4", "checkpoint_every=6", "threads=1", "progress=false",
        "data.train_limit=512", "encoder.widths=[8,16]", "encoder.blocks=[1,1]", "method.queue_size=128",
        "method.hidden_dim=32", "method.dim=16", "eval.train_limit=500", "eval.test_limit=200",
       ]


def run(module, args, cwd):
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def assert_one_line_error(proc, fragment):
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def saliency_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrain")
    run_dir = root / "run"
    proc = run("representations.pretrain.cli", ["method=moco_saliency", "method.fill=blur", *TINY,
                                                f"hydra.run.dir={run_dir}"], root)
    assert proc.returncode == 0, proc.stderr
    assert "kNN top-1" in proc.stdout
    return run_dir


@needs_fashion
def test_run_directory(saliency_run):
    result = json.loads((saliency_run / "eval.json").read_text())
    assert {"knn_top1", "linear_top1"} <= set(result) and result["units"] == "percent"
    assert 0.0 <= result["knn_top1"] <= 100.0 and result["n_test"] == 200 and result["step"] == 12
    encoder = load_pretrained(saliency_run / "encoder.pt")
    assert isinstance(encoder, ResNetSmall) and encoder.init_kwargs["in_channels"] == 1
    cfg = yaml.safe_load((saliency_run / "config.yaml").read_text())
    assert cfg["method"]["name"] == "moco_saliency" and cfg["method"]["fill"] == "blur"
    summary = json.loads((saliency_run / "train_summary.json").read_text())
    assert summary["steps"] == 12 and summary["step_time_s"] > 0
    assert sorted(p.name for p in (saliency_run / "checkpoints").iterdir()) == ["ckpt_0000000006.pt",
                                                                                 "ckpt_0000000012.pt"]
    assert list((saliency_run / "tb").glob("events.out.tfevents.*"))
    assert (saliency_run / "train.csv").read_text().count("\n") == 4  # header + steps 4, 8, 12


@needs_fashion
def test_pretrain_eval_cli(saliency_run, tmp_path):
    before = (saliency_run / "eval.json").read_bytes()
    args = [str(saliency_run), "--test-limit", "100"]
    refused = run("representations.pretrain.evaluate", args, tmp_path)  # other settings than eval.json's
    assert refused.returncode == 2 and "--overwrite" in refused.stderr
    assert (saliency_run / "eval.json").read_bytes() == before
    proc = run("representations.pretrain.evaluate", [*args, "--overwrite"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "kNN top-1" in proc.stdout
    assert json.loads((saliency_run / "eval.json").read_text())["n_test"] == 100
    # the probe holdout can be chosen at evaluation; images name no sources, so the random one runs and says why
    proc = run("representations.pretrain.evaluate", [*args, "--probe-holdout", "latest", "--overwrite"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((saliency_run / "eval.json").read_text())
    assert result["probe_holdout"] == "random (eval.probe_holdout=latest, but the data names no sources)"
    assert result["eval_settings"]["probe_holdout"] == "latest"


@needs_fashion
def test_micl_cli(tmp_path):
    args = ["method=micl", "encoder=vit", "encoder.width=32", "encoder.depth=1", "encoder.heads=2", "steps=4",
            "batch_size=32", "threads=1", "progress=false", "data.train_limit=256", "eval.train_limit=200",
            "eval.test_limit=100", f"hydra.run.dir={tmp_path / 'run'}"]
    proc = run("representations.pretrain.cli", args, tmp_path)
    assert proc.returncode == 0, proc.stderr
    micl_vit = load_pretrained(tmp_path / "run" / "encoder.pt")
    assert micl_vit.num_cls == 1 and not micl_vit.pos_embed.requires_grad


def test_unknown_method(tmp_path):
    assert_one_line_error(run("representations.pretrain.cli", ["method=simclr"], tmp_path), "unknown method 'simclr'")


def test_missing_data_path(tmp_path):
    proc = run("representations.pretrain.cli", ["data.root=/nonexistent/fmnist", "progress=false",
                                                f"hydra.run.dir={tmp_path / 'r'}"], tmp_path)
    assert_one_line_error(proc, "apt-get install dataset-fashion-mnist")


def test_corrupt_idx_header(tmp_path):
    root = tmp_path / "fm"
    root.mkdir()
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (root / f"{stem}.gz").write_bytes(gzip.compress(b"\x13\x37\x08\x03" + bytes(64)))
    proc = run("representations.pretrain.cli", [f"data.root={root}", "progress=false",
                                                f"hydra.run.dir={tmp_path / 'r'}"], tmp_path)
    assert_one_line_error(proc, "corrupt IDX header")


def test_micl_with_a_resnet_and_eval_of_a_missing_run(tmp_path):
    proc = run("representations.pretrain.cli", ["method=micl", "progress=false", "data.train_limit=64",
                                                f"hydra.run.dir={tmp_path / 'r'}"], tmp_path)
    assert_one_line_error(proc, "micl needs encoder=vit")
    proc = run("representations.pretrain.evaluate", [str(tmp_path / "nothing")], tmp_path)
    assert_one_line_error(proc, "run directory not found")


@needs_fashion
def test_exported_image_encoder_records_its_input_normalisation(saliency_run):
    from representations.encoders import input_normalisation
    from representations.objectives.base import PIXEL_MEAN, PIXEL_STD

    assert input_normalisation(saliency_run / "encoder.pt") == (PIXEL_MEAN, PIXEL_STD)


def test_init_starts_the_encoder_from_a_saved_one(tmp_path):
    """init=PATH loads a saved encoder.pt into the new run's encoder; a mismatch is one UserError line."""
    import torch

    from representations.core.errors import UserError
    from representations.encoders import save_encoder
    from representations.pretrain.build import initialise_encoder

    torch.manual_seed(0)
    source = ResNetSmall(in_channels=1, widths=[8, 16], blocks=[1, 1])
    save_encoder(source, tmp_path / "encoder.pt")
    torch.manual_seed(1)
    target = ResNetSmall(in_channels=1, widths=[8, 16], blocks=[1, 1])
    assert not torch.equal(target.stem[0].weight, source.stem[0].weight)
    initialise_encoder(target, tmp_path / "encoder.pt")
    for (name, a), b in zip(source.state_dict().items(), target.state_dict().values()):
        assert torch.equal(a, b), name
    with pytest.raises(UserError, match="do not fit this ResNetSmall"):
        initialise_encoder(ResNetSmall(in_channels=1, widths=[8, 32], blocks=[1, 1]), tmp_path / "encoder.pt")
    with pytest.raises(UserError, match="no encoder file"):
        initialise_encoder(target, tmp_path / "missing.pt")
