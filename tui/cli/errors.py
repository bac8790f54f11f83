"""The error a user can fix: printed as one line, the command exits with its code."""

from __future__ import annotations

from engine.spec import ExitCode


class UserError(Exception):
    """A mistake or condition the user can fix: printed as one line, exits with `code`."""

    def __init__(self, message: str, code: int = ExitCode.INVALID_INPUT) -> None:
        super().__init__(message)
        self.code = code
