"""Follow a study through the store: curves, progress, trial statuses; stop and resume.

Everything shown comes from the store (never from the runner process), so leaving this screen,
quitting the app or opening a second one changes nothing for the runner.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, ProgressBar, Static
from textual.worker import get_current_worker

from engine import executors, report
from engine.config import TrialConfig
from engine.launcher import pid_alive
from engine.report import changes, flat_config, varying_keys
from engine.store import Metric, StoreError, StudyRow, TrialRow
from tui import actions, render
from tui.messages import MetricsPolled, StudyPolled
from tui.render import fmt_value
from tui.screens.guard import leave_on_store_error
from tui.screens.presets import nap
from tui.widgets.loss_plot import LossPlot, curve

POLL_SECONDS = 0.3
STATUS_STYLE = {"diverged": "bold yellow", "failed": "bold red", "running": "bold cyan",
                "completed": "green", "interrupted": "magenta", "pending": "dim"}


def styled_status(status: str) -> str:
    style = STATUS_STYLE.get(status)
    return f"[{style}]{status}[/]" if style else status


def fmt_num(x: float | None, pct: bool = False) -> str:
    if x is None:
        return "-"
    return f"{100 * x:.1f}%" if pct else f"{x:.4f}"


class RunScreen(Screen[None]):
    """Watch a study train: loss curves of the selected trial (left) and validation loss of every
    trial (right), progress with ETA, and each trial's status as it changes."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", tooltip="The runner keeps going", id="back"),
        Binding("s", "stop", "Stop", tooltip="Stop the runner; the study stays resumable",
                id="stop"),
        Binding("r", "resume", "Resume", tooltip="Train what is unfinished", id="resume"),
        Binding("l", "toggle_log", "Log scale", id="log"),
        Binding("o", "results", "Results", tooltip="Trials, impact table, vault", id="results"),
    ]

    def __init__(self, study_id: int, *, pid: int | None = None) -> None:
        super().__init__()
        self.study_id = study_id
        # A runner we just started takes a moment to take the study's lease: until it has one,
        # its process being alive is what says it runs.
        self.own_pid = pid
        self.study: StudyRow | None = None
        self.trials: dict[int, TrialRow] = {}
        self.metrics: dict[int, list[Metric]] = {}
        self.runner_alive = False
        self.log_scale = False
        self.selected: int | None = None
        self.columns: list[str] = []
        self.baseline: dict[str, Any] | None = None
        self._stopping = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="run-status")
        yield ProgressBar(id="run-progress", show_eta=True)
        with Horizontal(id="plots"):
            yield LossPlot(id="plot-selected")
            yield LossPlot(id="plot-all")
        yield DataTable(id="run-trials", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"study {self.study_id}"
        store = self.app.store  # type: ignore[attr-defined]
        try:
            trials = store.trials(self.study_id)
            study = store.study(self.study_id)
        except StoreError as e:
            leave_on_store_error(self, e, f"cannot open study {self.study_id}")
            return
        # one-at-a-time trials differ from the preset in one place: one "change" column
        self.baseline = (TrialConfig.from_dict(study.baseline).flat()
                         if study.strategy == "sensitivity" else None)
        self.columns = (["change"] if self.baseline is not None
                        else varying_keys([flat_config(t) for t in trials]))
        table = self.query_one("#run-trials", DataTable)
        table.add_column("#", key="n")
        for k in self.columns:
            table.add_column(k, key=f"c:{k}")
        for label, key in (("seed", "seed"), ("status", "status"), ("epoch", "epoch"),
                           ("train loss", "train"), ("val loss", "val"), ("val acc", "acc")):
            table.add_column(label, key=key)
        total = sum(TrialConfig.from_dict(t.config).epochs for t in trials)
        self.query_one("#run-progress", ProgressBar).update(total=max(total, 1), progress=0)
        table.focus()
        self.poll()

    # -- polling ----------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="poll-run")
    def poll(self) -> None:
        """Read what is new a few times a second; one message per kind per round."""
        worker = get_current_worker()
        store = self.app.store  # type: ignore[attr-defined]
        cursor: tuple[int, int] | None = None
        failing = False
        while not worker.is_cancelled:
            try:
                delta = store.metrics_since(self.study_id, cursor)
                study = store.study(self.study_id)
                alive = actions.runner_pid(store, self.study_id) is not None or (
                    self.own_pid is not None and pid_alive(self.own_pid))
                trials = store.trials(self.study_id)
            except StoreError as e:
                # Say it once, keep trying: a store that is busy or being repaired comes back.
                if not failing:
                    self.app.call_from_thread(self.notify, f"reading the store: {e}",
                                              title="store error", severity="error", timeout=10)
                failing = True
                nap(worker, 3 * POLL_SECONDS)
                continue
            failing = False
            cursor = delta.cursor
            if delta.rows or delta.full:
                self.post_message(MetricsPolled(delta.rows, delta.full))
            self.post_message(StudyPolled(study, trials, alive))
            nap(worker, POLL_SECONDS)

    def on_metrics_polled(self, message: MetricsPolled) -> None:
        if message.full:
            self.metrics = {}
        for trial_id, rows in message.rows.items():
            self.metrics.setdefault(trial_id, []).extend(rows)
        self.redraw()

    def on_study_polled(self, message: StudyPolled) -> None:
        self.study, self.runner_alive = message.study, message.runner_alive
        table = self.query_one("#run-trials", DataTable)
        for t in message.trials:
            cells = self._cells(t)
            key = str(t.id)
            if t.id not in self.trials:
                table.add_row(*cells.values(), key=key)
            elif self.trials[t.id] != t:
                for col, value in cells.items():
                    table.update_cell(key, col, value, update_width=True)
            self.trials[t.id] = t
        if self.selected is None and message.trials:
            self.selected = message.trials[0].id
        self._show_status()
        self.refresh_bindings()

    def _cells(self, t: TrialRow) -> dict[str, Any]:
        flat = flat_config(t)
        cells: dict[str, Any] = {"n": str(t.number)}
        if self.baseline is not None:
            cells["c:change"] = render.change_label(changes(flat, self.baseline))
        else:
            cells.update({f"c:{k}": fmt_value(flat.get(k)) for k in self.columns})
        epochs = TrialConfig.from_dict(t.config).epochs
        cells.update(seed=str(t.replicate), status=styled_status(t.status),
                     epoch=f"{t.epochs_done}/{epochs}", train=fmt_num(t.train_loss),
                     val=fmt_num(t.val_loss), acc=fmt_num(t.val_acc, pct=True))
        return cells

    def _show_status(self) -> None:
        s = self.study
        if s is None:
            return
        done = sum(s.counts.get(k, 0) for k in ("completed", "diverged", "failed"))
        total = sum(s.counts.values())
        extra = "".join(f", [yellow]{s.counts['diverged']} diverged[/]" if k == "diverged"
                        else f", [red]{s.counts['failed']} failed[/]"
                        for k in ("diverged", "failed") if s.counts.get(k))
        # the rule of every view (engine.report): running without a runner is interrupted
        state = "alive" if self.runner_alive else report.runner_state(s, None)
        status = report.shown_status(s, state)
        runner = {"alive": "runner alive", "gone": "[red]runner gone[/] (r resumes)"}.get(
            state or "", "no runner")
        place = executors.where(s.executor, s.ray_address)
        self.query_one("#run-status", Static).update(
            f"study {s.id} {s.preset_name or ''} ({s.strategy}): {styled_status(status)}, "
            f"{done}/{total} trials{extra}; {runner}" + (f" {place}" if place else "")
            + (f"  [red]{s.error}[/]" if s.error else ""))
        epochs = sum(t.epochs_done for t in self.trials.values())
        self.query_one("#run-progress", ProgressBar).update(progress=epochs)

    # -- plots ----------------------------------------------------------------------------------

    def redraw(self) -> None:
        sel = self.trials.get(self.selected) if self.selected is not None else None
        mine = self.metrics.get(self.selected or -1, [])
        title = f"trial {sel.number}" if sel else "trial"
        self.query_one("#plot-selected", LossPlot).draw(
            title, [("train", *curve(mine, 1)), ("val", *curve(mine, 2))], log=self.log_scale)
        series = [(f"{self.trials[i].number}" if i in self.trials else str(i), *curve(m, 2))
                  for i, m in sorted(self.metrics.items())]
        self.query_one("#plot-all", LossPlot).draw(
            "val loss, all trials", series, log=self.log_scale, legend=len(series) <= 4)

    @on(DataTable.RowHighlighted, "#run-trials")
    def _select(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self.selected = int(event.row_key.value)
            self.redraw()

    # -- actions --------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        finished = self.study is not None and self.study.status == "completed"
        if action == "stop":
            return self.runner_alive and not self._stopping
        if action == "resume":
            return self.study is not None and not self.runner_alive and not finished
        return True

    def action_toggle_log(self) -> None:
        self.log_scale = not self.log_scale
        self.redraw()

    def action_stop(self) -> None:
        self._stopping = True
        self.refresh_bindings()
        self.notify("stopping the runner...")
        self._stop()

    @work(thread=True, exclusive=True, exit_on_error=False, group="stop")
    def _stop(self) -> None:
        ok = actions.stop(self.app.store, self.study_id)  # type: ignore[attr-defined]
        self.app.call_from_thread(self._stopped, ok)

    def _stopped(self, ok: bool) -> None:
        self._stopping = False
        self.refresh_bindings()
        if ok:
            self.notify(f"study {self.study_id} stopped; r resumes it")
        else:
            self.notify("the runner did not stop in time", severity="error")

    def action_resume(self) -> None:
        store = self.app.store  # type: ignore[attr-defined]
        try:
            if actions.runner_pid(store, self.study_id) is not None:
                self.notify("a runner already holds this study", severity="warning")
                return
            too_big = actions.resume_memory_refusal(store, self.study_id)
            if too_big is not None:
                self.notify(f"not resumed: {too_big} (`hp-tui resume {self.study_id} "
                            "--ignore-memory` overrides this)", title="memory",
                            severity="error", timeout=15)
                return
            pid = actions.launch(store, self.study_id)
        except (OSError, StoreError) as e:
            self.notify(f"cannot resume: {e}", severity="error")
            return
        self.own_pid = pid
        self.runner_alive = True
        self.refresh_bindings()
        self.notify(f"resuming study {self.study_id} (runner pid {pid})")

    def action_results(self) -> None:
        from tui.screens.results import ResultsScreen

        self.app.push_screen(ResultsScreen(self.study_id))

    def palette_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand("Stop the runner", "The study stays resumable", self.action_stop)
        yield SystemCommand("Resume the study", "Train what is unfinished", self.action_resume)
        yield SystemCommand("Toggle log scale", "Loss axis", self.action_toggle_log)
        yield SystemCommand("Results", "Trials, impact table, vault", self.action_results)
