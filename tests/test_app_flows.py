"""Pilot tests of the second cut: predictions before launch, comparing two presets, and a store
that fails while the app has it open (a notification, never a traceback)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from textual.widgets import DataTable, Input, Select

from engine.presets import load_preset, parse_preset, resolve_preset_arg
from engine.store import Store, StoreError
from tests.app_helpers import GRID, SIZE, column, open_results, seed_grid, text_of, until
from tui import services as actions
from tui.app import HpTuiApp
from tui.screens.compare_presets import PresetCompareScreen
from tui.screens.form import FormScreen
from tui.screens.predictions import PredictionsScreen
from tui.screens.presets import PresetsScreen
from tui.screens.results import ResultsScreen
from tui.screens.run import RunScreen
from tui.screens.vault import VaultScreen

# -- predictions ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_predictions_are_saved_before_the_runner_starts(store: Store,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_launch(_warm: actions.WarmRunner, s: Store, study_id: int) -> int:
        seen["at launch"] = s.predictions(study_id)  # what the store held when the runner began
        return 2 ** 22 + 1  # no such process: the run screen shows no runner

    monkeypatch.setattr(actions.WarmRunner, "launch", fake_launch)

    async def go() -> None:
        app = HpTuiApp(store=store)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("n")
            await pilot.pause()
            form = app.screen
            assert isinstance(form, FormScreen)
            await pilot.press("ctrl+r")  # nothing varied yet
            await pilot.pause()
            assert app.screen is form
            form.query_one("#v-train-lr Input", Input).value = "0.001, 0.01, 0.1"
            form.query_one("#v-model-activation Input", Input).value = "relu, tanh"
            form.query_one("#f-study-strategy Select", Select).value = "grid"
            await pilot.pause()
            await pilot.press("ctrl+r")
            await until(pilot, lambda: isinstance(app.screen, PredictionsScreen), timeout=5)
            modal = app.screen
            modal.query_one("#best-lr", Select).value = 2  # 0.1
            await pilot.press("ctrl+s")  # half an answer is refused
            await pilot.pause()
            assert app.screen is modal
            modal.query_one("#size-lr", Select).value = "large"
            modal.query_one("#best-activation", Select).value = 1  # tanh
            modal.query_one("#size-activation", Select).value = "small"
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert app.screen is form
            assert form.predictions == {"lr": (0.1, "large"), "activation": ("tanh", "small")}
            assert "predictions: 2 recorded" in text_of(app, "#cost")
            await pilot.press("ctrl+l")
            await until(pilot, lambda: isinstance(app.screen, RunScreen), timeout=10)
            study_id = app.screen.study_id
            assert seen["at launch"] == {"activation": ("tanh", "small"), "lr": (0.1, "large")}
            assert store.predictions(study_id) == seen["at launch"]

    asyncio.run(go())


def test_results_score_the_predictions(store: Store) -> None:
    study_id = seed_grid(store)
    store.set_predictions(study_id, {"lr": (0.1, "large"), "activation": ("relu", "small")})

    async def go() -> None:
        app = HpTuiApp(store=store)
        async with app.run_test(size=(100, 40)) as pilot:
            await open_results(app, pilot, study_id)
            await pilot.press("i")
            await pilot.pause()
            text = text_of(app, "#impact-text")
            assert "your predictions, scored" in text
            assert "hit" in text and "miss" in text  # lr 0.1 is best; relu is not

    asyncio.run(go())


# -- comparing presets ---------------------------------------------------------------------------

def test_compare_two_presets_side_by_side(store: Store) -> None:
    async def go() -> None:
        app = HpTuiApp(store=store)
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            assert isinstance(screen, PresetsScreen)
            table = screen.query_one("#presets", DataTable)
            names = column(table, 0)
            table.move_cursor(row=names.index("notebook"))
            await pilot.press("c")  # nothing marked yet: explains
            await pilot.pause()
            assert app.screen is screen
            await pilot.press("space")
            await pilot.pause()
            assert column(table, 0)[names.index("notebook")] == "* notebook"
            table.move_cursor(row=names.index("tiny"))
            await pilot.press("c")
            await until(pilot, lambda: isinstance(app.screen, PresetCompareScreen))
            cmp = app.screen
            await until(pilot, lambda: cmp.best is not None, timeout=10)
            text = text_of(app, "#preset-compare-table")
            assert "train_size" in text and "4000" in text and "200" in text
            assert "sensitivity, 4 trials" in text and "sensitivity, 60-960 trials" in text
            assert "[sgd,adam,rmsprop]" in text  # list values are not eaten as markup
            assert text.count("no finished study") == 2

    asyncio.run(go())


def test_preset_compare_reads_the_best_of_a_finished_study(store: Store) -> None:
    study_id = seed_grid(store)  # preset name "seeded-grid"
    grid, tiny = parse_preset(GRID), load_preset(resolve_preset_arg("tiny"))

    async def go() -> None:
        app = HpTuiApp(store=store)
        async with app.run_test(size=(120, 36)) as pilot:
            app.push_screen(PresetCompareScreen(grid, tiny))
            cmp = app.screen
            await until(pilot, lambda: cmp.best is not None, timeout=10)
            assert cmp.best is not None
            assert cmp.best[0].startswith("90.3% +- 0.4") and f"study {study_id}" in cmp.best[0]
            assert cmp.best[1] == "no finished study"

    asyncio.run(go())


# -- a store that fails while open ---------------------------------------------------------------

def _broken(*_: Any, **__: Any) -> Any:
    raise StoreError("database disk image is malformed")


def test_corrupt_store_while_open_notifies_and_keeps_going(store: Store,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    study_id = seed_grid(store)

    async def go() -> None:
        app = HpTuiApp(store=store)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            with monkeypatch.context() as m:
                m.setattr(store, "trials", _broken)
                m.setattr(store, "studies", _broken)
                m.setattr(store, "study", _broken)
                for screen in (RunScreen(study_id), VaultScreen(study_id),
                               ResultsScreen(study_id)):
                    app.push_screen(screen)
                    await until(pilot, lambda: isinstance(app.screen, PresetsScreen),
                                   timeout=10)
                await pilot.press("tab", "enter")  # open a study from the list

                def told() -> list[str]:
                    return [n.message for n in app._notifications if "malformed" in n.message]

                # Three screens, and the studies poll (once per failing streak).
                await until(pilot, lambda: any("reading the studies" in m for m in told()),
                               timeout=5)
                assert isinstance(app.screen, PresetsScreen)
                assert len(told()) >= 4
            # The store is back: the list fills again without a restart.
            studies = app.screen.query_one("#studies", DataTable)
            await until(pilot, lambda: studies.row_count == 1, timeout=5)
        assert app.return_code in (None, 0)

    asyncio.run(go())
