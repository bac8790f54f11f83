"""Shown instead of the app while the terminal is smaller than 80x24."""

from __future__ import annotations

from contextlib import suppress

from textual.app import ComposeResult
from textual.css.query import NoMatches
from textual.screen import ModalScreen
from textual.widgets import Static


class TooSmallScreen(ModalScreen[None]):
    BINDINGS = [("ctrl+q", "app.quit", "Quit")]

    def __init__(self, width: int, height: int) -> None:
        super().__init__()
        self.width, self.height = width, height

    def compose(self) -> ComposeResult:
        yield Static(self._message(), id="too-small")

    def _message(self) -> str:
        # Short lines: this must stay readable in the smallest window.
        return (f"The terminal is {self.width}x{self.height};\nhp-tui needs at least 80x24.\n"
                "Enlarge the window\n(ctrl+q quits).")

    def show_size(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        with suppress(NoMatches):  # not composed yet: compose uses the new size
            self.query_one("#too-small", Static).update(self._message())
