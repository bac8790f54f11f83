"""The preset form: every parameter of the space table, the study and its cost; save, launch."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Footer, Header, Input, Label, Select, Static

from engine.presets import Preset, PresetError, user_presets_dir
from engine.spec import space
from engine.store import StoreError
from engine.study import strategies
from tui import form_model
from tui import services as actions
from tui.files import write_atomically
from tui.messages import StudyLaunched
from tui.screens.base import AppScreen, PaletteCommand
from tui.screens.confirm import ConfirmOverwrite
from tui.screens.predictions import Predictions, PredictionsScreen, listed
from tui.widgets.param_field import ParamField


class FormScreen(AppScreen[None]):
    """Edit a preset: values are checked as you type with the engine's rules; the bottom line
    shows the study's trial count and ETA next to what the other strategies would cost.
    Optionally write down predictions (ctrl+r) before launching; the results score them."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="back"),
        Binding("ctrl+s", "save", "Save", tooltip="Save as a TOML preset", priority=True,
                id="save"),
        Binding("ctrl+r", "predict", "Predict", tooltip="Expected best values and effect sizes",
                priority=True, id="predict"),
        Binding("ctrl+l", "launch", "Launch", tooltip="Create the study and start training",
                priority=True, id="launch"),
    ]

    def __init__(self, preset: Preset | None) -> None:
        super().__init__()
        self.source = preset
        self.values, self.vary = form_model.initial_values(preset)
        self.preset: Preset | None = preset
        self.problems: list[str] = []
        self.predictions: Predictions = {}
        self.calibration = actions.Calibration()  # past runs in the store (the ETA)

    def compose(self) -> ComposeResult:
        src = self.source
        yield Header()
        with VerticalScroll(id="form"):
            with Horizontal(classes="field-row"):
                yield Label("name", classes="field-label")
                yield Input(src.name if src else "untitled", id="name", compact=True)
            with Horizontal(classes="field-row"):
                yield Label("description", classes="field-label")
                yield Input(src.description if src else "", id="description", compact=True)
            for section in space.SECTIONS:
                yield Label(f"[{section}]", classes="form-section", markup=False)
                for p in space.params_in(section):
                    yield ParamField(p, self.values.get(p.dotted))
            yield Label("[study.vary]  values to try; empty = not varied", markup=False,
                        classes="form-section")
            for p in space.SPACE:
                if p.variable:
                    yield ParamField(p, self.vary.get(p.key), vary=True)
        yield Static("", id="cost")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"preset {self.source.name}" if self.source else "new preset"
        self.revalidate()
        self.query_one("#name", Input).focus()
        self._read_calibration()
        self.app.warm_runner.warm()  # a launch will follow soon

    @work(thread=True, exclusive=True, exit_on_error=False, group="calibration")
    def _read_calibration(self) -> None:
        """The store's past runs, as `hp-tui run` reads them, so that the ETA shown here is the
        CLI's (read off the UI thread, once)."""
        store = self.app.store
        on_ray = self.app.placement.executor == "ray"
        try:
            known = actions.calibration(store, on_ray=on_ray,
                                        preset=self.source.name if self.source else None)
        except StoreError:
            return  # the default calibration stays
        self.app.call_from_thread(self._calibrated, known)

    def _calibrated(self, known: actions.Calibration) -> None:
        self.calibration = known
        if self.preset is not None:
            self._show_cost()

    @on(Input.Changed)
    @on(Select.Changed)
    def _changed(self) -> None:
        self.revalidate()

    def fields(self) -> list[ParamField]:
        return list(self.query(ParamField))

    def revalidate(self) -> None:
        """Field checks first (immediate, per field), then the whole preset through the engine."""
        fields = self.fields()
        own = {f.id: f.own_error() for f in fields}
        values = {f.param.dotted: f.parsed() for f in fields if not f.vary}
        vary = {f.param.key: v for f in fields if f.vary and (v := f.parsed()) is not None}
        text = form_model.build_text(self.query_one("#name", Input).value,
                                     self.query_one("#description", Input).value, values, vary)
        base = self.source.path.parent.resolve() if self.source and self.source.path else None
        by_field: dict[str, str] = {}
        self.problems = []
        try:
            self.preset = form_model.to_preset(text, base)
        except PresetError as e:
            self.preset = None
            for problem in e.problems:
                target = _field_for(problem.key)
                if target and target not in by_field:
                    by_field[target] = problem.message
                else:
                    self.problems.append(f"{problem.key or ''}: {problem.message}".lstrip(": "))
        for f in fields:
            f.show_error(own.get(f.id) or by_field.get(f.id or ""))
        self._show_cost()

    def _show_cost(self) -> None:
        cost = self.query_one("#cost", Static)
        if self.preset is None:
            msg = self.problems[0] if self.problems else "fix the fields marked in red"
            cost.update(f"[red]invalid:[/] {msg}")
            return
        try:
            line = actions.cost(self.preset, self.calibration).line()
            place = self.app.placement.where()
            n = len(self.current_predictions())
            cost.update(line + (f"\nlaunches {place}" if place else "")
                        + (f"\npredictions: {n} recorded (ctrl+r)" if n else ""))
        except ValueError as e:
            self.preset = None
            cost.update(f"[red]invalid:[/] {e}")

    # -- save ------------------------------------------------------------------------------------

    def save_path(self) -> Path:
        name = self.query_one("#name", Input).value.strip() or "untitled"
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
        return user_presets_dir() / f"{safe}.toml"

    def action_save(self) -> None:
        if self.preset is None:
            self.notify("the preset has problems; fix the fields marked in red first",
                        severity="error")
            return
        path = self.save_path()
        if path.exists():
            def answered(yes: bool | None) -> None:
                if yes:
                    self._write(path)

            self.app.push_screen(ConfirmOverwrite(str(path)), answered)
        else:
            self._write(path)

    def _write(self, path: Path) -> None:
        assert self.preset is not None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(path, self.preset.text)
        except OSError as e:
            self.notify(f"cannot write {path}: {e.strerror or e}", severity="error")
            return
        self.notify(f"saved {path}", title="preset saved")

    # -- predictions -----------------------------------------------------------------------------

    def current_predictions(self) -> Predictions:
        """Only predictions that still match the varied values (the form may have changed)."""
        if self.preset is None:
            return {}
        values = listed(self.preset.study.vary) if self.preset.study.strategy != "single" else {}
        return {k: (v, s) for k, (v, s) in self.predictions.items()
                if k in values and v in values[k]}

    def action_predict(self) -> None:
        if self.preset is None:
            self.notify("fix the fields marked in red first", severity="error")
            return
        vary = self.preset.study.vary if self.preset.study.strategy != "single" else {}
        if not listed(vary):
            self.notify("nothing is varied with listed values: there is nothing to predict",
                        severity="warning")
            return

        def kept(result: Predictions | None) -> None:
            if result is not None:
                self.predictions = result
                self._show_cost()

        self.app.push_screen(PredictionsScreen(vary, self.current_predictions()), kept)

    # -- launch ----------------------------------------------------------------------------------

    def action_launch(self) -> None:
        if self.preset is None:
            self.notify("the preset has problems; fix the fields marked in red first",
                        severity="error")
            return
        store = self.app.store
        placement = self.app.placement
        try:
            plan = strategies.plan(self.preset.config, self.preset.study)
            too_big = actions.launch_memory_refusal(self.preset, plan, placement.executor)
            if too_big is not None:
                self.notify(f"not launched: {too_big} (`hp-tui run PRESET --ignore-memory` "
                            "overrides this)", title="memory", severity="error", timeout=15)
                return
            study_id = actions.create_study(
                store, self.preset, plan=plan, executor=placement.executor,
                ray_address=placement.ray_address,
                warn=lambda m: self.notify(m, title="data", severity="warning"))
            predictions = self.current_predictions()
            if predictions:  # written before the runner starts: a guess, not a look back
                store.set_predictions(study_id, predictions)
            pid = self.app.warm_runner.launch(store, study_id)
        except (OSError, ValueError, StoreError) as e:
            self.notify(f"cannot start the study: {e}", severity="error")
            return
        self.post_message(StudyLaunched(study_id, pid))  # its Run screen replaces this form

    def palette_commands(self) -> Iterable[PaletteCommand]:
        yield PaletteCommand("Save preset", "Write the form as a TOML preset", self.action_save)
        yield PaletteCommand("Predictions", "Expected best values and effect sizes",
                            self.action_predict)
        yield PaletteCommand("Launch study", "Create the study and start its runner",
                            self.action_launch)


def _field_for(key: str | None) -> str | None:
    """The form field a preset problem's dotted key belongs to."""
    if not key:
        return None
    if key.startswith("study.vary."):
        p = space.VARIABLE.get(key.split(".")[2])
        return f"v-{p.dotted.replace('.', '-')}" if p else None
    try:
        return "f-" + space.param(key).dotted.replace(".", "-")
    except KeyError:
        return None
