"""Pilot tests of the app shell: the presets and studies lists, help, a terminal too small, the
command palette, and an app that never imports torch.

Studies are either trained for real by the detached runner (the tiny preset: a few seconds) or
seeded straight into the store, so that the reading screens can be tested deterministically.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from textual.command import CommandPalette
from textual.widgets import DataTable

from engine.store import Store
from tests.app_helpers import (
    ROOT,
    SIZE,
    column,
    run,
    seed_grid,
    text_of,
    until,
)
from tui.app import AppCommands, HpTuiApp
from tui.screens.form import FormScreen
from tui.screens.help import HelpScreen
from tui.screens.presets import PresetsScreen
from tui.screens.results import ResultsScreen
from tui.screens.too_small import TooSmallScreen


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
