"""Navigation: the one module that builds the app's full screens.

Screens never build each other: they post a `tui.messages.Navigate` message, which bubbles to the
app, and the app hands it to `navigate`. Most requests push a screen, so that escape goes back to
where the user came from. Two replace the top screen instead: the Run and the Results screens of
one study take each other's place (`o` and `w` never grow the stack), and a study launched from
the form opens its Run screen in the form's place. Modal dialogs that answer the screen that asked
(confirmations, the export path, predictions) stay with that screen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.screen import Screen

from tui.messages import (
    Navigate,
    OpenCompare,
    OpenForm,
    OpenPresetCompare,
    OpenRace,
    OpenResults,
    OpenRun,
    OpenStudy,
    OpenVault,
    StudyLaunched,
)
from tui.screens.compare import CompareScreen
from tui.screens.compare_presets import PresetCompareScreen
from tui.screens.form import FormScreen
from tui.screens.help import HelpScreen
from tui.screens.presets import PresetsScreen
from tui.screens.race import RaceScreen
from tui.screens.results import ResultsScreen
from tui.screens.run import RunScreen
from tui.screens.vault import VaultScreen

if TYPE_CHECKING:
    from tui.app import HpTuiApp


def home_screen() -> Screen[None]:
    """The bottom of the stack: the presets and the studies in the store."""
    return PresetsScreen()


def navigate(app: HpTuiApp, message: Navigate) -> None:
    match message:
        case OpenForm(preset=preset):
            app.push_screen(FormScreen(preset))
        case OpenPresetCompare(a=a, b=b):
            app.push_screen(PresetCompareScreen(a, b))
        case OpenRace(preset=preset):
            app.push_screen(RaceScreen(preset))
        case OpenStudy(study_id=study_id, status=status):
            app.push_screen(ResultsScreen(study_id) if status == "completed"
                            else RunScreen(study_id))
        case OpenRun(study_id=study_id):
            _in_place_of_the_study(app, study_id, RunScreen(study_id))
        case OpenResults(study_id=study_id):
            _in_place_of_the_study(app, study_id, ResultsScreen(study_id))
        case StudyLaunched(study_id=study_id, pid=pid):
            screen = RunScreen(study_id, pid=pid)
            if isinstance(app.screen, FormScreen):
                app.switch_screen(screen)
            else:
                app.push_screen(screen)
        case OpenCompare(study_id=study_id, first=first, second=second):
            app.push_screen(CompareScreen(study_id, first, second))
        case OpenVault(study_id=study_id):
            app.push_screen(VaultScreen(study_id))
        case _:
            raise TypeError(f"no route for {type(message).__name__}")


def _in_place_of_the_study(app: HpTuiApp, study_id: int, screen: Screen[None]) -> None:
    """Replace the same study's Run or Results screen on top; anywhere else, push."""
    top = app.screen
    if isinstance(top, (RunScreen, ResultsScreen)) and top.study_id == study_id:
        app.switch_screen(screen)
    else:
        app.push_screen(screen)


def go_home(app: HpTuiApp) -> None:
    """Back to the presets, closing every screen above them."""
    while len(app.screen_stack) > 1 and not isinstance(app.screen, PresetsScreen):
        app.pop_screen()


def show_help(app: HpTuiApp) -> None:
    """The keys of the screen on top (taken now: once the help is up, its keys are the active
    ones) and what that screen is for."""
    if not isinstance(app.screen, HelpScreen):
        app.push_screen(HelpScreen(app.screen, list(app.active_bindings.values())))
