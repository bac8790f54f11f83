"""Pilot tests of where the keys lead: the app routes every screen change (tui.routes), the Run
and Results screens of a study replace each other, and a covered screen stops polling."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from textual.widgets import DataTable

from engine.store.store import Store
from tests.app_helpers import SIZE, run, until
from tui import services as actions
from tui.app import HpTuiApp
from tui.messages import OpenResults
from tui.screens.compare import CompareScreen
from tui.screens.form import FormScreen
from tui.screens.help import HelpScreen
from tui.screens.presets import PresetsScreen
from tui.screens.results import ResultsScreen
from tui.screens.run import RunScreen
from tui.screens.vault import VaultScreen


def kinds(app: HpTuiApp) -> list[str]:
    return [type(s).__name__ for s in app.screen_stack]


async def press_until(pilot: Any, key: str, kind: type) -> None:
    await pilot.press(key)
    await until(pilot, lambda: isinstance(pilot.app.screen, kind), timeout=10)


def running_polls(app: HpTuiApp, group: str) -> list[Any]:
    return [w for w in app.workers if w.group == group and not w.is_finished]


def test_run_and_results_of_a_study_replace_each_other(store: Store, seeded_grid: int) -> None:
    """o on Run and w on Results switch screens: the stack stays as deep as it was, the screen
    left behind stops polling, and escape goes back to the list the study was opened from."""

    async def go() -> None:
        app = HpTuiApp(store=store)
        async with app.run_test(size=SIZE) as pilot:
            studies = app.screen.query_one("#studies", DataTable)
            await until(pilot, lambda: studies.row_count == 1)
            await pilot.press("tab")
            await press_until(pilot, "enter", ResultsScreen)  # a finished study: its results
            assert kinds(app) == ["PresetsScreen", "ResultsScreen"]
            for key, kind in [("w", RunScreen), ("o", ResultsScreen)] * 3:
                await press_until(pilot, key, kind)
                assert len(app.screen_stack) == 2, kinds(app)
                assert app.screen.study_id == seeded_grid
            await press_until(pilot, "w", RunScreen)
            await press_until(pilot, "o", ResultsScreen)
            await until(pilot, lambda: running_polls(app, "poll-run") == [], timeout=5)
            await press_until(pilot, "escape", PresetsScreen)
            assert len(app.screen_stack) == 1

    run(go())


def test_screens_opened_from_the_results_go_back_to_them(store: Store, seeded_grid: int) -> None:
    async def go() -> None:
        app = HpTuiApp(store=store)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            app.post_message(OpenResults(seeded_grid))
            await until(pilot, lambda: isinstance(app.screen, ResultsScreen)
                        and app.screen.data is not None)
            await pilot.press("space", "down")
            await press_until(pilot, "c", CompareScreen)
            assert kinds(app) == ["PresetsScreen", "ResultsScreen", "CompareScreen"]
            await press_until(pilot, "escape", ResultsScreen)
            await press_until(pilot, "v", VaultScreen)
            assert len(app.screen_stack) == 3
            await press_until(pilot, "escape", ResultsScreen)
            await press_until(pilot, "w", RunScreen)
            assert kinds(app) == ["PresetsScreen", "RunScreen"]

    run(go())


def test_a_launch_replaces_the_form_and_escape_goes_back_to_the_presets(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(actions.WarmRunner, "warm", lambda self: None)
    monkeypatch.setattr(actions.WarmRunner, "launch", lambda self, s, study_id: 2 ** 22 + 1)

    async def go() -> None:
        app = HpTuiApp(store=store)
        async with app.run_test(size=SIZE) as pilot:
            await press_until(pilot, "n", FormScreen)
            await press_until(pilot, "ctrl+l", RunScreen)
            assert kinds(app) == ["PresetsScreen", "RunScreen"]
            await press_until(pilot, "o", ResultsScreen)
            assert len(app.screen_stack) == 2
            await press_until(pilot, "escape", PresetsScreen)

    run(go())


def test_the_studies_list_stops_polling_while_covered(store: Store,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"studies": 0}
    real: Callable[[], Any] = store.studies

    def studies() -> Any:
        calls["studies"] += 1
        return real()

    monkeypatch.setattr(store, "studies", studies)

    async def go() -> None:
        app = HpTuiApp(store=store)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: calls["studies"] >= 1)
            await press_until(pilot, "question_mark", HelpScreen)
            await pilot.pause(0.5)
            covered = calls["studies"]
            await pilot.pause(2.5)  # the list polls every second when shown
            assert calls["studies"] == covered
            await press_until(pilot, "escape", PresetsScreen)
            await until(pilot, lambda: calls["studies"] > covered, timeout=5)

    run(go())
