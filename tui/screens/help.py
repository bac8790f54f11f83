"""`?`: the keys of the screen below and what that screen is for."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import ActiveBinding, Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close", id="close")]

    def __init__(self, under: Screen, bindings: list[ActiveBinding]) -> None:
        super().__init__()
        self.under, self.bindings = under, bindings

    def compose(self) -> ComposeResult:
        purpose = " ".join((self.under.__doc__ or "").split())
        table = Table(show_header=True, header_style="bold", box=None, expand=True)
        table.add_column("key")
        table.add_column("action")
        seen: set[str] = set()
        for active in self.bindings:
            b = active.binding
            if not b.description or b.description in seen:
                continue
            seen.add(b.description)
            text = b.description + (f": {b.tooltip}" if b.tooltip else "")
            table.add_row(self.app.get_key_display(b), text if active.enabled else
                          f"[dim]{text} (not now)[/]")
        table.add_row("ctrl+p", "command palette: every action by name")
        with VerticalScroll(id="help-box"):
            yield Static(f"[b]{type(self.under).__name__.removesuffix('Screen')}[/b]  "
                         f"{purpose}", id="help-purpose")
            yield Static(table, id="help-keys")
            yield Static("[dim]escape closes this help[/]")
