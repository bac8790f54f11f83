"""One form row per hyperparameter: label, the right input for its kind, the engine's message."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, Select, Static

from engine.spec import space
from tui import form_model

VARY_HINTS = {"widths": "e.g. 10; 40; 10, 10", "choice": "e.g. {a}, {b}",
              "int": "e.g. 10, 100  (random: 10 .. 400)",
              "float": "e.g. 0.001, 0.01, 0.1  (random: 1e-4 .. 1 log)"}


def field_id(p: space.Param, vary: bool = False) -> str:
    return ("v-" if vary else "f-") + p.dotted.replace(".", "-")


class ParamField(Vertical):
    """A parameter's value (vary=False) or the values a study tries for it (vary=True)."""

    def __init__(self, p: space.Param, value: Any, *, vary: bool = False) -> None:
        super().__init__(classes="field", id=field_id(p, vary))
        self.param, self.vary, self.value = p, vary, value

    def compose(self) -> ComposeResult:
        p = self.param
        label = f"vary {p.key}" if self.vary else p.dotted
        with Horizontal(classes="field-row"):
            yield Label(label, classes="field-label", markup=False)
            if p.kind == "choice" and not self.vary:
                yield Select([(c, c) for c in p.choices], value=self.value, allow_blank=False,
                             id="input", compact=True)
            elif self.vary:
                hint = VARY_HINTS.get(p.kind, "comma-separated values")
                if p.kind == "choice":
                    hint = hint.format(a=p.choices[0], b=p.choices[1])
                yield Input(form_model.format_vary(p, self.value), placeholder=hint, id="input",
                            compact=True)
            else:
                yield Input(form_model.format_value(p, self.value),
                            placeholder="(optional)" if p.kind == "str" else p.allowed(),
                            id="input", compact=True)
        yield Static("", classes="field-error")
        self.tooltip = p.help

    @property
    def text(self) -> str:
        widget = self.query_one("#input")
        if isinstance(widget, Select):
            return str(widget.value)
        assert isinstance(widget, Input)
        return widget.value

    def parsed(self) -> Any:
        if self.vary:
            return form_model.parse_vary(self.param, self.text)
        return form_model.parse_field(self.param, self.text)

    def own_error(self) -> str | None:
        check = form_model.check_vary if self.vary else form_model.check_field
        return check(self.param, self.text)

    def show_error(self, message: str | None) -> None:
        box = self.query_one(".field-error", Static)
        box.update(message or "")
        self.set_class(bool(message), "-invalid")
