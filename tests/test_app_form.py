"""Pilot tests of the preset form: validation as you type, the calibrated ETA, saving, and the
warm runner a launch is handed to."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input, Select

from engine.presets.library import resolve_preset_arg
from engine.presets.parse import load_preset, parse_preset
from engine.run.launcher import log_path
from engine.store.store import Store
from engine.study import eta
from tests.app_helpers import (
    GRID,
    SIZE,
    run,
    text_of,
    tiny_study,
    until,
)
from tui import services as actions
from tui.app import HpTuiApp
from tui.screens.confirm import ConfirmOverwrite
from tui.screens.form import FormScreen
from tui.screens.run import RunScreen


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


ADAPTIVE = GRID.replace('name = "seeded-grid"', 'name = "auto-grid"').replace(
    "seeds = 2", 'seeds = "auto"\nmin_seeds = 2\nmax_seeds = 8')


def test_an_identical_study_that_ran_before_says_how_long_the_next_will_take(
        store: Store) -> None:
    """An adaptive study's size depends only on its preset and the trained numbers: the same
    study here before grew to its trial count in its time (over all its runs), and so will
    this one. Other presets, other seeds, unfinished studies and Ray runs say nothing."""
    preset = parse_preset(ADAPTIVE)
    assert actions.cost(preset, actions.calibration(store, on_ray=False)).seconds_likely is None
    done = actions.create_study(store, preset)
    for seconds in (3.0, 4.0):  # killed once and resumed: two runs of one study
        store.record_run(done, trials=4, trial_steps=4, seconds=seconds, device="cpu",
                         model_seconds=1.0)
    store.record_run(done, trials=4, trial_steps=4, seconds=50.0, device="ray:cpu",
                     model_seconds=1.0)
    store.set_study_status(done, "completed")
    reseeded = parse_preset(ADAPTIVE.replace("seeds = 2", "seeds = 2\nseed = 5"))
    unfinished = actions.create_study(store, reseeded)
    store.record_run(unfinished, trials=4, trial_steps=4, seconds=99.0, device="cpu",
                     model_seconds=1.0)

    known = actions.calibration(store, on_ray=False, preset="auto-grid")
    cost = actions.cost(preset, known)
    trials = len(store.trials(done))
    assert (cost.trials_likely, cost.seconds_likely) == (trials, 7.0 + eta.STARTUP_S)
    assert f"likely ~{eta.format_seconds(7.0 + eta.STARTUP_S)} ({trials} trials" in cost.line()
    assert actions.cost(reseeded, known).seconds_likely is None  # never finished
    on_ray = actions.calibration(store, on_ray=True)
    assert actions.cost(preset, on_ray).seconds_likely == 50.0 + eta.STARTUP_S
    # a fixed-seeds study: its ETA is the identical study's time
    fixed = parse_preset(GRID)
    ran = actions.create_study(store, fixed)
    store.record_run(ran, trials=8, trial_steps=8, seconds=12.0, device="cpu",
                     model_seconds=1.0)
    store.set_study_status(ran, "completed")
    assert actions.cost(fixed, actions.calibration(store, on_ray=False)).seconds == (
        12.0 + eta.STARTUP_S)


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
