"""Trainer core runtime pieces: Runtime seeding, Logger outputs, atomic writes and the Checkpointer."""

import csv
import json

import numpy as np
import pytest
import torch

from representations.core import Checkpointer, CheckpointError, Logger, Runtime, load_checkpoint
from representations.core.atomic import atomic_path, atomic_write_json
from representations.core.logger import read_csv_column


def test_runtime_cpu_policy_and_seeding():
    rt = Runtime(device="cpu", seed=3)
    assert rt.precision == "fp32" and rt.autocast_dtype is None
    Runtime(device="cpu", seed=3)
    b = torch.rand(3)
    Runtime(device="cpu", seed=3)
    assert torch.equal(b, torch.rand(3))


def test_component_generators_are_independent_and_stable():
    rt1, rt2 = Runtime(device="cpu", seed=7), Runtime(device="cpu", seed=7)
    x = torch.rand(4, generator=rt1.generator("replay"))
    torch.rand(100, generator=rt2.generator("agent"))  # consuming another component's stream ...
    assert torch.equal(x, torch.rand(4, generator=rt2.generator("replay")))  # ... does not shift this one
    assert rt1.component_seed("replay") != rt1.component_seed("agent")
    assert Runtime(device="cpu", seed=8).component_seed("replay") != rt1.component_seed("replay")


def test_runtime_rejects_bad_settings():
    with pytest.raises(ValueError, match="precision"):
        Runtime(device="cpu", precision="fp8")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            Runtime(device="cuda")


def test_atomic_write_replaces_whole_or_keeps_the_old_file(tmp_path):
    target = tmp_path / "sub" / "result.json"
    atomic_write_json(target, {"a": 1})  # creates the folder
    assert json.loads(target.read_text()) == {"a": 1} and target.read_text().endswith("}\n")
    with pytest.raises(ValueError, match="NaN"), atomic_path(target) as tmp:
        tmp.write_text('{"a": 2')  # half-written ...
        raise ValueError("NaN in the payload")  # ... then the writer fails
    assert json.loads(target.read_text()) == {"a": 1}  # old content, untouched
    assert sorted(p.name for p in target.parent.iterdir()) == ["result.json"]  # no temp file left


def test_atomic_path_keeps_the_suffix_writers_choose_formats_by(tmp_path):
    target = tmp_path / "frames.npz"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.suffix == ".npz" and tmp.name.startswith(".")
        np.savez_compressed(tmp, x=np.arange(3))  # would write tmp + ".npz" if the suffix differed
    assert np.array_equal(np.load(target)["x"], np.arange(3))
    assert [p.name for p in tmp_path.iterdir()] == ["frames.npz"]


def test_checkpointer_atomic_keep_last_and_weights_only(tmp_path):
    ck = Checkpointer(tmp_path / "ck", keep=2)
    for step in (10, 20, 30):
        ck.save(step, {"model": torch.nn.Linear(2, 2).state_dict()}, {"env_step": step}, {"lr": 1e-3, "name": "x"})
    assert [p.name for p in ck.paths()] == ["ckpt_0000000020.pt", "ckpt_0000000030.pt"]
    state = torch.load(ck.latest(), weights_only=True)
    assert state["counters"]["env_step"] == 30 and state["config"]["name"] == "x"
    assert not list((tmp_path / "ck").glob("*.tmp*"))


def test_failed_save_leaves_previous_checkpoint_intact(tmp_path):
    ck = Checkpointer(tmp_path, keep=3)
    good = ck.save(1, {"w": torch.ones(2)}, {"env_step": 1})
    with pytest.raises((AttributeError, TypeError, RuntimeError)):  # pickling a lambda fails
        ck.save(2, {"w": lambda: None}, {"env_step": 2})  # unpicklable: the save fails mid-way
    assert ck.latest() == good and torch.equal(load_checkpoint(good)["state"]["w"], torch.ones(2))
    assert not list(tmp_path.glob(".*tmp*"))


def test_corrupt_checkpoint_is_one_clear_error(tmp_path):
    bad = tmp_path / "ckpt_0000000001.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_logger_writes_csv_tensorboard_and_grows_header(tmp_path):
    log = Logger(tmp_path, total=100, csv_fields={"eval": ["env_step", "return_mean"]}, progress=False)
    log.row("eval", {"env_step": 0, "return_mean": 1.5})
    log.row("train", {"env_step": 10, "fps": 3})
    log.row("train", {"env_step": 20, "fps": 4, "actor_loss": 0.5})  # a column that appears later
    log.scalars({"eval/mean_reward": 1.5}, 0)
    log.close()
    rows = list(csv.DictReader((tmp_path / "train.csv").open()))
    assert rows == [{"env_step": "10", "fps": "3", "actor_loss": ""},
                    {"env_step": "20", "fps": "4", "actor_loss": "0.5"}]
    assert read_csv_column(tmp_path / "train.csv", "fps") == [3.0, 4.0]
    assert read_csv_column(tmp_path / "train.csv", "actor_loss") == [0.5]  # rows before the column: skipped
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    assert [e.value for e in acc.Scalars("eval/mean_reward")] == [1.5]


def test_logger_refuses_to_overwrite_an_existing_log(tmp_path):
    log = Logger(tmp_path, total=10, csv_fields={"eval": ["env_step"]}, progress=False, tensorboard=False)
    log.row("eval", {"env_step": 0})
    log.close()
    with pytest.raises(FileExistsError, match="already holds"):
        Logger(tmp_path, total=10, csv_fields={"eval": ["env_step"]}, progress=False, tensorboard=False)
    assert (tmp_path / "eval.csv").read_text().splitlines() == ["env_step", "0"]


def test_logger_resume_drops_rows_after_the_checkpoint(tmp_path):
    log = Logger(tmp_path, total=100, csv_fields={"eval": ["env_step", "return_mean"]}, progress=False,
                 tensorboard=False)
    for step in (0, 10, 20, 30):
        log.row("eval", {"env_step": step, "return_mean": step})
    log.close()
    log = Logger(tmp_path, total=100, csv_fields={"eval": ["env_step", "return_mean"]}, progress=False,
                 tensorboard=False, resume_step=20)
    log.row("eval", {"env_step": 30, "return_mean": 99})
    log.close()
    rows = list(csv.DictReader((tmp_path / "eval.csv").open()))
    assert [(r["env_step"], r["return_mean"]) for r in rows] == [("0", "0"), ("10", "10"), ("20", "20"), ("30", "99")]


def test_progress_rate_and_eta_leave_out_an_evaluation_pause(tmp_path, monkeypatch):
    """10 steps/s of training, then a 100 s evaluation: the bar keeps showing about 10 steps/s and the
    matching ETA, not the rate averaged over the pause."""
    import io

    clock = [1000.0]
    log = Logger(tmp_path, total=1000, csv_fields={}, tensorboard=False)
    bar = log._bar
    bar.fp, bar._time = io.StringIO(), lambda: clock[0]
    bar.start_t = bar.last_print_t = clock[0]
    bar.mininterval = bar.miniters = 0
    for step in range(10, 110, 10):  # 10 steps every second
        clock[0] += 1.0
        log.progress(step)
    assert bar.format_dict["rate"] == pytest.approx(10.0)
    clock[0] += 100.0  # an evaluation
    log.resume_rate()
    clock[0] += 1.0
    log.progress(110)
    rate = bar.format_dict["rate"]
    assert rate == pytest.approx(10.0, rel=0.05)
    remaining_s = (bar.total - bar.n) / rate
    assert remaining_s == pytest.approx(89.0, rel=0.05)
    log.close()
