"""The first screen: presets to start from, and the studies already in the store."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Label
from textual.worker import get_current_worker

from engine.presets import PresetInfo, find_presets
from engine.spec import FINISHED_TRIALS
from engine.store import Store, StoreError, StudyRow
from engine.study import report
from tui import services as actions
from tui.format import styled_status
from tui.messages import OpenForm, OpenPresetCompare, OpenRace, OpenStudy, StudiesPolled
from tui.screens.base import PaletteCommand
from tui.screens.polling import PollingScreen, nap

POLL_SECONDS = 1.0


def shown(store: Store, s: StudyRow) -> StudyRow:
    """The study with the status every view shows (a running one whose runner died is
    interrupted: engine.study.report.study_status)."""
    if s.status != "running":
        return s
    return dataclasses.replace(s, status=report.study_status(store, s)[0])


def study_progress(s: StudyRow) -> str:
    done = sum(s.counts.get(k, 0) for k in FINISHED_TRIALS)
    extra = "".join(f", {s.counts[k]} {k}" for k in ("diverged", "failed") if s.counts.get(k))
    return f"{done}/{sum(s.counts.values())}{extra}"


class PresetsScreen(PollingScreen):
    """Pick a preset to edit and launch (enter), start from the notebook (n), or open a study.
    Compare two presets: space marks one, then c on another."""

    BINDINGS = [
        Binding("q", "app.quit", "Quit", id="quit"),
        Binding("n", "new_preset", "New", tooltip="Start from the notebook's defaults",
                id="new"),
        Binding("tab", "switch_table", "Switch", tooltip="Between presets and studies",
                id="switch"),
        Binding("space", "mark", "Mark", tooltip="Mark a preset to compare", id="mark"),
        Binding("c", "compare", "Compare", tooltip="The marked preset vs the highlighted one",
                id="compare"),
        Binding("r", "race", "Race", tooltip="Race the search strategies on this preset",
                id="race"),
        Binding("f5", "reload", "Reload", tooltip="Look for preset files again", id="reload"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.presets: list[PresetInfo] = []
        self._shown: tuple = ()
        self.studies: dict[int, StudyRow] = {}  # as the list shows them, by id
        self.marked: int | None = None  # index into self.presets

    def compose(self) -> ComposeResult:
        yield Header()
        yield Label("Presets  [dim](enter: open in the form)[/]", classes="section-title")
        yield DataTable(id="presets", cursor_type="row", zebra_stripes=True)
        yield Label("Studies in the store  [dim](enter: follow or read)[/]",
                    classes="section-title")
        yield DataTable(id="studies", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = str(self.app.store.path)
        presets = self.query_one("#presets", DataTable)
        self._name_col = presets.add_columns("name", "source", "study", "description")[0]
        studies = self.query_one("#studies", DataTable)
        # Fixed widths for what has a known longest value ("sensitivity", "interrupted", a
        # date): a table filled the moment its screen comes back could otherwise keep the
        # header's width until DataTable next measures, showing "comple".
        studies.add_column("#")
        studies.add_column("preset")
        for label, width in (("strategy", 11), ("status", 11)):
            studies.add_column(label, width=width)
        studies.add_column("trials")
        studies.add_column("created", width=16)
        self.action_reload()
        presets.focus()
        self.poll_studies()

    def action_reload(self) -> None:
        table = self.query_one("#presets", DataTable)
        keep = table.cursor_row
        table.clear()
        self.presets = find_presets()
        if self.marked is not None and self.marked >= len(self.presets):
            self.marked = None
        for i, info in enumerate(self.presets):
            if info.preset is None:
                first = str(info.error).splitlines()[0] if info.error else "invalid"
                study, desc = "[red]invalid[/]", f"[red]{first}[/]"
            else:
                c = actions.cost(info.preset)
                study = f"{c.strategy}, {c.trials_text()}"
                desc = info.description
            name = f"* {info.name}" if i == self.marked else info.name  # * marks for compare
            table.add_row(name, info.source, study, desc, key=str(i))
        if table.row_count:
            table.move_cursor(row=min(keep, table.row_count - 1))

    def action_new_preset(self) -> None:
        self.post_message(OpenForm(None))

    def _highlighted_preset(self) -> int | None:
        table = self.query_one("#presets", DataTable)
        if not table.row_count:
            return None
        return int(str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("mark", "compare", "race"):  # they act on the presets table only
            return self.focused is not None and self.focused.id == "presets"
        return True

    def on_descendant_focus(self) -> None:
        self.refresh_bindings()

    def action_mark(self) -> None:
        i = self._highlighted_preset()
        if i is None:
            return
        before, self.marked = self.marked, None if self.marked == i else i
        table = self.query_one("#presets", DataTable)
        for j in {i} if before is None else {before, i}:
            name = self.presets[j].name
            table.update_cell(str(j), self._name_col, f"* {name}" if j == self.marked else name)
        if self.marked is not None:
            self.notify(f"{self.presets[i].name} marked: highlight another and press c")

    def action_compare(self) -> None:
        i = self._highlighted_preset()
        if self.marked is None or i is None or i == self.marked:
            self.notify("mark a preset with space, highlight another, then press c",
                        severity="warning")
            return
        a, b = self.presets[self.marked].preset, self.presets[i].preset
        if a is None or b is None:
            self.notify("an invalid preset cannot be compared; fix it first", severity="error")
            return
        self.post_message(OpenPresetCompare(a, b))

    def action_race(self) -> None:
        i = self._highlighted_preset()
        preset = self.presets[i].preset if i is not None else None
        if preset is None:
            self.notify("highlight a valid preset to race its search strategies",
                        severity="warning")
            return
        self.post_message(OpenRace(preset))

    def action_switch_table(self) -> None:
        target = "#studies" if self.focused and self.focused.id == "presets" else "#presets"
        self.query_one(target, DataTable).focus()

    @on(DataTable.RowSelected, "#presets")
    def _open_preset(self, event: DataTable.RowSelected) -> None:
        info = self.presets[int(str(event.row_key.value))]
        if info.preset is None:
            self.notify(str(info.error), title=f"{info.name} is invalid", severity="error",
                        timeout=12)
            return
        self.post_message(OpenForm(info.preset))

    @on(DataTable.RowSelected, "#studies")
    def _open_study(self, event: DataTable.RowSelected) -> None:
        """A running or unfinished study opens live; a finished one opens its results."""
        study = self.studies.get(int(str(event.row_key.value)))
        if study is not None:
            self.post_message(OpenStudy(study.id, study.status))

    # -- the studies list follows the store ------------------------------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="poll-studies")
    def poll_studies(self) -> None:
        worker = get_current_worker()
        store = self.app.store
        failing = False
        while self.wait_until_shown(worker):  # paused while another screen covers the list
            try:
                studies = [shown(store, s) for s in store.studies()]
            except StoreError as e:
                if not failing:  # once per failing streak, then keep trying
                    self.app.call_from_thread(self.notify, f"reading the studies: {e}",
                                              title="store error", severity="error", timeout=10)
                failing = True
            else:
                failing = False
                self.post_message(StudiesPolled(studies))
            nap(worker, POLL_SECONDS)

    def on_studies_polled(self, message: StudiesPolled) -> None:
        shown = tuple((s.id, s.status, tuple(sorted(s.counts.items()))) for s in message.studies)
        if shown == self._shown:
            return
        self._shown = shown
        self.studies = {s.id: s for s in message.studies}
        table = self.query_one("#studies", DataTable)
        keep = table.cursor_row
        table.clear()
        for s in reversed(message.studies):  # newest first
            table.add_row(str(s.id), s.name or s.preset_name or "", s.strategy,
                          styled_status(s.status),
                          study_progress(s), s.created[:16].replace("T", " "), key=str(s.id))
        if table.row_count:
            table.move_cursor(row=min(keep, table.row_count - 1))

    def palette_commands(self) -> Iterable[PaletteCommand]:
        yield PaletteCommand("New preset", "A form with the notebook's defaults",
                            self.action_new_preset)
        yield PaletteCommand("Reload presets", "Look for preset files again", self.action_reload)
        yield PaletteCommand("Compare presets", "The marked preset and the highlighted one",
                            self.action_compare)

