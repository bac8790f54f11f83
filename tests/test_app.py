"""Pilot tests of the terminal app: what the screens show and what reaches the store.

Studies are either trained for real by the detached runner (the tiny preset: a few seconds) or
seeded straight into the store, so that the reading screens can be tested deterministically.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.command import CommandPalette
from textual.widgets import DataTable, Input, Select

from engine.presets.library import resolve_preset_arg
from engine.presets.parse import load_preset, parse_preset
from engine.run.launcher import log_path
from engine.store.store import EpochRow, Store
from tests.app_helpers import (
    GRID,
    ROOT,
    SIZE,
    column,
    open_results,
    open_seeded_run,
    run,
    seed_grid,
    text_of,
    tiny_study,
    trained_tiny,
    until,
)
from tui import services as actions
from tui.app import AppCommands, HpTuiApp
from tui.screens.compare import CompareScreen
from tui.screens.confirm import ConfirmOverwrite, ConfirmVault
from tui.screens.form import FormScreen
from tui.screens.help import HelpScreen
from tui.screens.presets import PresetsScreen
from tui.screens.results import ResultsScreen
from tui.screens.run import RunScreen, loss_percentiles
from tui.screens.too_small import TooSmallScreen
from tui.screens.vault import VaultScreen
from tui.widgets.loss_plot import LossPlot, ValuePlot

# -- app shell -----------------------------------------------------------------------------------

def test_presets_screen_lists_presets_invalid_ones_and_studies(store: Store,
                                                               user_presets: Path) -> None:
    user_presets.mkdir(parents=True)
    (user_presets / "broken.toml").write_text("[train]\nlr = -1\n")
    study_id = seed_grid(store)

    async def go() -> None:
        app = HpTuiApp(store=store)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            assert isinstance(app.screen, PresetsScreen)
            presets = app.screen.query_one("#presets", DataTable)
            rows = {str(presets.get_row_at(i)[0]): presets.get_row_at(i)
                    for i in range(presets.row_count)}
            assert "sensitivity, 4 trials" in str(rows["tiny"][2])
            assert "invalid" in str(rows["broken"][2])
            assert "lr" in str(rows["broken"][3])  # the first error line names the key
            studies = app.screen.query_one("#studies", DataTable)
            await until(pilot, lambda: studies.row_count == 1)
            assert column(studies, 0) == [str(study_id)]
            assert "completed" in column(studies, 3)[0]
            # Enter on an invalid preset explains instead of opening the form.
            presets.move_cursor(row=list(rows).index("broken"))
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, PresetsScreen)
            # Enter on a finished study opens its results.
            await pilot.press("tab", "enter")
            await until(pilot, lambda: isinstance(app.screen, ResultsScreen))
            await pilot.press("escape")
            await pilot.pause()
            assert isinstance(app.screen, PresetsScreen)
            await pilot.press("q")
            await pilot.pause()
        assert app.return_code == 0

    run(go())


def test_studies_list_follows_the_store_live(store: Store) -> None:
    async def go() -> None:
        app = HpTuiApp(store=store)
        async with app.run_test(size=SIZE) as pilot:
            studies = app.screen.query_one("#studies", DataTable)
            await pilot.pause(0.3)
            assert studies.row_count == 0
            study_id = seed_grid(store, finish=False)  # another process trains a study
            store.acquire_lease(study_id, pid=os.getpid(), host=socket.gethostname())
            await until(pilot, lambda: studies.row_count == 1
                        and "running" in column(studies, 3)[0], timeout=5)
            assert column(studies, 4)[0] == "4/8"

    run(go())


def test_help_lists_the_current_screens_keys(store: Store) -> None:
    async def go() -> None:
        app = HpTuiApp(store=store)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("question_mark")
            await pilot.pause()
            assert isinstance(app.screen, HelpScreen)
            keys = text_of(app, "#help-keys")
            assert "notebook's defaults" in keys and "Quit" in keys
            await pilot.press("escape")
            await pilot.pause()
            assert isinstance(app.screen, PresetsScreen)

    run(go())


def test_too_small_terminal_says_so_and_recovers(store: Store) -> None:
    async def go() -> None:
        app = HpTuiApp(store=store)
        async with app.run_test(size=(60, 20)) as pilot:
            await pilot.pause()
            assert isinstance(app.screen, TooSmallScreen)
            assert "60x20" in text_of(app, "#too-small")
            await pilot.resize_terminal(100, 30)
            await pilot.pause()
            assert isinstance(app.screen, PresetsScreen)

    run(go())


def test_command_palette_offers_app_actions(store: Store) -> None:
    """The app's and the screen's commands come from a Provider, fuzzy-matched; the system
    commands (Quit, Keys, ...) stay."""

    async def go() -> None:
        app = HpTuiApp(store=store)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            provider = AppCommands(app.screen)
            found = [hit.text async for hit in provider.discover()]
            assert found == ["Help", "Presets", "New preset", "Reload presets",
                             "Compare presets"]
            assert [hit.text async for hit in provider.search("nw prst")] == ["New preset"]
            assert "Quit" in [c.title for c in app.get_system_commands(app.screen)]
            await pilot.press("ctrl+p")
            await until(pilot, lambda: isinstance(app.screen, CommandPalette))
            await pilot.press("n", "e", "w", "space", "p", "r", "e")
            await pilot.pause(1.0)
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, FormScreen), timeout=10)

    run(go())


# -- the form ------------------------------------------------------------------------------------

def test_form_validates_as_you_type_and_counts_strategies(store: Store) -> None:
    async def go() -> None:
        app = HpTuiApp(store=store)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("n")
            await pilot.pause()
            form = app.screen
            assert isinstance(form, FormScreen)
            assert "single: 3 trials" in text_of(app, "#cost")
            lr = form.query_one("#f-train-lr Input", Input)
            lr.value = "abc"
            await pilot.pause()
            error = text_of(app, "#f-train-lr .field-error")
            assert "expected a number" in error  # the engine's own message
            assert "invalid" in text_of(app, "#cost")
            lr.value = "0"
            await pilot.pause()
            assert "out of range" in text_of(app, "#f-train-lr .field-error")
            lr.value = "0.01"
            form.query_one("#v-train-lr Input", Input).value = "0.001, 0.01, 0.1"
            form.query_one("#v-model-activation Input", Input).value = "relu, tanh"
            form.query_one("#f-study-strategy Select", Select).value = "grid"
            await pilot.pause()
            cost = text_of(app, "#cost")
            # grid: 3 x 2 configurations x 3 seeds; sensitivity: (1 + 2 + 1) x 3
            assert "grid: 18 trials" in cost and "sensitivity 12" in cost
            # A cross-field problem from the engine lands on the right field.
            form.query_one("#f-train-batch_size Input", Input).value = "5000"
            await pilot.pause()
            assert "batch" in text_of(app, "#f-train-batch_size .field-error").lower()

    run(go())


def test_the_eta_learns_from_the_same_presets_runs_first(store: Store) -> None:
    tiny = tiny_study(store)
    other = actions.create_study(store, parse_preset(GRID))
    store.record_run(tiny, trials=4, trial_steps=4, seconds=10.0, device="cpu", model_seconds=1.0)
    store.record_run(other, trials=8, trial_steps=8, seconds=1.0, device="cpu", model_seconds=2.0)
    assert actions.past_runs(store, on_ray=False, preset="tiny") == [(10.0, 1.0)]
    assert actions.past_runs(store, on_ray=False, preset="seeded-grid") == [(1.0, 2.0)]
    assert sorted(actions.past_runs(store, on_ray=False, preset="never-run")) == [
        (1.0, 2.0), (10.0, 1.0)]  # no history of its own: every local run
    assert actions.past_runs(store, on_ray=True, preset="tiny") == []


def test_form_eta_is_calibrated_by_the_stores_past_runs(store: Store) -> None:
    """The form's ETA is the CLI's: rescaled by what past runs really took on this machine."""
    tiny = load_preset(resolve_preset_arg("tiny"))
    runs = [(120.0, 1.5)]  # this machine ran 80x slower than the model says
    store.record_run(tiny_study(store), trials=4, trial_steps=400, seconds=runs[0][0],
                     device="cpu", model_seconds=runs[0][1])
    calibrated, default = actions.cost(tiny, runs).line(), actions.cost(tiny).line()
    assert calibrated != default

    async def go() -> None:
        app = HpTuiApp(store=store)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            app.push_screen(FormScreen(tiny))
            await until(pilot, lambda: isinstance(app.screen, FormScreen)
                        and bool(app.screen.query("#cost"))
                        and calibrated in text_of(app, "#cost"), timeout=10)

    run(go())


@pytest.mark.slow
def test_form_saves_toml_and_never_overwrites_without_asking(store: Store,
                                                             user_presets: Path) -> None:
    async def go() -> None:
        app = HpTuiApp(store=store)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("n")
            await pilot.pause()
            form = app.screen
            form.query_one("#name", Input).value = "mine"
            form.query_one("#f-train-lr Input", Input).value = "0.05"
            await pilot.pause()
            await pilot.press("ctrl+s")
            await pilot.pause()
            saved = user_presets / "mine.toml"
            preset = load_preset(saved)
            assert preset.config.lr == 0.05 and preset.name == "mine"
            form.query_one("#f-train-lr Input", Input).value = "0.5"
            await pilot.pause()
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert isinstance(app.screen, ConfirmOverwrite)
            await pilot.press("n")
            await pilot.pause()
            assert load_preset(saved).config.lr == 0.05  # untouched
            await pilot.press("ctrl+s")
            await pilot.pause()
            await pilot.press("y")
            await pilot.pause()
            assert load_preset(saved).config.lr == 0.5

    run(go())


# -- run screen ----------------------------------------------------------------------------------

@pytest.mark.slow
def test_launch_tiny_from_the_form_trains_and_shows_live(store: Store) -> None:
    async def go() -> None:
        app = HpTuiApp(store=store)
        async with app.run_test(size=SIZE) as pilot:
            presets = app.screen.query_one("#presets", DataTable)
            presets.move_cursor(row=column(presets, 0).index("tiny"))
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, FormScreen)
            await pilot.press("ctrl+l")
            await until(pilot, lambda: isinstance(app.screen, RunScreen))
            screen = app.screen
            await until(pilot, lambda: screen.study is not None
                           and screen.study.status == "completed")
            await until(pilot, lambda: len(screen.metrics) == 4)
            table = screen.query_one("#run-trials", DataTable)
            assert table.row_count == 4
            await pilot.pause(0.5)
            assert all("completed" in s for s in column(table, 3))
            assert all(e == "2/2" for e in column(table, 4))
            assert "4/4 trials" in text_of(app, "#run-status")
            studies = store.studies()
            assert [s.status for s in studies] == ["completed"]
            assert store.trials(studies[0].id)[0].val_acc is not None
            await pilot.press("l")  # log scale redraws without error
            await pilot.press("o")
            await until(pilot, lambda: isinstance(app.screen, ResultsScreen))
            results = app.screen
            await until(pilot, lambda: results.data is not None)
            assert results.query_one("#results-trials", DataTable).row_count == 4

    run(go())


@pytest.mark.slow
def test_stop_keeps_the_study_resumable_and_resume_finishes_it(store: Store) -> None:
    study_id = tiny_study(store, epochs=400)

    async def go() -> None:
        app = HpTuiApp(store=store)
        async with app.run_test(size=SIZE) as pilot:
            pid = actions.launch(store, study_id, device="cpu")
            app.push_screen(RunScreen(study_id, pid=pid))
            screen = app.screen
            await until(pilot, lambda: any(len(m) >= 2 for m in screen.metrics.values()))
            assert screen.check_action("stop", ()) is True
            await pilot.press("s")
            await until(pilot, lambda: store.study(study_id).status == "interrupted",
                           timeout=30)
            await until(pilot, lambda: "interrupted" in text_of(app, "#run-status"))
            await until(pilot, lambda: screen.check_action("resume", ()) is True, timeout=15)
            # Leaving and reopening the screen never touches the runner or the store.
            await pilot.press("r")
            await until(pilot, lambda: store.study(study_id).status == "running", timeout=30)
            await pilot.press("escape")
            await pilot.pause()
            app.push_screen(RunScreen(study_id))
            again = app.screen
            await until(pilot, lambda: again.study is not None
                           and again.study.status == "completed", timeout=90)
            assert store.study(study_id).counts["completed"] == 4

    run(go())


def test_run_screen_reads_a_study_whose_runner_died(store: Store) -> None:
    study_id = seed_grid(store, finish=False)  # "running", no lease: the runner is gone

    async def go() -> None:
        app = HpTuiApp(store=store)
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_seeded_run(app, pilot, study_id)
            status = text_of(app, "#run-status")
            assert "runner gone" in status and "4/8 trials" in status
            assert screen.check_action("stop", ()) is False
            assert screen.check_action("resume", ()) is True
            table = screen.query_one("#run-trials", DataTable)
            labels = [str(c.label) for c in table.columns.values()]
            assert set(labels[1:3]) == {"lr", "activation"}  # only what varies

    run(go())


def test_run_screen_reads_only_what_changed_and_nothing_while_covered(store: Store) -> None:
    """Following a finished study costs almost nothing: its trials are read once (nothing
    changes after), the polls slow down, and a screen pushed over the Run screen stops them."""
    study_id = seed_grid(store)
    calls = {"trials": 0, "metrics_since": 0}

    def counted(name: str) -> Callable[..., object]:
        real = getattr(store, name)

        def call(*args: object) -> object:
            calls[name] += 1
            return real(*args)
        return call

    for name in calls:
        setattr(store, name, counted(name))

    async def go() -> None:
        app = HpTuiApp(store=store)
        async with app.run_test(size=SIZE) as pilot:
            await open_seeded_run(app, pilot, study_id)
            before = dict(calls)
            await pilot.pause(3.0)
            assert calls["trials"] == before["trials"]  # nothing changed: no trial re-read
            assert calls["metrics_since"] - before["metrics_since"] <= 6  # 10 at a fixed 0.3 s
            await pilot.press("question_mark")
            await until(pilot, lambda: isinstance(app.screen, HelpScreen))
            await pilot.pause(0.5)
            covered = calls["metrics_since"]
            await pilot.pause(2.5)
            assert calls["metrics_since"] == covered  # the help is on top
            await pilot.press("escape")
            await until(pilot, lambda: calls["metrics_since"] > covered, timeout=5)

    run(go())


THOUSAND = """
name = "thousand"
[data]
train_size = 200
val_size = 100
[train]
epochs = 10
[study]
strategy = "grid"
seeds = 10
[study.vary]
lr = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]
batch_size = [8, 10, 16, 20, 25, 32, 40, 50, 64, 100]
"""


def test_the_all_trials_plot_of_a_thousand_trials_is_a_band(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past a few trials the right plot draws percentiles across trials, the best and the
    selected trial (five curves), not a line per trial."""
    study_id = actions.create_study(store, parse_preset(THOUSAND))
    trials = store.trials(study_id)
    floor = {t.id: 0.05 + 0.0002 * t.number for t in trials}  # trial 1 is the best
    for epoch in range(10):
        store.record_epoch([EpochRow(t.id, epoch, floor[t.id] + 0.5 / (epoch + 1),
                                     floor[t.id] + 0.5 / (epoch + 1), 0.8,
                                     status="completed" if epoch == 9 else "running")
                            for t in trials])
    store.set_study_status(study_id, "completed")
    drawn: list[tuple[str, list[str]]] = []

    real_draw = LossPlot.draw

    def spy(plot: LossPlot, title: str, series: Any, **kw: Any) -> None:
        if plot.id == "plot-all":
            drawn.append((title, [label for label, _, _ in series]))
        real_draw(plot, title, series, **kw)

    async def go() -> None:
        app = HpTuiApp(store=store)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            app.push_screen(RunScreen(study_id))
            screen = app.screen
            assert isinstance(screen, RunScreen)
            monkeypatch.setattr(LossPlot, "draw", spy)
            await until(pilot, lambda: len(screen.trials) == 1000 and screen.plots_settled()
                        and bool(drawn) and "best" in " ".join(drawn[-1][1]))
            median = loss_percentiles(screen.metrics, [0.5])[0]
            assert median[0] == [float(e) for e in range(1, 11)]

    run(go())
    title, labels = drawn[-1]
    assert title == "val loss of 1000 trials"
    assert labels == ["p90", "median", "p10", "best (1)", "selected (1)"]


