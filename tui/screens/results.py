"""A study's results: sortable trials, the impact table, the interaction heatmap; export."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Group
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Header, Static, TabbedContent, TabPane

from engine.store import StoreError
from engine.study import StudyReport, TrialReport, report, varying_keys
from tui import render
from tui.files import write_atomically
from tui.format import cell_width, fmt_num, fmt_pct, fmt_value, styled_status
from tui.messages import OpenCompare, OpenRun, OpenVault
from tui.screens.base import AppScreen, PaletteCommand
from tui.screens.export import ExportScreen
from tui.screens.guard import leave_on_store_error
from tui.widgets.loss_plot import ValuePlot
from tui.widgets.map_panel import MapPanel
from tui.widgets.tables import heatmap, predictions_table

EXPORT_FORMATS = {".csv": "csv", ".json": "json", ".md": "md"}


def sort_key(value: Any) -> tuple[int, Any]:
    """None (no result) sorts last; numbers as numbers, the rest as text."""
    if value is None:
        return (1, 0)
    return (0, value) if isinstance(value, (int, float)) else (0, str(value))


@dataclass(frozen=True)
class TrialColumn:
    """A column of the trials table: its header, the value it sorts by, how a cell shows it."""

    name: str
    value: Callable[[TrialReport], Any]
    cell: Callable[[Any], str] = fmt_value


def config_value(key: str) -> Callable[[TrialReport], Any]:
    return lambda t: t.config.get(key)


def trial_columns(study: StudyReport) -> list[TrialColumn]:
    """The trials table's columns: the number, what varies (one "change" column for a
    one-at-a-time study), then the outcome."""
    if study.strategy == "sensitivity":
        varied = [TrialColumn("change", lambda t: render.change_label(t.changed))]
    else:
        keys = varying_keys([t.config for t in study.trials])
        varied = [TrialColumn(k, config_value(k)) for k in keys]
    return [TrialColumn("#", lambda t: t.number, str), *varied,
            TrialColumn("seed", lambda t: t.replicate, str),
            TrialColumn("status", lambda t: t.status, styled_status),
            TrialColumn("val acc", lambda t: t.val_acc, lambda v: fmt_num(v, pct=True)),
            TrialColumn("val loss", lambda t: t.val_loss, fmt_num),
            TrialColumn("epochs", lambda t: t.epochs, str)]


class ResultsScreen(AppScreen[None]):
    """Read a study: trials (sort with s or by clicking a header), the impact table (which
    hyperparameters matter, and whether each effect is above seed noise), the interaction of a
    two-parameter grid, the highlighted trial's decision map (m); compare two trials (space marks
    one, c compares it with the highlighted one); export it; open the test vault."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="back"),
        Binding("s", "sort", "Sort", tooltip="Sort the trials by the next column", id="sort"),
        Binding("i", "show_tab('impact')", "Impact", show=False, id="impact"),
        Binding("t", "show_tab('trials')", "Trials", show=False, id="trials"),
        Binding("p", "show_tab('per-value')", "Per value", show=False, id="per-value"),
        Binding("e", "export", "Export", tooltip="csv, json or md file", id="export"),
        Binding("v", "vault", "Vault", tooltip="The test split, once per study", id="vault"),
        Binding("m", "map", "Map", tooltip="Decision map of the highlighted trial", id="map"),
        Binding("space", "mark", "Mark", tooltip="Mark a trial to compare", id="mark"),
        Binding("c", "compare", "Compare", tooltip="The marked trial vs the highlighted one",
                id="compare"),
        Binding("w", "watch", "Curves", tooltip="The run screen of this study", show=False,
                id="watch"),
    ]

    def __init__(self, study_id: int) -> None:
        super().__init__()
        self.study_id = study_id
        self.data: dict[str, Any] | None = None  # the study's JSON shape, for the rich tables
        self.study: StudyReport | None = None
        self.trial_columns: list[TrialColumn] = []
        self.sort_column = 0
        self.sort_reverse = False
        self.marked: int | None = None  # trial number marked for comparing
        self.covered = False  # another screen is on top of this one

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(id="results-tabs", initial="trials"):
            with TabPane("Trials (t)", id="trials"):
                yield DataTable(id="results-trials", cursor_type="row", zebra_stripes=True)
            with TabPane("Impact (i)", id="impact"), VerticalScroll(classes="scroll-text"):
                yield Static("loading...", id="impact-text")
            with TabPane("Per value (p)", id="per-value"):
                yield VerticalScroll(id="value-plots", classes="scroll-text")
            with TabPane("Map (m)", id="map"):
                yield MapPanel(id="results-map")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"study {self.study_id}: results"
        # Arrows, space and enter act on the trials, not on the tab strip.
        self.query_one("#results-trials", DataTable).focus()
        self.load()

    def on_screen_suspend(self) -> None:
        self.covered = True

    def on_screen_resume(self) -> None:
        # Back from another screen (the vault may have been opened meanwhile); the first
        # resume, when the screen is pushed, comes while on_mount's load is on its way.
        if self.covered:
            self.covered = False
            self.load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="load-results")
    def load(self) -> None:
        store = self.app.store
        try:
            study = report.study_report(store, store.study(self.study_id))
        except StoreError as e:
            self.app.call_from_thread(leave_on_store_error, self, e,
                                      f"cannot read study {self.study_id}")
            return
        self.app.call_from_thread(self.show, study)

    @property
    def columns(self) -> list[str]:
        return [c.name for c in self.trial_columns]

    def show(self, study: StudyReport) -> None:
        self.study = study
        self.data = data = study.to_dict()
        self.trial_columns = trial_columns(study)
        self._fill_trials()
        parts: list[Any] = []
        head = (f"study {data['study']} {data.get('preset') or ''}: {data['strategy']}, "
                f"{styled_status(data['status'])}")
        parts.append(head)
        if data.get("impact"):
            parts.append(render.impact_table(data))
        elif data["strategy"] == "single":
            parts.append("a single configuration: nothing was varied, so there is no impact "
                         "table; the trials tab shows the seed-to-seed spread")
        else:
            parts.append("no finished trials yet")
        if data.get("interaction"):
            parts.append(heatmap(data["interaction"]))
        if data.get("predictions"):
            parts.append(predictions_table(data["predictions"]))
        if data.get("vault"):
            v = data["vault"]
            parts.append(f"test vault opened {v['created']}: trial {v['trial_number']}, test "
                         f"accuracy {fmt_pct(v['test_acc'])} (validation "
                         f"{fmt_pct(v['val_acc'])})")
        self.query_one("#impact-text", Static).update(Group(*parts))
        self._value_plots(data.get("impact") or [])

    def _value_plots(self, rows: list[dict[str, Any]]) -> None:
        box = self.query_one("#value-plots", VerticalScroll)
        box.remove_children()
        if not rows:
            box.mount(Static("nothing was varied, or no trial has finished yet"))
            return
        plots = [ValuePlot(classes="value-plot") for _ in rows]
        box.mount_all(plots)
        for plot, row in zip(plots, rows, strict=False):
            plot.draw(row["param"], [fmt_value(v) for v in row["values"]], row["means"],
                      row["stds"])

    def _fill_trials(self) -> None:
        """The trials table, its columns as wide as their widest cell: sized here, not on the
        table's next idle (a table drawn before that keeps header-wide columns, "comple")."""
        assert self.study is not None
        table = self.query_one("#results-trials", DataTable)
        keep = table.cursor_row
        table.clear(columns=True)
        by = self.trial_columns[self.sort_column].value
        trials = sorted(self.study.trials, key=lambda t: sort_key(by(t)),
                        reverse=self.sort_reverse)
        rows = []
        for t in trials:
            cells = [c.cell(c.value(t)) for c in self.trial_columns]
            if t.number == self.marked:
                cells[0] = f"*{t.number}"  # marked for compare
            rows.append((cells, str(t.number)))
        for i, column in enumerate(self.trial_columns):
            arrow = (" v" if self.sort_reverse else " ^") if i == self.sort_column else ""
            label = column.name + arrow
            width = max([cell_width(label), *(cell_width(cells[i]) for cells, _ in rows)])
            table.add_column(label, key=str(i), width=width)
        for cells, key in rows:
            table.add_row(*cells, key=key)
        if table.row_count:
            table.move_cursor(row=min(keep, table.row_count - 1))

    @on(DataTable.HeaderSelected, "#results-trials")
    def _header(self, event: DataTable.HeaderSelected) -> None:
        self.sort_by(event.column_index)

    def sort_by(self, column: int) -> None:
        if self.study is None:
            return
        if column == self.sort_column:
            self.sort_reverse = not self.sort_reverse
        else:
            # Accuracy reads best from the top; everything else ascending.
            self.sort_column, self.sort_reverse = column, self.columns[column] == "val acc"
        self._fill_trials()

    def action_sort(self) -> None:
        if self.trial_columns:
            self.sort_by((self.sort_column + 1) % len(self.trial_columns))

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    @on(TabbedContent.TabActivated, "#results-tabs")
    def _tab(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id == "map":
            self._load_map()

    def action_map(self) -> None:
        self.action_show_tab("map")
        self._load_map()

    def _load_map(self) -> None:
        number = self.selected_trial()
        if number is not None:
            self.query_one("#results-map", MapPanel).load(self.study_id, number)

    def action_mark(self) -> None:
        number = self.selected_trial()
        if number is None:
            return
        self.marked = None if self.marked == number else number
        self._fill_trials()
        if self.marked is not None:
            self.notify(f"trial {number} marked: highlight another and press c to compare")

    def selected_trial(self) -> int | None:
        table = self.query_one("#results-trials", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return int(str(key.value))

    # -- export, vault, compare -----------------------------------------------------------------

    def action_export(self) -> None:
        def chosen(path: str | None) -> None:
            if path:
                self.export(Path(path).expanduser())

        self.app.push_screen(ExportScreen(f"study-{self.study_id}.csv"), chosen)

    def export(self, path: Path) -> None:
        fmt = EXPORT_FORMATS.get(path.suffix.lower())
        if fmt is None or self.data is None:
            self.notify("name the file .csv, .json or .md", severity="error")
            return
        try:
            write_atomically(path, render.export_text(self.data, fmt))
        except OSError as e:
            self.notify(f"cannot write {path}: {e.strerror or e}", severity="error")
            return
        self.notify(f"wrote {path}", title="exported")

    def action_vault(self) -> None:
        self.post_message(OpenVault(self.study_id))

    def action_compare(self) -> None:
        current = self.selected_trial()
        if self.marked is None or current is None or current == self.marked:
            self.notify("mark a trial with space, highlight another, then press c",
                        severity="warning")
            return
        self.post_message(OpenCompare(self.study_id, self.marked, current))

    def action_watch(self) -> None:
        self.post_message(OpenRun(self.study_id))

    def palette_commands(self) -> Iterable[PaletteCommand]:
        yield PaletteCommand("Export results", "Write csv, json or md", self.action_export)
        yield PaletteCommand("Test vault", "Evaluate one trial on the test split, once",
                            self.action_vault)
        yield PaletteCommand("Compare trials", "The marked trial and the highlighted one",
                            self.action_compare)
        yield PaletteCommand("Decision map", "What the highlighted trial predicts over the plane",
                            self.action_map)
