"""The race screen: the plan of a race, started from the app, followed through the store, and
found again when the screen is opened later."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable

from engine.presets import load_preset
from engine.store import Store
from engine.study import race
from tests.app_helpers import SIZE, column, run, text_of, until
from tests.test_race import TINY
from tui.app import HpTuiApp
from tui.screens.race import RaceScreen


def test_the_race_screen_plans_every_strategy(store: Store, tmp_path: Path) -> None:
    (tmp_path / "tinyrace.toml").write_text(TINY)
    preset = load_preset(tmp_path / "tinyrace.toml")

    async def go() -> None:
        app = HpTuiApp(store=store)
        async with app.run_test(size=SIZE) as pilot:
            app.push_screen(RaceScreen(preset))
            screen = app.screen
            await until(pilot, lambda: screen.plan is not None)
            shown = " ".join(text_of(app, "#race-plan").split())  # as one line
            assert "budget 9 trial-epochs" in shown and "ctrl+l starts it" in shown
            for label in race.STRATEGIES.values():
                assert label in shown
            assert screen.check_action("start", ()) is True
            assert store.studies() == []  # planning writes nothing

    run(go())


@pytest.mark.slow
def test_a_race_started_from_the_app_fills_its_curves_and_is_found_again(
        store: Store, tmp_path: Path) -> None:
    (tmp_path / "tinyrace.toml").write_text(TINY)
    preset = load_preset(tmp_path / "tinyrace.toml")
    planned = len(race.STRATEGIES) * 3  # every strategy, three study seeds

    async def go() -> None:
        app = HpTuiApp(store=store)
        async with app.run_test(size=SIZE) as pilot:
            app.push_screen(RaceScreen(preset))
            screen = app.screen
            await until(pilot, lambda: screen.check_action("start", ()) is True)
            await pilot.press("ctrl+l")
            await until(pilot, lambda: screen.studies == (planned, planned), timeout=240)
            table = screen.query_one("#race-table", DataTable)
            assert column(table, 0) == list(race.STRATEGIES.values())
            assert all(best.endswith("%") for best in column(table, 4))
            assert screen.check_action("start", ()) is False  # started once from here
        names = sorted(s.name or "" for s in store.studies())
        assert len(names) == planned and all(n.startswith("race:tinyrace:") for n in names)
        app2 = HpTuiApp(store=store)  # later, in another app: the race is still there
        async with app2.run_test(size=SIZE) as pilot:
            app2.push_screen(RaceScreen(preset))
            again = app2.screen
            await until(pilot, lambda: again.studies == (planned, planned))
            assert "showing race 1" in text_of(app2, "#race-plan")

    run(go())
