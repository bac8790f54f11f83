"""Two trials side by side: configurations with the differences highlighted, curves overlaid,
and their decision maps next to each other."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import ContentSwitcher, Footer, Header, Static

from engine.store import Metric, StoreError, TrialRow
from engine.study import flat_config
from tui.format import fmt_num, fmt_pct, fmt_value, styled_status
from tui.messages import TrialPairRead
from tui.screens.base import AppScreen
from tui.screens.guard import leave_on_store_error
from tui.widgets.loss_plot import LossPlot, curve
from tui.widgets.map_panel import MapPanel


def diff_table(titles: list[str], configs: list[dict[str, object]]) -> Table:
    """The keys whose values differ, reversed (legible without colour too)."""
    table = Table(header_style="bold", expand=True)
    table.add_column("")
    for title in titles:
        table.add_column(title)
    a, b = configs
    for key in dict.fromkeys([*a, *b]):
        va, vb = escape(fmt_value(a.get(key))), escape(fmt_value(b.get(key)))
        if va != vb:
            table.add_row(f"[b]{key}[/]", f"[reverse]{va}[/]", f"[reverse]{vb}[/]")
    return table


class CompareScreen(AppScreen[None]):
    """Two trials of a study: what differs between their configurations (highlighted), their
    final metrics, their loss curves on one plot, and their decision maps side by side (m)."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="back"),
        Binding("m", "toggle_view", "Maps/curves", tooltip="Decision maps or loss curves",
                id="maps"),
        Binding("l", "toggle_log", "Log scale", id="log"),
    ]

    def __init__(self, study_id: int, first: int, second: int) -> None:
        super().__init__()
        self.study_id, self.numbers = study_id, (first, second)
        self.log_scale = False
        self.pair: list[TrialRow] = []
        self.metrics: dict[int, list[Metric]] = {}
        self.showing_maps = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="compare-table")
        with ContentSwitcher(id="compare-view", initial="compare-plot"):
            yield LossPlot(id="compare-plot")
            with Horizontal(id="compare-maps"):
                yield MapPanel(id="map-a")
                yield MapPanel(id="map-b")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"study {self.study_id}: trial {self.numbers[0]} vs {self.numbers[1]}"
        self._read()

    @work(thread=True, exclusive=True, exit_on_error=False, group="compare-read")
    def _read(self) -> None:
        store = self.app.store
        try:
            pair = [store.trial(self.study_id, n) for n in self.numbers]
            metrics = store.metrics([t.id for t in pair])
        except StoreError as e:
            self.app.call_from_thread(leave_on_store_error, self, e, "cannot compare the trials")
            return
        self.post_message(TrialPairRead(pair, metrics))

    def on_trial_pair_read(self, message: TrialPairRead) -> None:
        self.pair, self.metrics = message.pair, message.metrics
        table = diff_table([f"trial {t.number}" for t in self.pair],
                           [flat_config(t) for t in self.pair])
        table.add_row("seed", *(str(t.replicate) for t in self.pair))
        table.add_row("status", *(styled_status(t.status) for t in self.pair))
        table.add_row("val acc", *(fmt_pct(t.val_acc) for t in self.pair))
        table.add_row("val loss", *(fmt_num(t.val_loss) for t in self.pair))
        self.query_one("#compare-table", Static).update(table)
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

    def action_toggle_view(self) -> None:
        self.showing_maps = maps = not self.showing_maps
        self.query_one(ContentSwitcher).current = "compare-maps" if maps else "compare-plot"
        if maps:
            for panel_id, number in zip(("#map-a", "#map-b"), self.numbers, strict=True):
                self.query_one(panel_id, MapPanel).load(self.study_id, number)
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "toggle_log":  # the log scale applies to the curves only
            return not self.showing_maps
        return True