@pytest.mark.slow
@pytest.mark.ray
def test_a_ray_study_resumed_from_the_run_screen_trains_on_ray(store: Store) -> None:
    """The app starts runners without knowing about executors: the study's record decides."""
    pytest.importorskip("ray")
    preset = load_preset(resolve_preset_arg("tiny"))
    study_id = actions.create_study(store, preset, device="cpu", executor="ray")
    assert store.study(study_id).ray_address == "local"  # a private Ray on this machine

    async def go() -> None:
        app = HpTuiApp(store=store)
        async with app.run_test(size=SIZE) as pilot:
            app.push_screen(RunScreen(study_id))
            screen = app.screen
            await until(pilot, lambda: screen.check_action("resume", ()) is True)
            assert "on a private Ray" in text_of(app, "#run-status")
            await pilot.press("r")
            await until(pilot, lambda: store.study(study_id).status == "completed",
                           timeout=120)
            await until(pilot, lambda: "4/4 trials" in text_of(app, "#run-status"))
    run(go())
    assert {t.device for t in store.trials(study_id)} == {"ray:cpu"}


@pytest.mark.slow
@pytest.mark.ray
def test_the_app_launches_on_the_ray_it_was_opened_with(store: Store) -> None:
    """`hp-tui --executor ray`: the form says where a launch goes, and the study goes there."""
    pytest.importorskip("ray")
    preset = load_preset(resolve_preset_arg("tiny"))

    async def go() -> int:
        app = HpTuiApp(store=store, placement=actions.Placement("ray"))
        async with app.run_test(size=SIZE) as pilot:
            app.push_screen(FormScreen(preset))
            await pilot.pause()
            assert "launches on a private Ray" in text_of(app, "#cost")
            await pilot.press("ctrl+l")
            await until(pilot, lambda: isinstance(app.screen, RunScreen), timeout=10)
            study_id = app.screen.study_id
            await until(pilot, lambda: store.study(study_id).status == "completed",
                           timeout=120)
            return study_id

    study_id = run(go())
    study = store.study(study_id)
    assert (study.executor, study.ray_address) == ("ray", "local")
    assert {t.device for t in store.trials(study_id)} == {"ray:cpu"}


