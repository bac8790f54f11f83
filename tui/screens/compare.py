"""Two trials side by side: configurations with the differences highlighted, curves overlaid."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from engine.report import flat_config
from engine.store import TrialRow
from tui.render import fmt_pct, fmt_value
from tui.screens.run import fmt_num, styled_status
from tui.widgets.loss_plot import LossPlot, curve


class CompareScreen(Screen[None]):
    """Two trials of a study: what differs between their configurations (highlighted), their
    final metrics, and their loss curves on one plot."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="back"),
        Binding("l", "toggle_log", "Log scale", id="log"),
    ]

    def __init__(self, study_id: int, first: int, second: int) -> None:
        super().__init__()
        self.study_id, self.numbers = study_id, (first, second)
        self.log_scale = False
        self.pair: list[TrialRow] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="compare-table")
        yield LossPlot(id="compare-plot")
        yield Footer()

    def on_mount(self) -> None:
        store = self.app.store  # type: ignore[attr-defined]
        self.pair = [store.trial(self.study_id, n) for n in self.numbers]
        self.metrics = store.metrics([t.id for t in self.pair])
        a, b = (flat_config(t) for t in self.pair)
        table = Table(header_style="bold", expand=True)
        table.add_column("")
        for t in self.pair:
            table.add_column(f"trial {t.number}")
        for key in a:
            va, vb = fmt_value(a.get(key)), fmt_value(b.get(key))
            if va != vb:
                table.add_row(f"[b]{key}[/]", f"[reverse]{va}[/]", f"[reverse]{vb}[/]")
        table.add_row("seed", *(str(t.replicate) for t in self.pair))
        table.add_row("status", *(styled_status(t.status) for t in self.pair))
        table.add_row("val acc", *(fmt_pct(t.val_acc) for t in self.pair))
        table.add_row("val loss", *(fmt_num(t.val_loss) for t in self.pair))
        self.query_one("#compare-table", Static).update(table)
        self.sub_title = f"study {self.study_id}: trial {self.numbers[0]} vs {self.numbers[1]}"
        self.redraw()

    def redraw(self) -> None:
        series = []
        for t in self.pair:
            m = self.metrics.get(t.id, [])
            series += [(f"{t.number} train", *curve(m, 1)), (f"{t.number} val", *curve(m, 2))]
        self.query_one("#compare-plot", LossPlot).draw("loss", series, log=self.log_scale)

    def action_toggle_log(self) -> None:
        self.log_scale = not self.log_scale
        self.redraw()
