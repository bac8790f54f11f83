"""What every full screen of the app shares: `self.app` typed as the HpTuiApp it runs in, so that
`self.app.store`, `self.app.placement` and `self.app.warm_runner` are checked like any attribute."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple, TypeVar

from textual import getters
from textual.screen import Screen

if TYPE_CHECKING:
    from tui.app import HpTuiApp

ResultType = TypeVar("ResultType")


class AppScreen(Screen[ResultType]):
    """A screen of hp-tui. At run time `app` is Textual's own property (the running app); for the
    type checker it is Textual's typed getter (`textual.getters.app`), bound to HpTuiApp."""

    if TYPE_CHECKING:
        app = getters.app(HpTuiApp)


class PaletteCommand(NamedTuple):
    """A secondary action a screen offers in the command palette (`palette_commands`)."""

    title: str
    help: str
    callback: Callable[[], object]
