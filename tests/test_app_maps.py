"""The decision map: the numpy forward pass against torch, the map's accuracy against the stored
validation accuracy of a really trained trial, and the map in the results and compare screens."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from textual.widgets import DataTable

from engine.presets import load_preset, resolve_preset_arg
from engine.run.launcher import RunnerOptions, start_runner
from engine.spec.space import ACTIVATIONS
from engine.store import Store
from tests.app_helpers import SIZE, open_results, seed_grid, until
from tui import services as actions
from tui.app import HpTuiApp
from tui.screens.compare import CompareScreen
from tui.widgets.decision_map import DecisionMap, MapData, extent, forward, grid, load_map
from tui.widgets.map_panel import MapPanel

pytestmark = pytest.mark.numerics


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with Store(tmp_path / "s.db") as s:
        yield s


@pytest.mark.parametrize("kind", ACTIVATIONS)
def test_forward_matches_torch(kind: str) -> None:
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    rng = np.random.default_rng(1)
    weights = [(rng.normal(size=(5, 2)).astype(np.float32), rng.normal(size=5).astype(np.float32)),
               (rng.normal(size=(4, 5)).astype(np.float32), rng.normal(size=4).astype(np.float32)),
               (rng.normal(size=(1, 4)).astype(np.float32), rng.normal(size=1).astype(np.float32))]
    x = rng.normal(scale=3, size=(200, 2)).astype(np.float32)
    act = {"relu": F.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
           "leaky_relu": lambda h: F.leaky_relu(h, 0.01), "elu": F.elu, "gelu": F.gelu,
           "silu": F.silu}[kind]
    h = torch.from_numpy(x).double()
    for i, (w, b) in enumerate(weights):
        h = h @ torch.from_numpy(w).double().T + torch.from_numpy(b).double()
        if i < len(weights) - 1:
            h = act(h)
    np.testing.assert_allclose(forward(weights, kind, x), h[:, 0].numpy(), rtol=1e-9, atol=1e-9)


def test_grid_and_extent_cover_the_points() -> None:
    pts = np.array([[-1.0, 0.0], [3.0, 2.0]])
    x0, x1, y0, y1 = extent(pts, "moons")
    assert x0 < -1 and x1 > 3 and y0 < 0 and y1 > 2
    cells = grid((0, 2, 0, 1), 4, 2)
    assert cells.shape == (8, 2) and cells[0].tolist() == [0.25, 0.25]
    assert extent(None, "spirals") == (-17.0, 17.0, -17.0, 17.0)


def test_map_accuracy_equals_the_trainers_validation_accuracy(store: Store) -> None:
    study_id = actions.create_study(store, load_preset(resolve_preset_arg("tiny")))
    assert start_runner(store.path, study_id, RunnerOptions(device="cpu")).wait(timeout=120) == 0
    for trial in store.trials(study_id):
        data = load_map(store, study_id, trial)
        assert data.points is not None and data.problem() is None
        assert trial.val_acc is not None
        acc = data.accuracy()
        # float32 in the trainer, float64 here: a point right on the boundary may flip.
        assert acc == pytest.approx(trial.val_acc, abs=0.011)


def test_a_map_without_points_or_weights_says_why() -> None:
    data = MapData("trial 1", None, "relu", "spirals", None)
    assert "no weights" in (data.problem() or "")
    w = [(np.ones((3, 4), np.float32), np.zeros(3, np.float32)),
         (np.ones((1, 3), np.float32), np.zeros(1, np.float32))]
    assert "4 features" in (MapData("t", w, "relu", "csv", None, 4).problem() or "")


def _map_of(panel: MapPanel) -> DecisionMap:
    return panel.query_one(DecisionMap)


def test_results_m_draws_the_highlighted_trials_map(store: Store) -> None:
    study_id = seed_grid(store)

    async def go() -> None:
        app = HpTuiApp(store=store)
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_results(app, pilot, study_id)
            table = screen.query_one("#results-trials", DataTable)
            table.move_cursor(row=2)
            await pilot.press("m")
            plot = _map_of(screen.query_one("#results-map", MapPanel))
            await until(pilot, lambda: plot.data is not None, timeout=10)
            assert plot.data is not None and plot.data.title == "trial 3"
            assert plot.data.points is None  # seeded without points: the map alone
            await pilot.pause()
            assert "no validation points saved" in plot.plt.build()

    asyncio.run(go())


def test_compare_marked_trials_shows_both_maps(store: Store) -> None:
    study_id = seed_grid(store)

    async def go() -> None:
        app = HpTuiApp(store=store)
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_results(app, pilot, study_id)
            await pilot.press("c")  # nothing marked: explains instead
            await pilot.pause()
            assert app.screen is screen
            table = screen.query_one("#results-trials", DataTable)
            table.move_cursor(row=1)
            await pilot.press("space")
            await pilot.pause()
            assert str(table.get_row_at(1)[0]) == "*2"
            table.move_cursor(row=6)
            await pilot.press("c")
            await until(pilot, lambda: isinstance(app.screen, CompareScreen))
            compare = app.screen
            assert compare.numbers == (2, 7)
            await pilot.press("m")
            maps = [_map_of(p) for p in compare.query(MapPanel)]
            await until(pilot, lambda: all(m.data is not None for m in maps), timeout=10)
            assert [m.data.title for m in maps if m.data] == ["trial 2", "trial 7"]
            assert compare.check_action("toggle_log", ()) is False

    asyncio.run(go())
