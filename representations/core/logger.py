"""Logger: TensorBoard scalars, one CSV file per stream, and a console progress bar.

CSV rows are flushed as they are written so that a crash never loses what was already logged.
On resume from step S, CSV rows and TensorBoard events past S are dropped (S itself is kept, it was
logged before the checkpoint) so curves neither double back nor lose a point, and the wall clock
continues from the checkpoint's ``elapsed`` seconds.
"""

from __future__ import annotations

import csv
import math
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from representations.core.atomic import atomic_path


def _as_float(value: Any) -> float:
    if hasattr(value, "item"):
        value = value.item()
    return float(value)


def read_csv_column(path: str | Path, name: str) -> list[float]:
    """One numeric column of a CSV stream the Logger wrote (e.g. ``train.csv``'s ``loss``), by name:
    the Logger may widen the header on the way, so positions are not stable."""
    with Path(path).open(newline="") as f:
        return [float(row[name]) for row in csv.DictReader(f) if row.get(name) not in (None, "")]


class CSVStream:
    """Append-only CSV with a header fixed by the first row (or given up front)."""

    def __init__(self, path: Path, fieldnames: list[str] | None = None, step_key: str = "env_step",
                 resume_step: int | None = None) -> None:
        self.path = path
        self.step_key = step_key
        self.fieldnames = list(fieldnames) if fieldnames else None
        if resume_step is not None and path.exists():
            self._truncate_after(resume_step)
        elif path.exists() and path.stat().st_size > 0:
            raise FileExistsError(f"{path} already holds a run's log; resume it or write to another folder")
        if path.exists():
            with path.open(newline="") as f:
                header = next(csv.reader(f), None)
            if header:
                self.fieldnames = header
        self._file = path.open("a", newline="")
        self._writer: csv.DictWriter | None = None
        if self.fieldnames and path.stat().st_size > 0:
            self._writer = csv.DictWriter(self._file, fieldnames=self.fieldnames, extrasaction="ignore")

    def _truncate_after(self, step: int) -> None:
        with self.path.open(newline="") as f:
            rows = list(csv.DictReader(f))
            header = list(rows[0].keys()) if rows else None
        keep = [r for r in rows if r.get(self.step_key) not in (None, "") and float(r[self.step_key]) <= step]
        with atomic_path(self.path) as tmp, tmp.open("w", newline="") as f:
            if header:
                writer = csv.DictWriter(f, fieldnames=header)
                writer.writeheader()
                writer.writerows(keep)

    def _grow_header(self, extra: list[str]) -> None:
        """New columns appeared (e.g. actor loss after warm-up): rewrite the file with a wider header."""
        self._file.close()
        with self.path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        self.fieldnames = [*(self.fieldnames or []), *extra]
        with atomic_path(self.path) as tmp, tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.fieldnames)
            writer.writeheader()
            writer.writerows(rows)
        self._file = self.path.open("a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=self.fieldnames, extrasaction="ignore")

    def write(self, row: Mapping[str, Any]) -> None:
        if self._writer is not None and (extra := [k for k in row if k not in self.fieldnames]):
            self._grow_header(extra)
        if self._writer is None:
            if self.fieldnames is None:
                self.fieldnames = list(row.keys())
            self._writer = csv.DictWriter(self._file, fieldnames=self.fieldnames, extrasaction="ignore")
            self._writer.writeheader()
        self._writer.writerow({k: row.get(k, "") for k in self.fieldnames})
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class Logger:
    """One run's outputs: ``tb/`` events, ``<stream>.csv`` files and a tqdm progress bar.

    ``total`` and ``unit`` describe the x-axis (env steps for RL, optimiser steps for pretraining);
    the bar shows its rate and ETA, plus the last eval return once there is one.
    """

    def __init__(self, run_dir: str | Path, *, total: int, unit: str = "env_step",
                 csv_fields: Mapping[str, list[str] | None] | None = None, tensorboard: bool = True,
                 progress: bool = True, resume_step: int | None = None, initial: int = 0,
                 elapsed: float = 0.0) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.unit = unit
        self._streams: dict[str, CSVStream] = {}
        for name, fields in (csv_fields or {}).items():
            self._streams[name] = CSVStream(self.run_dir / f"{name}.csv", fields, unit, resume_step)
        self._resume_step = resume_step
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step hides events with step >= purge_step: keep the checkpoint's own step S
            purge = None if resume_step is None else resume_step + 1
            self._tb = SummaryWriter(log_dir=str(self.run_dir / "tb"), purge_step=purge)
        self._bar = None
        if progress:
            self._bar = tqdm(total=total, initial=initial, unit=unit.replace("_", " "), dynamic_ncols=True,
                             mininterval=1.0 if sys.stderr.isatty() else 30.0, file=sys.stderr)
        self._postfix: dict[str, str] = {}
        self.start_time = time.time() - float(elapsed)

    def scalars(self, values: Mapping[str, Any], step: int) -> None:
        """TensorBoard scalars with full names (``train/critic_loss``, ``eval/mean_reward``)."""
        if self._tb is None:
            return
        for name, value in values.items():
            v = _as_float(value)
            if math.isfinite(v):
                self._tb.add_scalar(name, v, step)

    def row(self, stream: str, values: Mapping[str, Any]) -> None:
        """Append one row to ``<stream>.csv`` (created on first use)."""
        if stream not in self._streams:
            self._streams[stream] = CSVStream(self.run_dir / f"{stream}.csv", None, self.unit, self._resume_step)
        self._streams[stream].write(values)

    def progress(self, step: int, **postfix: float | str) -> None:
        """Move the bar to ``step`` and update the fields shown after it."""
        if self._bar is None:
            return
        for key, value in postfix.items():
            self._postfix[key] = f"{value:.1f}" if isinstance(value, float) else str(value)
        if self._postfix:
            self._bar.set_postfix(self._postfix, refresh=False)
        self._bar.update(step - self._bar.n)

    def clear_postfix(self, key: str) -> None:
        """Drop one field shown after the bar (e.g. an evaluation's episode count once it is over)."""
        self._postfix.pop(key, None)
        if self._bar is not None:
            self._bar.set_postfix(self._postfix, refresh=False)

    def resume_rate(self) -> None:
        """Restart the bar's clock after a pause (an evaluation), so the rate and ETA stay those of
        training rather than being dragged down by the minutes the pause took."""
        if self._bar is not None:
            self._bar.unpause()

    def message(self, text: str) -> None:
        """A line printed above the bar without breaking it."""
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr)

    def elapsed(self) -> float:
        """Seconds of this run so far, earlier sessions of a resumed run included."""
        return time.time() - self.start_time

    def flush(self) -> None:
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        for stream in self._streams.values():
            stream.close()
        if self._tb is not None:
            self._tb.close()
        if self._bar is not None:
            self._bar.close()
