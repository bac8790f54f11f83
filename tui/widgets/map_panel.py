"""A decision map with its legend, loading its trial from the store off the UI thread."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import getters, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from engine.store import StoreError
from tui.widgets.decision_map import LEGEND, DecisionMap, MapData, load_map

if TYPE_CHECKING:
    from tui.app import HpTuiApp


class MapPanel(Vertical):
    """`load(study, trial number)` reads the weights and points in a worker, then draws."""

    if TYPE_CHECKING:
        app = getters.app(HpTuiApp)  # typed for the checker (see tui.screens.base)

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.shown: tuple[int, int] | None = None  # (study, trial number) drawn or loading

    def compose(self) -> ComposeResult:
        yield DecisionMap(classes="decision-map")
        yield Static(LEGEND, classes="map-legend", markup=False)

    def load(self, study_id: int, number: int) -> None:
        if self.shown == (study_id, number):
            return
        self.shown = (study_id, number)
        self.query_one(DecisionMap).show_message(f"trial {number}: loading...")
        self._read(study_id, number)

    @work(thread=True, exclusive=True, exit_on_error=False, group="map")
    def _read(self, study_id: int, number: int) -> None:
        store = self.app.store
        try:
            data: MapData | str = load_map(store, study_id, store.trial(study_id, number))
        except StoreError as e:
            data = f"trial {number}: {e}"
        self.app.call_from_thread(self._show, (study_id, number), data)

    def _show(self, which: tuple[int, int], data: MapData | str) -> None:
        if which != self.shown:
            return  # a newer trial was asked for meanwhile
        plot = self.query_one(DecisionMap)
        if isinstance(data, str):
            self.shown = None  # a later try may work
            plot.show_message(data)
        else:
            plot.show_map(data)
