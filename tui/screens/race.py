"""A race of search strategies on one preset's space: the plan, then the curves as they grow.

ctrl+l starts `hp-tui race PRESET` as a process of its own (it outlives the app, like a
runner); the screen follows the race through the store, where its studies are named
`race:<preset>:<strategy>:<seed>`. Opened again later, it shows the preset's latest race.
"""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static
from textual.worker import get_current_worker

from engine.presets import Preset
from engine.spec import StudyStatus
from engine.store import StoreError
from engine.study import race, race_store
from tui import services as actions
from tui.format import fmt_pct
from tui.messages import RacePlanned, RacePolled
from tui.screens.polling import PollingScreen, nap
from tui.widgets.race_plot import RacePlot

POLL_SECONDS = 1.0  # a race's studies train for seconds to minutes: once a second is plenty
IDLE_POLL_SECONDS = 5.0  # once nothing moves (a finished race, or none yet)


class RaceScreen(PollingScreen):
    """Which search strategy finds a good model for what it spends: grid, random, the
    one-at-a-time walk, random search with halving and tpe, on the same budget of trial-epochs
    over several study seeds (`hp-tui race`)."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", tooltip="A started race keeps going",
                id="back"),
        Binding("ctrl+l", "start", "Start the race", priority=True, id="start"),
    ]

    def __init__(self, preset: Preset) -> None:
        super().__init__()
        self.preset = preset
        self.plan: actions.RacePlan | None = None
        self.run_number: int | None = None  # the race followed (1, 2, ... in the store)
        self.result: dict[str, Any] | None = None
        self.studies: tuple[int, int] = (0, 0)  # completed, planned
        self.started = False  # this screen started the race it follows
        self.plan_error: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("planning...", id="race-plan")
        yield RacePlot(id="race-plot")
        yield DataTable(id="race-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"race on {self.preset.name}"
        table = self.query_one("#race-table", DataTable)
        for label in ("strategy", "studies", "trials", "trial-epochs", "best so far",
                      "low - high"):
            table.add_column(label, key=label)
        self.follow()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "start":
            return self.plan is not None and self.preset.path is not None and not self.started
        return True

    # -- the plan and the race's studies, read in one thread worker ------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="poll-race")
    def follow(self) -> None:
        """Plan the race (no store), find the preset's latest race, then read it as it goes."""
        worker = get_current_worker()
        try:
            plan = actions.race_plan(self.preset)
        except race.RaceError as e:
            self.post_message(RacePlanned(None, str(e), None))
            return
        store = self.app.store
        names = list(plan.lines)
        try:
            latest = race_store.free_run((s.name for s in store.studies()), self.preset.name,
                                         names, plan.seeds) - 1
        except StoreError as e:
            self.post_message(RacePlanned(plan, f"reading the store: {e}", None))
            return
        self.post_message(RacePlanned(plan, None, latest or None))
        seen: Any = None
        wait = POLL_SECONDS
        while self.wait_until_shown(worker):
            run = self.run_number
            if run is not None:
                try:
                    ids = race_store.race_studies(store, self.preset.name, names, plan.seeds,
                                                  run)
                    studies = [store.study(i) for group in ids.values() for i in group]
                    now = tuple((s.id, s.status, sum(s.counts.values()),
                                 s.counts.get("completed", 0)) for s in studies)
                    if now != seen:
                        result = race_store.race_result(store, self.preset.name, plan.budget,
                                                        plan.seeds, ids)
                        done = sum(s.status == StudyStatus.COMPLETED for s in studies)
                        self.post_message(RacePolled(result, done,
                                                     len(names) * len(plan.seeds)))
                        seen, wait = now, POLL_SECONDS
                    else:
                        wait = min(IDLE_POLL_SECONDS, wait * 1.5)
                except StoreError:
                    wait = IDLE_POLL_SECONDS  # busy or being repaired: the next poll tries again
            nap(worker, wait)

    def on_race_planned(self, message: RacePlanned) -> None:
        self.plan, self.run_number = message.plan, message.latest
        self.plan_error = message.error
        self._show_plan()

    def _show_plan(self) -> None:
        box = self.query_one("#race-plan", Static)
        plan = self.plan
        if plan is None:
            box.update(f"[red]cannot race {escape(self.preset.name)}:[/] "
                       f"{escape(self.plan_error or '')}")
            return
        lines = [f"[b]{race.STRATEGIES[n]}[/b]: {escape(t)}" for n, t in plan.lines.items()]
        lines += [f"[dim]{race.STRATEGIES[n]}: skipped, {escape(why)}[/]"
                  for n, why in plan.skipped.items()]
        head = (f"budget {plan.budget} trial-epochs per study, {len(plan.seeds)} study seeds "
                f"({', '.join(map(str, plan.seeds))}), one seed per configuration")
        if self.preset.path is None:
            head += "; [red]save the preset first[/] (a race runs a preset file)"
        elif self.started:
            head += f"; race {self.run_number or ''} started, it goes on without the app"
        elif self.run_number:
            head += f"; showing race {self.run_number} of this preset (ctrl+l starts another)"
        else:
            head += "; ctrl+l starts it"
        if self.plan_error:
            head += f"  [red]{escape(self.plan_error)}[/]"
        box.update("\n".join([head, *lines]))
        self.refresh_bindings()

    def on_race_polled(self, message: RacePolled) -> None:
        self.result, self.studies = message.result, (message.done, message.planned)
        self.query_one("#race-plot", RacePlot).draw(message.result)
        table = self.query_one("#race-table", DataTable)
        table.clear()
        for name, data in message.result["strategies"].items():
            best = [b for b in data["best"] if b is not None]
            lows = [v for v in data["low"] if v is not None]
            highs = [v for v in data["high"] if v is not None]
            table.add_row(
                data["label"], f"{len(data['studies'])}", str(data["trials"]),
                str(data["trial_epochs"]), fmt_pct(best[-1]) if best else "-",
                f"{fmt_pct(lows[-1])} - {fmt_pct(highs[-1])}" if lows and highs else "-",
                key=name)
        self.sub_title = (f"race on {self.preset.name}: {message.done} of {message.planned} "
                          "studies trained")

    # -- starting ----------------------------------------------------------------------------

    def action_start(self) -> None:
        if self.plan is not None and self.preset.path is not None and not self.started:
            self.started = True
            self.refresh_bindings()
            self._start(self.plan, self.preset.path)

    @work(thread=True, exclusive=True, exit_on_error=False, group="race-start")
    def _start(self, plan: actions.RacePlan, path: Any) -> None:
        """Start the race off the UI thread: the next free race number is read in the store."""
        store = self.app.store
        try:
            run = race_store.free_run((s.name for s in store.studies()), self.preset.name,
                                      list(plan.lines), plan.seeds)
            actions.start_race(store, path)
        except (StoreError, OSError) as e:
            self.app.call_from_thread(self.notify, f"cannot start the race: {e}",
                                      severity="error")
            return
        self.run_number = run  # the poll follows it from its next round
        self.app.call_from_thread(self._show_plan)
