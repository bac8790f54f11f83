"""The hp-tui terminal app: a thin shell of screens over the store.

The app process never imports torch: it reads the store, renders, and starts or stops detached
runner processes. Every screen lives in `tui/screens/`, all styling in `tui/app.tcss`; screens
ask to go elsewhere with `tui.messages.Navigate` messages and `tui.routes` builds the screens.
"""

from __future__ import annotations

import sys
from pathlib import Path

from textual import events, on
from textual.app import App
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from engine.spec import ExitCode
from engine.store import Store, StoreError, default_store_path
from tui import routes
from tui import services as actions
from tui.messages import Navigate
from tui.screens.base import PaletteCommand
from tui.screens.too_small import TooSmallScreen
from tui.services import Placement

MIN_WIDTH, MIN_HEIGHT = 80, 24


class AppCommands(Provider):
    """The command palette's own entries: the app's (help, back to the presets) and those of the
    screen it was opened over (its `palette_commands`), fuzzy-matched on their titles."""

    def commands(self) -> list[PaletteCommand]:
        app = self.app
        assert isinstance(app, HpTuiApp)
        listed = [PaletteCommand("Help", "Keys of this screen and what it is for",
                                 app.action_help),
                  PaletteCommand("Presets", "Back to the presets and studies list",
                                 app.action_home)]
        extra = getattr(self.screen, "palette_commands", None)
        if callable(extra):
            listed += extra()
        return listed

    async def discover(self) -> Hits:
        for c in self.commands():
            yield DiscoveryHit(c.title, c.callback, help=c.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for c in self.commands():
            score = matcher.match(c.title)
            if score > 0:
                yield Hit(score, matcher.highlight(c.title), c.callback, text=c.title,
                          help=c.help)


class HpTuiApp(App[int]):
    """Presets -> form -> run -> results -> vault, all from the keyboard."""

    CSS_PATH = "app.tcss"
    TITLE = "hp-tui"
    COMMANDS = App.COMMANDS | {AppCommands}
    BINDINGS = [
        Binding("question_mark", "help", "Help", tooltip="Keys of this screen", id="help"),
        # f1 also works where a text field has the focus and takes "?" as text.
        Binding("f1", "help", "Help", show=False, priority=True, id="help-f1"),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True, id="quit"),
    ]

    def __init__(self, store_path: Path | None = None, store: Store | None = None,
                 placement: Placement | None = None) -> None:
        super().__init__()
        self.store = store or Store(default_store_path(store_path))
        self.placement = placement or Placement()  # where studies launched here train
        self.warm_runner = actions.WarmRunner(self.store.path)
        self._too_small: TooSmallScreen | None = None

    def on_unmount(self) -> None:
        self.warm_runner.close()

    def get_default_screen(self) -> Screen:
        return routes.home_screen()  # the bottom of the stack, so nothing can land under it

    def on_mount(self) -> None:
        self._check_size(self.size.width, self.size.height)

    # -- keys and commands ---------------------------------------------------------------------

    @on(Navigate)
    def _navigate(self, message: Navigate) -> None:
        routes.navigate(self, message)

    def action_help(self) -> None:
        routes.show_help(self)

    def action_home(self) -> None:
        routes.go_home(self)

    # -- a terminal too small says so instead of breaking --------------------------------------

    def on_resize(self, event: events.Resize) -> None:
        self._check_size(event.size.width, event.size.height)

    def _check_size(self, width: int, height: int) -> None:
        small = width < MIN_WIDTH or height < MIN_HEIGHT
        if small and self._too_small is None:
            self._too_small = TooSmallScreen(width, height)
            self.push_screen(self._too_small)
        elif not small and self._too_small is not None:
            if self.screen is self._too_small:
                self.pop_screen()
            self._too_small = None
        if self._too_small is not None:
            self._too_small.show_size(width, height)

    # -- one place reports worker failures ------------------------------------------------------

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            err = event.worker.error
            self.notify(f"{event.worker.name}: {err}", title="background task failed",
                        severity="error", timeout=10)


def run_app(store_path: Path | None = None, placement: Placement | None = None) -> int:
    """Open the app on the store (--store, else $HP_TUI_STORE, else ./.hp-tui/store.db); studies
    launched from it train where `placement` says (default: this machine)."""
    from engine.run import ExecutorError, check_executor

    placement = placement or Placement()
    try:
        check_executor(placement.executor, placement.ray_address)
    except ExecutorError as e:
        print(f"hp-tui: {e}", file=sys.stderr)
        return ExitCode.INVALID_INPUT
    path = default_store_path(store_path)
    try:
        store = Store(path)
    except StoreError as e:
        print(f"hp-tui: {e}", file=sys.stderr)
        return ExitCode.STORE
    with store:
        result = HpTuiApp(path, store=store, placement=placement).run()
    return int(result or ExitCode.OK)
