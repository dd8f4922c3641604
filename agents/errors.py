"""User-facing errors for the RL CLIs: the project's one error path lives in representations.core.errors."""

from representations.core.errors import UserError, as_user_error, exit_on_user_error, fail, one_line

__all__ = ["UserError", "as_user_error", "exit_on_user_error", "fail", "one_line"]
