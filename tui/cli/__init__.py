"""The `hp-tui` command: the parser, the headless commands and their one-line errors.

`python -m tui.cli` and the `hp-tui` script both call `main`.
"""

from __future__ import annotations

from tui.cli.main import main

__all__ = ["main"]
