"""User-facing errors: one clear line and exit code 2, never a traceback.

``UserError`` is the project's one user-error type: validation raises it, and the five CLIs wrap
their entry with ``exit_on_user_error``. Nothing else is caught, so an internal bug (a plain
``ValueError`` deep in a module) still shows its traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")


class UserError(ValueError):
    """Bad input from the user (unknown name, bad size, missing file). Printed as one line."""


class TrainingDiverged(UserError, FloatingPointError):
    """The loss became NaN/inf under the user's settings (lr, precision): one line, with what to change."""


def one_line(err: BaseException) -> str:
    """The first line of an error's message (the type name when it has none)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def fail(prog: str, message: str) -> None:
    """Print ``prog: error: message`` (first line only) and exit with status 2."""
    print(f"{prog}: error: {message.strip().splitlines()[0] if message.strip() else 'failed'}", file=sys.stderr)
    sys.exit(2)


@contextmanager
def as_user_error(*types: type[BaseException], prefix: str = "") -> Iterator[None]:
    """Re-raise ``types`` from a user-supplied input (a file, a config value) as ``UserError``.

    For the few places where a library's own exception is the validation (e.g. unpickling a
    file the user named); keep the block as small as the input it checks.
    """
    try:
        yield
    except types as err:
        detail = one_line(err) if isinstance(err, (ValueError, OSError)) else f"{type(err).__name__}: {one_line(err)}"
        raise UserError(f"{prefix}{detail}") from err


def exit_on_user_error(prog: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Turn a ``UserError`` raised by a CLI entry into ``prog: error: ...`` + exit 2 (nothing else)."""

    def wrap(fn: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(fn)
        def run(*args: object, **kwargs: object) -> T:
            try:
                return fn(*args, **kwargs)
            except UserError as err:
                fail(prog, one_line(err))
                raise AssertionError("unreachable") from err

        return run

    return wrap
