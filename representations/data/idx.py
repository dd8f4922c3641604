"""IDX (MNIST-format) files: a 4-byte magic (0, 0, dtype code, ndim), ndim big-endian int32 sizes,
then the array in row-major big-endian order. Gzipped files are read transparently.

Only numpy is needed. A header that does not describe the bytes that follow is reported in one line
(``DataError``) rather than as a reshape traceback, because a truncated download is the common case.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from representations.core.errors import UserError

# IDX type code -> big-endian numpy dtype.
_DTYPES: dict[int, str] = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DataError(UserError):
    """A data file or folder that is missing, corrupt or not in the expected format."""


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    try:
        with path.open("rb") as f:
            head = f.read(2)
        opener = gzip.open if head == b"\x1f\x8b" else open
        with opener(path, "rb") as f:  # type: ignore[operator]
            return f.read()
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise DataError(f"cannot read {path}: {err}") from None


def parse_idx(raw: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode IDX bytes into a native-endian numpy array; DataError on a bad header or length."""
    if len(raw) < 4:
        raise DataError(f"{name}: not an IDX file (only {len(raw)} bytes)")
    zero0, zero1, code, ndim = raw[0], raw[1], raw[2], raw[3]
    if zero0 != 0 or zero1 != 0 or code not in _DTYPES or not 1 <= ndim <= 8:
        raise DataError(
            f"{name}: corrupt IDX header (magic bytes {raw[:4].hex()}; expected 0000 + type code "
            f"{'/'.join(f'{c:02x}' for c in _DTYPES)} + 1..8 dims)"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{name}: truncated IDX header ({len(raw)} bytes, need {header})")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    dtype = np.dtype(_DTYPES[code])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(
            f"{name}: IDX header says shape {shape} ({expected} bytes of data) but the file holds "
            f"{len(raw) - header} bytes (truncated or corrupt)"
        )
    array = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (raw or gzipped)."""
    path = Path(path)
    return parse_idx(_read_bytes(path), str(path))


def write_idx(array: np.ndarray, path: str | Path, compress: bool | None = None) -> Path:
    """Write an IDX file (gzipped when the name ends in .gz); used by tests and data converters."""
    path = Path(path)
    array = np.asarray(array)
    codes = {np.dtype(v).newbyteorder("=").str: k for k, v in _DTYPES.items()}
    native = array.dtype.newbyteorder("=")
    code = codes.get(native.str)
    if code is None:
        raise DataError(f"IDX cannot store dtype {array.dtype}")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">i4").tobytes()
    body = array.astype(np.dtype(_DTYPES[code])).tobytes()
    compress = path.suffix == ".gz" if compress is None else compress
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:  # type: ignore[operator]
        f.write(header + body)
    return path
