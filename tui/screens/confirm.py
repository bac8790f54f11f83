"""Yes/no modals: overwrite a preset file, open the test vault."""

from __future__ import annotations

from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class Confirm(ModalScreen[bool]):
    """A question with Yes / No; `y`/`n` answer from the keyboard, escape is No."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="yes"),
        Binding("n,escape", "answer(False)", "No", id="no"),
    ]

    def __init__(self, question: str, yes: str = "Yes", no: str = "No") -> None:
        super().__init__()
        self.question, self.yes, self.no = question, yes, no

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.question, classes="question")
            with Horizontal(classes="buttons"):
                yield Button(f"{self.yes} (y)", id="yes", variant="warning")
                yield Button(f"{self.no} (n)", id="no", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()  # the safe answer is the default

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class ConfirmOverwrite(Confirm):
    def __init__(self, path: str) -> None:
        super().__init__(f"{path} already exists.\nOverwrite it?", yes="Overwrite", no="Cancel")


class ConfirmVault(Confirm):
    def __init__(self, study_id: int, trial: int, val_acc: float | None,
                 seen_before: str | None = None) -> None:
        acc = f" (validation accuracy {val_acc:.1%})" if val_acc is not None else ""
        warning = f"\n\n[yellow]Warning: {escape(seen_before)}.[/]" if seen_before else ""
        super().__init__(
            f"Evaluate trial {trial}{acc} of study {study_id} on the held-out test split?\n\n"
            "This can be done ONCE per study: the result is recorded and the vault stays "
            f"closed afterwards.{warning}", yes="Open the vault", no="Not yet")
