"""The one way mcrl writes a file that someone else reads: whole or not at all.

A run killed mid-write (Ctrl-C, a SLURM pre-emption, a full disk) must never leave a half-written
checkpoint, summary or result file where resume, the reporter or a benchmark expects a whole one.
Writers go to a temp file in the target's folder (same file system, so the rename is atomic), which
is flushed to disk and renamed over the target; on any error the temp file is removed and the old
target, if any, is untouched.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside ``path`` for any writer; on success it replaces ``path``.

    The temp name keeps the target's suffix, for writers that choose a format by it (``np.savez``
    appends ``.npz`` to other names; PyAV picks the container from the extension).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        yield tmp
        with tmp.open("rb") as written:  # fsync: the rename must not outlive the data on a crash
            os.fsync(written.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Replace ``path`` with ``text`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def atomic_write_json(path: str | Path, payload: Any, **dumps: Any) -> Path:
    """Replace ``path`` with ``payload`` as indented JSON (one trailing newline) atomically."""
    return atomic_write_text(path, json.dumps(payload, indent=2, **dumps) + "\n")
