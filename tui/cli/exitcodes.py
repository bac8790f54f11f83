"""Exit codes of the `hp-tui` command and the error type that carries them."""

from __future__ import annotations

OK = 0
FAILED = 1  # the runner or a trial failed
USAGE = 2  # argparse's own code for bad arguments
INVALID_INPUT = 3  # invalid preset, dataset or option value
STORE = 4  # the store cannot be opened or written
BUSY = 5  # another runner holds the study
VAULT_REFUSED = 6  # the vault was already opened, or confirmation was not given
INTERRUPTED = 130  # Ctrl-C


class UserError(Exception):
    """A mistake or condition the user can fix: printed as one line, exits with `code`."""

    def __init__(self, message: str, code: int = INVALID_INPUT) -> None:
        super().__init__(message)
        self.code = code
