"""Pilot tests of the Run screen: a launch followed live, stop and resume, a dead runner, what it
reads (and stops reading while covered), the all-trials band, and studies on Ray."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from textual.widgets import DataTable, ProgressBar

from engine.presets.library import resolve_preset_arg
from engine.presets.parse import load_preset, parse_preset
from engine.store.store import EpochRow, Store
from tests.app_helpers import (
    SIZE,
    column,
    open_seeded_run,
    run,
    seed_grid,
    text_of,
    tiny_study,
    until,
)
from tui import services as actions
from tui.app import HpTuiApp
from tui.screens.form import FormScreen
from tui.screens.help import HelpScreen
from tui.screens.results import ResultsScreen
from tui.screens.run import RunScreen, loss_percentiles
from tui.widgets.loss_plot import LossPlot


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


def test_the_run_screen_says_how_long_it_has_trained_and_has_left(store: Store) -> None:
    """While the runner trains: the elapsed time and what is left, counting down; once it has
    ended, how long it trained. A study that ended before it was opened shows no clock."""
    study_id = tiny_study(store, epochs=300)

    async def go() -> None:
        app = HpTuiApp(store=store)
        async with app.run_test(size=SIZE) as pilot:
            pid = actions.launch(store, study_id, device="cpu")
            app.push_screen(RunScreen(study_id, pid=pid))
            screen = app.screen
            await until(pilot, lambda: bool(screen.query("#run-eta"))
                        and "left" in text_of(app, "#run-eta")
                        and screen.query_one("#run-progress", ProgressBar).progress > 0)
            shown = text_of(app, "#run-eta").strip()
            assert re.fullmatch(r"elapsed \d+:\d\d · ~\d+:\d\d left", shown), shown
            await until(pilot, lambda: "trained for" in text_of(app, "#run-eta"), timeout=90)
            assert store.study(study_id).status == "completed"
            await pilot.press("escape")
            app.push_screen(RunScreen(study_id))
            again = app.screen
            await until(pilot, lambda: again.study is not None)
            await pilot.pause(0.3)
            assert text_of(app, "#run-eta").strip() == ""

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


SCHEDULED = """name = "scheduled"
[train]
epochs = 6
schedule = "cosine"
warmup_epochs = 2
[study]
seeds = 1
"""


def test_the_selected_trials_plot_draws_its_lr_schedule(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A trial with a schedule: its plot's title names it and its lr per epoch is drawn
    against the right-hand axis, over the epochs trained so far."""
    study_id = actions.create_study(store, parse_preset(SCHEDULED))
    (trial,) = store.trials(study_id)
    store.record_epoch([EpochRow(trial.id, e, 0.5 - 0.05 * e, 0.5 - 0.04 * e, 0.6)
                        for e in range(4)])
    drawn: list[tuple[str, Any]] = []
    real_draw = LossPlot.draw

    def spy(plot: LossPlot, title: str, series: Any, **kw: Any) -> None:
        if plot.id == "plot-selected":
            drawn.append((title, kw.get("lr")))
        real_draw(plot, title, series, **kw)

    async def go() -> None:
        app = HpTuiApp(store=store)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            monkeypatch.setattr(LossPlot, "draw", spy)
            app.push_screen(RunScreen(study_id))
            screen = app.screen
            assert isinstance(screen, RunScreen)
            await until(pilot, lambda: screen.plots_settled() and any(
                lr is not None for _, lr in drawn))

    run(go())
    title, lr = [d for d in drawn if d[1] is not None][-1]
    assert title == "trial 1, lr cosine to 0 + warm-up 2"
    label, xs, ys = lr
    assert label == "lr" and xs == [1.0, 2.0, 3.0, 4.0]
    assert ys == pytest.approx([0.01 / 3, 0.02 / 3, 0.01, 0.01 * (1 + 0.5 ** 0.5) / 2])
