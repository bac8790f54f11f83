"""Pilot tests of reading a study: the results (impact, heatmap, sorting, export), comparing two
trials, and the test vault."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual import events
from textual.widgets import DataTable, Input

from engine.store.store import Store
from tests.app_helpers import (
    SIZE,
    column,
    open_results,
    run,
    seed_grid,
    text_of,
    trained_tiny,
    until,
)
from tui.app import HpTuiApp
from tui.screens.compare import CompareScreen
from tui.screens.confirm import ConfirmVault
from tui.screens.vault import VaultScreen
from tui.widgets.loss_plot import ValuePlot


def test_results_show_impact_heatmap_sorting_and_export(store: Store, tmp_path: Path) -> None:
    study_id = seed_grid(store)

    async def go() -> None:
        app = HpTuiApp(store=store)
        async with app.run_test(size=(100, 30)) as pilot:
            screen = await open_results(app, pilot, study_id)
            table = screen.query_one("#results-trials", DataTable)
            assert table.row_count == 8
            screen.sort_by(screen.columns.index("val acc"))  # best first
            await pilot.pause()
            assert column(table, screen.columns.index("lr"))[0] == "0.1"
            assert column(table, screen.columns.index("activation"))[0] == "tanh"
            await pilot.press("i")
            await pilot.pause()
            text = text_of(app, "#impact-text")
            assert "impact of each hyperparameter" in text
            assert "matters" in text and "interval" in text  # made-up numbers: no spread
            assert "lr (rows) x activation" in text  # the 2-parameter heatmap
            await pilot.press("p")
            await pilot.pause()
            plots = list(screen.query(ValuePlot))
            assert len(plots) == 2  # one per varied parameter
            out = tmp_path / "out.csv"
            await pilot.press("e")
            await pilot.pause()
            app.screen.query_one("#export-path", Input).value = str(out)
            await pilot.press("enter")
            await pilot.pause()
            lines = out.read_text().splitlines()
            assert lines[0].startswith("id,") and len(lines) == 9

    run(go())


def test_compare_highlights_differences(store: Store) -> None:
    study_id = seed_grid(store)

    async def go() -> None:
        app = HpTuiApp(store=store)
        async with app.run_test(size=SIZE) as pilot:
            await open_results(app, pilot, study_id)
            # Mark trial 1 (relu), compare it with trial 3 (tanh, same lr and seed).
            await pilot.press("space", "down", "down", "c")
            await until(pilot, lambda: isinstance(app.screen, CompareScreen)
                        and len(app.screen.pair) == 2)
            assert app.screen.numbers == (1, 3)
            shown = text_of(app, "#compare-table")
            assert "activation" in shown and "relu" in shown and "tanh" in shown
            assert "lr" not in shown.split("seed")[0]  # equal values are not listed

    run(go())


def test_results_load_once_and_again_after_a_covering_screen(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pushing the screen reads the study once (a second read refilled the table while it was
    being drawn); coming back from another screen reads it again, showing what changed."""
    from engine.study import report
    from tui.screens.help import HelpScreen

    study_id = seed_grid(store)
    reads: list[int] = []
    real = report.study_report
    monkeypatch.setattr(report, "study_report", lambda s, st: reads.append(1) or real(s, st))

    async def go() -> None:
        app = HpTuiApp(store=store)
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_results(app, pilot, study_id)
            # The first resume (sent when the screen is pushed) arriving after the load ended,
            # as it does on a busy machine, must not read it again.
            screen.post_message(events.ScreenResume())
            await pilot.pause(0.2)
            assert len(reads) == 1
            trial = store.trials(study_id)[0]
            store.record_vault(study_id, trial_id=trial.id, trial_number=1,
                               config=trial.config, test_acc=0.5, test_loss=0.7, val_acc=0.5)
            await pilot.press("question_mark")
            await until(pilot, lambda: isinstance(app.screen, HelpScreen))
            await pilot.press("escape")
            await until(pilot, lambda: "test vault opened" in text_of(app, "#impact-text"))
            assert len(reads) == 2

    run(go())


@pytest.mark.slow
def test_vault_confirms_evaluates_once_and_then_only_shows(store: Store) -> None:
    study_id = trained_tiny(store)

    async def go() -> None:
        app = HpTuiApp(store=store)
        async with app.run_test(size=SIZE) as pilot:
            app.push_screen(VaultScreen(study_id))
            screen = app.screen
            await until(pilot, lambda: bool(screen.query("#vault-trial"))
                        and screen.query_one("#vault-trial", Input).value != "")  # the best
            await until(pilot, lambda: screen.check_action("open_vault", ()) is True)
            await pilot.press("ctrl+o")
            await until(pilot, lambda: isinstance(app.screen, ConfirmVault))
            assert "once" in text_of(app, ".question").lower()
            await pilot.press("n")
            await pilot.pause()
            assert store.vault(study_id) is None
            await pilot.press("ctrl+o")
            await until(pilot, lambda: isinstance(app.screen, ConfirmVault))
            await pilot.press("y")
            # while it runs (a process of its own: seconds), the screen says what it does
            await until(pilot, lambda: "evaluating trial" in text_of(app, "#vault-result"))
            first = text_of(app, "#vault-result")
            assert "test split" in first and "saved weights" in first
            await until(pilot, lambda: text_of(app, "#vault-result") != first)  # it ticks
            await until(pilot, lambda: screen.record is not None, timeout=120)
            record = store.vault(study_id)
            assert record is not None
            shown = text_of(app, "#vault-result")
            assert "test accuracy" in shown and "gap" in shown and "Why the gap" in shown
            assert screen.check_action("open_vault", ()) is False
        # Reopened later, the screen shows the record and cannot evaluate again.
        app2 = HpTuiApp(store=store)
        async with app2.run_test(size=SIZE) as pilot:
            app2.push_screen(VaultScreen(study_id))
            await until(pilot, lambda: app2.screen.record is not None)
            assert app2.screen.record == record
            assert app2.screen.check_action("open_vault", ()) is False

    run(go())
