"""Exit codes of `hp-tui` and of its runner process, once: scripts and the CLI read them."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # the runner or a trial failed
    USAGE = 2  # argparse's own code for bad arguments
    INVALID_INPUT = 3  # invalid preset, dataset or option value
    STORE = 4  # the store cannot be opened or written
    BUSY = 5  # another runner holds the study
    VAULT_REFUSED = 6  # the vault was already opened, or confirmation was not given
    INTERRUPTED = 130  # Ctrl-C, or the runner was stopped
