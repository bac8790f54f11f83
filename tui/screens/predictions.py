"""Predictions before launch: for each varied parameter, the value you expect to be best and how
large you expect its effect to be. Written down before the results exist, they are scored in the
results screen (engine.study.analysis.score_predictions): the workshop's "guess first" habit."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Select, Static

from engine.spec import EFFECT_SIZES
from tui.format import fmt_value

Predictions = dict[str, tuple[Any, str]]


def listed(vary: Mapping[str, Any]) -> dict[str, list[Any]]:
    """The varied parameters that list their values (ranges of a random search have none)."""
    return {k: list(v) for k, v in vary.items() if isinstance(v, (list, tuple))}


class PredictionsScreen(ModalScreen[Predictions | None]):
    """One row per varied parameter: expected best value, expected effect size."""

    BINDINGS = [
        Binding("ctrl+s", "save", "Keep", priority=True, id="keep"),
        Binding("escape", "cancel", "Cancel", id="cancel"),
    ]

    def __init__(self, vary: Mapping[str, Any], current: Mapping[str, tuple[Any, str]]) -> None:
        super().__init__()
        self.values = listed(vary)
        self.ranges = [k for k in vary if k not in self.values]
        self.current = dict(current)

    def compose(self) -> ComposeResult:
        with Vertical(id="predict-box"):
            yield Static("[b]Your predictions[/b]: before training, which value of each "
                         "parameter will be best, and how large will its effect be? The "
                         "results screen scores them.", classes="predict-intro")
            with VerticalScroll(id="predict-rows"):
                for key, values in self.values.items():
                    best, size = self.current.get(key, (None, None))
                    index = next((i for i, v in enumerate(values) if v == best), None)
                    with Horizontal(classes="predict-row"):
                        yield Label(key, classes="predict-label", markup=False)
                        yield Select([(fmt_value(v), i) for i, v in enumerate(values)],
                                     prompt="best value", id=f"best-{key}", compact=True,
                                     value=Select.NULL if index is None else index)
                        yield Select([(s, s) for s in EFFECT_SIZES], prompt="effect",
                                     id=f"size-{key}", compact=True,
                                     value=size if size in EFFECT_SIZES else Select.NULL)
                for key in self.ranges:
                    yield Static(f"{key}: a range (random search) lists no values to predict",
                                 classes="predict-note", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Keep (ctrl+s)", id="keep", variant="primary")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        if self.values:
            self.query_one(f"#best-{next(iter(self.values))}", Select).focus()

    def chosen(self) -> tuple[Predictions, list[str]]:
        """(complete predictions, parameters with only one of the two answers)."""
        out: Predictions = {}
        half: list[str] = []
        for key, values in self.values.items():
            best = self.query_one(f"#best-{key}", Select).value
            size = self.query_one(f"#size-{key}", Select).value
            index = best if isinstance(best, int) and not isinstance(best, bool) else None
            if index is not None and isinstance(size, str):
                out[key] = (values[index], size)
            elif index is not None or isinstance(size, str):
                half.append(key)
        return out, half

    def action_save(self) -> None:
        out, half = self.chosen()
        if half:
            self.notify(f"give both the best value and the effect size for {', '.join(half)}"
                        " (or neither)", severity="error")
            return
        self.dismiss(out)

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "keep":
            self.action_save()
        else:
            self.action_cancel()
