"""What the app's Pilot tests share: a seeded study, the tiny preset trained for real, waiting on
the app, and reading what a screen shows as plain text."""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path
from typing import Any

import numpy as np
from textual.widgets import DataTable, Static

from engine.presets import load_preset, parse_preset, resolve_preset_arg
from engine.run.launcher import RunnerOptions, start_runner
from engine.store import EpochRow, FinishRow, Store, encode_weights
from tui import services as actions
from tui.app import HpTuiApp
from tui.screens.results import ResultsScreen
from tui.screens.run import RunScreen

ROOT = Path(__file__).resolve().parent.parent
SIZE = (80, 24)
GRID = """
name = "seeded-grid"
description = "two parameters, two values each"
[data]
train_size = 200
val_size = 100
[train]
epochs = 3
[study]
strategy = "grid"
seeds = 2
[study.vary]
lr = [0.01, 0.1]
activation = ["relu", "tanh"]
"""


def seed_grid(store: Store, *, finish: bool = True) -> int:
    """A finished 2x2 grid (8 trials) with made-up but deterministic numbers: tanh and the
    larger learning rate are better, by much more than the seed noise."""
    preset = parse_preset(GRID)
    study_id = actions.create_study(store, preset)
    store.set_study_status(study_id, "completed" if finish else "running")
    rows, ends = [], []
    rng = np.random.default_rng(0)
    for t in store.trials(study_id):
        acc = 0.6 + 0.2 * (t.config["train"]["lr"] == 0.1) + 0.1 * (
            t.config["model"]["activation"] == "tanh") + 0.005 * t.replicate
        for epoch in range(3):
            rows.append(EpochRow(t.id, epoch, 0.5 - 0.1 * epoch, 0.55 - 0.1 * epoch, acc))
        weights = encode_weights([(rng.normal(size=(10, 2)), np.zeros(10)),
                                  (rng.normal(size=(1, 10)), np.zeros(1))])
        if finish or t.number <= 4:
            ends.append(FinishRow(t.id, "completed", weights, None, 0.3, 0.35, acc, 3))
    store.record_epoch(rows)
    store.finish_trials(ends)
    return study_id


def tiny_study(store: Store, **overrides: Any) -> int:
    preset = load_preset(resolve_preset_arg("tiny"))
    if overrides:
        text = preset.text.replace("epochs = 2", f"epochs = {overrides['epochs']}")
        preset = parse_preset(text, "tiny-long.toml")
    return actions.create_study(store, preset)


def trained_tiny(store: Store) -> int:
    study_id = tiny_study(store)
    assert start_runner(store.path, study_id, RunnerOptions(device="cpu")).wait(timeout=120) == 0
    return study_id


async def until(pilot: Any, condition: Any, timeout: float = 60.0) -> None:
    """Let the app run until `condition()` holds (the Pilot counterpart of cli_helpers.wait_for)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the app"
        await pilot.pause(0.1)


async def open_seeded_run(app: HpTuiApp, pilot: Any, study_id: int) -> RunScreen:
    """Push the Run screen of a `seed_grid` study and wait until it shows all 8 trials' epochs."""
    app.push_screen(RunScreen(study_id))
    screen = app.screen
    assert isinstance(screen, RunScreen)
    await until(pilot, lambda: screen.study is not None and len(screen.metrics) == 8)
    return screen


async def open_results(app: HpTuiApp, pilot: Any, study_id: int) -> ResultsScreen:
    """Push the study's Results screen and wait until its data has loaded."""
    app.push_screen(ResultsScreen(study_id))
    screen = app.screen
    assert isinstance(screen, ResultsScreen)
    await until(pilot, lambda: screen.data is not None)
    return screen


def plain(content: Any, width: int = 100) -> str:
    """Static content (markup text or a rich renderable) as the plain text a user reads."""
    from rich.console import Console
    from rich.text import Text

    if isinstance(content, str):
        content = Text.from_markup(content)
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.print(content)
    return console.export_text()


def text_of(app: HpTuiApp, selector: str) -> str:
    return plain(app.screen.query_one(selector, Static).content)


def column(table: DataTable, index: int) -> list[str]:
    return [str(table.get_row_at(r)[index]) for r in range(table.row_count)]


def run(coro: Any) -> Any:
    return asyncio.run(coro)
