"""User-facing errors: one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class UserError(ValueError):
    """Bad input from the user (unknown name, bad size, missing file). Printed as one line."""


def exit_on_user_error(prog: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Turn UserError/ValueError/FileNotFoundError raised by a CLI entry into ``prog: error: ...`` + exit 2."""

    def wrap(fn: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(fn)
        def run(*args: object, **kwargs: object) -> T:
            try:
                return fn(*args, **kwargs)
            except (UserError, ValueError, FileNotFoundError) as err:
                message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                print(f"{prog}: error: {message}", file=sys.stderr)
                sys.exit(2)

        return run

    return wrap
