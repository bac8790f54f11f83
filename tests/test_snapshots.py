"""Snapshot tests (pytest-textual-snapshot): every screen at 80x24 and at 120x36.

Deterministic by construction: the store is seeded directly with fixed finished trials (no
runner), its creation date is pinned, the ETA's worker count is pinned, the store path in the
title is replaced, cursors do not blink, and nothing is captured while a toast is up. Update
with `pytest tests/test_snapshots.py --snapshot-update` after an intended change, then look at
the report (`snapshot_report.html`) before committing the SVGs.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import DataTable, Input

from engine.presets import load_preset, resolve_preset_arg
from engine.store import Store
from tests.app_helpers import seed_grid, text_of, until
from tui import services as actions
from tui.app import HpTuiApp
from tui.screens.compare import CompareScreen
from tui.screens.compare_presets import PresetCompareScreen
from tui.screens.form import FormScreen
from tui.screens.predictions import PredictionsScreen
from tui.screens.results import ResultsScreen
from tui.screens.run import RunScreen
from tui.screens.vault import VaultScreen
from tui.widgets.decision_map import DecisionMap

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 36), id="120x36")]
Before = Callable[[Pilot[Any]], Awaitable[None]]


@pytest.fixture(autouse=True)
def _fixed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(actions, "workers", lambda: 2)  # the ETA scales with the cores


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """A finished 2x2 grid (study 1) with validation points for its decision maps."""
    with Store(tmp_path / "store.db") as s:
        study_id = seed_grid(s)
        rng = np.random.default_rng(7)
        x = np.concatenate([rng.normal(-2, 1, (30, 2)), rng.normal(2, 1, (30, 2))])
        y = np.repeat([0.0, 1.0], 30)
        s.save_points(study_id, s.trials(study_id)[0].config["data"], x, y)
        with sqlite3.connect(s.path) as db:  # the one time-dependent column, pinned
            db.execute("UPDATE studies SET created = '2025-01-02T03:04:05+00:00'")
        yield s


def steady(screen: Callable[[], Screen[Any]] | None = None,
           ready: Callable[[HpTuiApp], bool] | None = None,
           keys: tuple[str, ...] = ()) -> Before:
    """Push a screen, press keys, wait until it shows what it should; then freeze the rest."""

    async def before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, HpTuiApp)
        await pilot.pause()
        if screen is not None:
            app.push_screen(screen())
        await pilot.pause()
        if keys:
            await pilot.press(*keys)
        if ready is not None:
            await until(pilot, lambda: ready(app), timeout=10)
        await until(pilot, lambda: settled(app), timeout=10)
        app.screen_stack[0].sub_title = "store.db"  # the path differs per test run
        for widget in app.screen.query(Input):
            widget.cursor_blink = False
        app.clear_notifications()
        await pilot.pause()

    return before


def settled(app: HpTuiApp) -> bool:
    """No one-off worker is still loading (one finishing after `ready` would refill a table;
    the pollers run for as long as their screen) and every table is measured."""
    loading = any(w.is_running and not w.group.startswith("poll-") for w in app.workers)
    return not loading and tables_measured(app)


def tables_measured(app: HpTuiApp) -> bool:
    """Whether every table on the screen has sized its columns to the rows it was given: a
    DataTable does it on its next idle, and a snapshot taken before shows cut-off columns (a
    widget's internal flag: Textual offers no public way to ask)."""
    return not any(t._require_update_dimensions for t in app.screen.query(DataTable))


def studies_listed(app: HpTuiApp) -> bool:
    return app.screen_stack[0].query_one("#studies", DataTable).row_count == 1


def loaded(app: HpTuiApp) -> bool:
    return getattr(app.screen, "data", None) is not None


@pytest.mark.parametrize("size", SIZES)
def test_presets(snap_compare: Any, store: Store, size: tuple[int, int]) -> None:
    assert snap_compare(HpTuiApp(store=store), terminal_size=size,
                        run_before=steady(ready=studies_listed))


@pytest.mark.parametrize("size", SIZES)
def test_form(snap_compare: Any, store: Store, size: tuple[int, int]) -> None:
    tiny = load_preset(resolve_preset_arg("tiny"))
    assert snap_compare(HpTuiApp(store=store), terminal_size=size,
                        run_before=steady(lambda: FormScreen(tiny)))


@pytest.mark.parametrize("size", SIZES)
def test_predictions(snap_compare: Any, store: Store, size: tuple[int, int]) -> None:
    tiny = load_preset(resolve_preset_arg("tiny"))
    assert snap_compare(HpTuiApp(store=store), terminal_size=size, run_before=steady(
        lambda: FormScreen(tiny), keys=("ctrl+r",),
        ready=lambda app: isinstance(app.screen, PredictionsScreen)))


def run_ready(app: HpTuiApp) -> bool:
    s = app.screen
    return isinstance(s, RunScreen) and s.study is not None and len(s.metrics) == 8


@pytest.mark.parametrize("size", SIZES)
def test_run(snap_compare: Any, store: Store, size: tuple[int, int]) -> None:
    assert snap_compare(HpTuiApp(store=store), terminal_size=size,
                        run_before=steady(lambda: RunScreen(1), ready=run_ready))


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("tab", ["t", "i", "p"])
def test_results(snap_compare: Any, store: Store, size: tuple[int, int], tab: str) -> None:
    assert snap_compare(HpTuiApp(store=store), terminal_size=size, run_before=steady(
        lambda: ResultsScreen(1), ready=lambda app: loaded(app) and press_once(app, tab)))


def press_once(app: HpTuiApp, tab: str) -> bool:
    """Switch the results tab (after the data arrived, so that the tab is filled)."""
    names = {"t": "trials", "i": "impact", "p": "per-value", "m": "map"}
    screen = app.screen
    assert isinstance(screen, ResultsScreen)
    if tab == "m":
        screen.action_map()
    else:
        screen.action_show_tab(names[tab])
    return True


def map_drawn(app: HpTuiApp) -> bool:
    return all(m.data is not None for m in app.screen.query(DecisionMap))


@pytest.mark.parametrize("size", SIZES)
def test_results_map(snap_compare: Any, store: Store, size: tuple[int, int]) -> None:
    assert snap_compare(HpTuiApp(store=store), terminal_size=size, run_before=steady(
        lambda: ResultsScreen(1), ready=lambda app: loaded(app) and press_once(app, "m")
        and map_drawn(app)))


def pair_read(app: HpTuiApp) -> bool:
    return len(getattr(app.screen, "pair", ())) == 2


@pytest.mark.parametrize("size", SIZES)
def test_compare_trials(snap_compare: Any, store: Store, size: tuple[int, int]) -> None:
    assert snap_compare(HpTuiApp(store=store), terminal_size=size,
                        run_before=steady(lambda: CompareScreen(1, 7, 3), ready=pair_read))


def test_compare_maps(snap_compare: Any, store: Store) -> None:
    assert snap_compare(HpTuiApp(store=store), terminal_size=(120, 36), run_before=steady(
        lambda: CompareScreen(1, 7, 3), keys=("m",),
        ready=lambda app: pair_read(app) and map_drawn(app)))


@pytest.mark.parametrize("size", SIZES)
def test_compare_presets(snap_compare: Any, store: Store, size: tuple[int, int]) -> None:
    a, b = (load_preset(resolve_preset_arg(n)) for n in ("notebook", "tiny"))
    assert snap_compare(HpTuiApp(store=store), terminal_size=size, run_before=steady(
        lambda: PresetCompareScreen(a, b), ready=lambda app: app.screen.best is not None))


def vault_shown(app: HpTuiApp) -> bool:
    """The vault read and the chosen trial described (both in workers)."""
    screen = app.screen
    return (isinstance(screen, VaultScreen) and screen.study is not None
            and "validation accuracy" in text_of(app, "#vault-choice"))


@pytest.mark.parametrize("size", SIZES)
def test_vault(snap_compare: Any, store: Store, size: tuple[int, int]) -> None:
    assert snap_compare(HpTuiApp(store=store), terminal_size=size,
                        run_before=steady(lambda: VaultScreen(1), ready=vault_shown))


def test_help(snap_compare: Any, tmp_path: Path) -> None:
    with Store(tmp_path / "empty.db") as empty:  # see test_too_small
        assert snap_compare(HpTuiApp(store=empty), terminal_size=(80, 24),
                            run_before=steady(keys=("question_mark",)))


def test_too_small(snap_compare: Any, tmp_path: Path) -> None:
    # An empty store: the screen under the message then never changes while it is covered
    # (a studies list filling in behind a modal was repainted at varying times: flaky).
    with Store(tmp_path / "empty.db") as empty:
        assert snap_compare(HpTuiApp(store=empty), terminal_size=(60, 20),
                            run_before=steady())