# -- results, compare, vault ---------------------------------------------------------------------

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
            assert "above noise" in text
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


# -- layering ------------------------------------------------------------------------------------

def test_app_never_imports_torch(tmp_path: Path) -> None:
    code = """
import asyncio, sys
from pathlib import Path
from tui.app import AppCommands, HpTuiApp
async def main():
    app = HpTuiApp(Path(sys.argv[1]))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("n")
        await pilot.pause()
asyncio.run(main())
assert "torch" not in sys.modules, "torch was imported"
"""
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "s.db")], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.slow
def test_the_form_keeps_a_runner_warm_and_hands_it_the_launch(store: Store) -> None:
    """Opening the form starts a runner that imports torch at once and waits; ctrl+l hands it
    the study (that very process trains it); quitting the app ends a warm runner never used."""
    tiny = load_preset(resolve_preset_arg("tiny"))
    pids: list[int] = []

    def warm_pid(app: HpTuiApp) -> int | None:
        runner = app.warm_runner._runner
        return runner.proc.pid if runner is not None and runner.proc is not None else None

    async def go() -> None:
        app = HpTuiApp(store=store)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            app.push_screen(FormScreen(tiny))
            await until(pilot, lambda: warm_pid(app) is not None)
            warm = warm_pid(app)
            assert warm is not None
            await pilot.press("ctrl+l")
            await until(pilot, lambda: isinstance(app.screen, RunScreen))
            run_screen = app.screen
            assert isinstance(run_screen, RunScreen) and run_screen.own_pid == warm
            await until(pilot, lambda: store.studies() != []
                        and store.study(1).status == "completed", timeout=120)
            app.push_screen(FormScreen(tiny))  # a new warm runner for the next launch
            await until(pilot, lambda: warm_pid(app) not in (None, warm))
            pids.append(warm_pid(app) or 0)
        # the app has quit: the unused warm runner is gone
        assert not Path(f"/proc/{pids[0]}").exists() or "Z" in Path(
            f"/proc/{pids[0]}/stat").read_text().split(")")[1].split()[:1]

    run(go())
    assert "study 1: 4 trials to train" in log_path(store.path, 1).read_text()

