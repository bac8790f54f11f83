"""Follow a study through the store: curves, progress, trial statuses; stop and resume.

Everything shown comes from the store (never from the runner process), so leaving this screen,
quitting the app or opening a second one changes nothing for the runner.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Footer, Header, ProgressBar, Static
from textual.widgets.data_table import ColumnKey
from textual.worker import get_current_worker

from engine.run import executors
from engine.spec import (
    BATCHED_STRATEGIES,
    FINISHED_TRIALS,
    StudySpec,
    TrialConfig,
    describe_schedule,
    lr_curve,
    pid_alive,
)
from engine.store import Metric, RoundRow, StoreError, StudyRow, TrialRow
from engine.study import changes, flat_config, report, varying_keys
from tui import render
from tui import services as actions
from tui.format import (
    STATUS_STYLE,
    cell_width,
    fmt_num,
    fmt_value,
    markup_safe,
    styled_status,
)
from tui.messages import MetricsPolled, OpenResults, StudyOpened, StudyPolled
from tui.screens.base import PaletteCommand
from tui.screens.guard import leave_on_store_error
from tui.screens.polling import PollingScreen, nap
from tui.widgets.eta_line import EtaLine
from tui.widgets.loss_plot import LossPlot, curve

POLL_SECONDS = 0.3  # new epochs are read this often while the study moves
TABLE_SECONDS = 1.0  # the trials (table, statuses) at most this often: what a person can read
IDLE_POLL_SECONDS = 2.0  # the longest wait between polls once nothing has changed for a while
REDRAW_SECONDS = 1.0  # the plots are redrawn at most this often
BAND_ABOVE = 8  # more trials than this: the all-trials plot draws a band, not a line each


def started_at(lease: dict[str, Any] | None) -> float | None:
    """When a runner took its lease, in epoch seconds (the lease keeps an ISO time)."""
    try:
        return datetime.fromisoformat(lease["started"]).timestamp() if lease else None
    except (KeyError, TypeError, ValueError):
        return None


def loss_percentiles(metrics: dict[int, list[Metric]], qs: Iterable[float]
                     ) -> list[tuple[list[float], list[float]]]:
    """For each quantile q, (epochs, the q-quantile of the trials' validation losses there).
    Only epochs that at least half of the trials have reached: beyond, the few trials ahead
    (another worker's population) would make the band jump."""
    by_epoch: dict[int, list[float]] = {}
    for rows in metrics.values():
        for m in rows:
            if m[2] is not None and m[2] > 0:
                by_epoch.setdefault(m[0], []).append(float(m[2]))
    enough = max((len(v) for v in by_epoch.values()), default=0) / 2
    epochs = sorted(e for e, v in by_epoch.items() if len(v) >= enough)
    out = []
    for q in qs:
        ys = []
        for e in epochs:
            values = sorted(by_epoch[e])
            ys.append(values[min(len(values) - 1, int(q * len(values)))])
        out.append(([float(e + 1) for e in epochs], ys))
    return out


class RunScreen(PollingScreen):
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
        self.opened = time.time()
        self.study: StudyRow | None = None
        self.trials: dict[int, TrialRow] = {}
        self.metrics: dict[int, list[Metric]] = {}
        self.runner_alive = False
        self.runner_started: float | None = None  # the lease's start (epoch seconds)
        self.latest_round: RoundRow | None = None  # an adaptive study's round, and why
        self.log_scale = False
        self.selected: int | None = None
        self.columns: list[str] = []
        self.baseline: dict[str, Any] | None = None
        self._stopping = False
        self._cells: dict[int, dict[str, Any]] = {}  # what each row shows now
        self._plots_dirty = False
        self._last_redraw = -1e9
        self._redraw_timer: Any = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="run-status")
        with Horizontal(id="run-progress-line"):
            yield ProgressBar(id="run-progress", show_eta=False)
            yield EtaLine(id="run-eta")
        with Horizontal(id="plots"):
            yield LossPlot(id="plot-selected")
            yield LossPlot(id="plot-all")
        yield DataTable(id="run-trials", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"study {self.study_id}"
        self.query_one("#run-trials", DataTable).focus()
        self.poll()

    def on_study_opened(self, message: StudyOpened) -> None:
        study, trials = message.study, message.trials
        # one-at-a-time trials differ from the preset in one place: one "change" column
        self.baseline = (TrialConfig.from_dict(study.baseline).flat()
                         if study.strategy == "sensitivity" else None)
        self.columns = (["change"] if self.baseline is not None
                        else varying_keys([flat_config(t) for t in trials]))
        # Columns as wide as what they will show, from the start: sized by the table on its
        # next idle instead, rows drawn before that kept header-wide columns ("comple").
        epochs = [TrialConfig.from_dict(t.config).epochs for t in trials] or [1]
        widest = {"status": max(map(len, STATUS_STYLE)), "epoch": len(f"{max(epochs)}") * 2 + 1,
                  "train": len("0.0000"), "val": len("0.0000"), "acc": len("100.0%")}
        for t in trials:
            for key, value in self.row_cells(t).items():
                widest[key] = max(widest.get(key, 0), cell_width(value))
        table = self.query_one("#run-trials", DataTable)
        labels = [("#", "n"), *((k, f"c:{k}") for k in self.columns), ("seed", "seed"),
                  ("status", "status"), ("epoch", "epoch"), ("train loss", "train"),
                  ("val loss", "val"), ("val acc", "acc")]
        for label, key in labels:
            table.add_column(label, key=key, width=max(len(label), widest.get(key, 0)))
        total = sum(TrialConfig.from_dict(t.config).epochs for t in trials)
        self.query_one("#run-progress", ProgressBar).update(total=max(total, 1), progress=0)
        self.query_one("#run-eta", EtaLine).estimated(
            message.seconds_left, grows=actions.grows(study.spec),
            same_took=message.same_took)

    # -- polling ----------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="poll-run")
    def poll(self) -> None:
        """Read the study (StudyOpened), then what is new; one message per kind per round, none
        when nothing changed.

        Each round reads the new epochs (an incremental cursor), the study row (its trial
        counts) and the lease; the trials themselves only when one of those moved. The wait
        between rounds grows while nothing changes (a finished study costs almost nothing) and
        polling stops while another screen covers this one."""
        worker = get_current_worker()
        store = self.app.store
        try:  # the columns first (what varies), then the polls fill them
            opened, listed = store.study(self.study_id), store.trials(self.study_id)
            self.post_message(StudyOpened(opened, listed,
                                          *actions.time_left(store, opened, listed)))
        except StoreError as e:
            self.app.call_from_thread(leave_on_store_error, self, e,
                                      f"cannot open study {self.study_id}")
            return
        cursor: tuple[int, int] | None = None
        seen: tuple[Any, ...] | None = None
        wait, table_due = POLL_SECONDS, 0.0
        failing = False
        while not worker.is_cancelled:
            if not self.wait_until_shown(worker):
                break
            try:
                delta = store.metrics_since(self.study_id, cursor)
                study = store.study(self.study_id)
                lease = store.lease(self.study_id)
                held = lease is not None and bool(lease.get("alive"))
                alive = held or (self.own_pid is not None and pid_alive(self.own_pid))
                # our own runner is starting (no lease yet): its clock starts with the screen
                started = started_at(lease) if held else (self.opened if alive else None)
                now = (delta.cursor, study, alive)
                # a change of status or of the runner shows at once; epochs once a second
                due = (study, alive) != (seen or (None, None, None))[1:] or (
                    time.monotonic() >= table_due)
                trials = store.trials(self.study_id) if now != seen and due else None
                rounds = (store.rounds(self.study_id) if trials is not None and (
                    study.spec.get("adaptive") or study.strategy in BATCHED_STRATEGIES) else [])
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
            if trials is not None:
                self.post_message(StudyPolled(study, trials, alive, rounds, started))
                seen, wait, table_due = now, POLL_SECONDS, time.monotonic() + TABLE_SECONDS
            elif now == seen and not delta.rows:
                wait = min(IDLE_POLL_SECONDS, wait * 1.5)
            nap(worker, wait)

    def on_metrics_polled(self, message: MetricsPolled) -> None:
        if message.full:
            self.metrics = {}
        for trial_id, rows in message.rows.items():
            self.metrics.setdefault(trial_id, []).extend(rows)
        self._plots_dirty = True
        self._redraw_soon()

    def plots_settled(self) -> bool:
        """Whether the plots show everything read so far (no redraw pending)."""
        return not self._plots_dirty and self._redraw_timer is None

    def _redraw_soon(self) -> None:
        """Redraw now if the last redraw is old enough, else once when it is."""
        if not self._plots_dirty:
            return
        wait = self._last_redraw + REDRAW_SECONDS - time.monotonic()
        if wait <= 0:
            self.redraw()
        elif self._redraw_timer is None:
            self._redraw_timer = self.set_timer(wait, self._redraw_due)

    def _redraw_due(self) -> None:
        self._redraw_timer = None
        self._redraw_soon()

    def on_study_polled(self, message: StudyPolled) -> None:
        self.study, self.runner_alive = message.study, message.runner_alive
        self.runner_started = message.runner_started
        self.latest_round = message.rounds[-1] if message.rounds else None
        table = self.query_one("#run-trials", DataTable)
        grown = len(message.trials) > len(self.trials)
        for t in message.trials:
            if self.trials.get(t.id) == t:
                continue
            cells, before = self.row_cells(t), self._cells.get(t.id)
            key = str(t.id)
            if before is None:
                table.add_row(*cells.values(), key=key)
            else:
                for col, value in cells.items():
                    if value != before[col]:
                        # Widen a column only for a value wider than it: asked to update the
                        # width otherwise, DataTable measures every cell of the column again.
                        wider = cell_width(value) > table.columns[ColumnKey(col)].content_width
                        table.update_cell(key, col, value, update_width=wider)
            self.trials[t.id], self._cells[t.id] = t, cells
        if self.selected is None and message.trials:
            self.selected = message.trials[0].id
        if grown:  # a round of an adaptive study added trials
            total = sum(TrialConfig.from_dict(t.config).epochs for t in self.trials.values())
            self.query_one("#run-progress", ProgressBar).update(total=max(total, 1))
        if len(self.metrics) > BAND_ABOVE:  # the band's best trial may have changed
            self._plots_dirty = True
            self._redraw_soon()
        self._show_status()
        self.refresh_bindings()

    def row_cells(self, t: TrialRow) -> dict[str, Any]:
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
        done = sum(s.counts.get(k, 0) for k in FINISHED_TRIALS)
        total = sum(s.counts.values())
        extra = "".join(f", [yellow]{s.counts['diverged']} diverged[/]" if k == "diverged"
                        else f", [red]{s.counts['failed']} failed[/]"
                        for k in ("diverged", "failed") if s.counts.get(k))
        # the rule of every view (engine.study.report): running without a runner is interrupted
        state = "alive" if self.runner_alive else report.runner_state(s, None)
        status = report.shown_status(s, state)
        runner = {"alive": "runner alive", "gone": "[red]runner gone[/] (r resumes)"}.get(
            state or "", "no runner")
        place = executors.where(s.executor, s.ray_address)
        self.query_one("#run-status", Static).update(
            f"study {s.id} {s.preset_name or ''} ({s.strategy}): {styled_status(status)}, "
            f"{done}/{total} trials{extra}; {runner}" + (f" {place}" if place else "")
            + (f"  [red]{s.error}[/]" if s.error else "")
            # an adaptive study's round, or a tpe study's batch, on a line of its own: a
            # narrow terminal would cut it
            + (f"\n{markup_safe(self._round_line(self.latest_round, s))}"
               if self.latest_round else "")
            + self._halving_line())
        # a pruned trial's epochs left are done: they are the saving
        epochs = sum(TrialConfig.from_dict(t.config).epochs if t.status == "pruned"
                     else t.epochs_done for t in self.trials.values())
        bar = self.query_one("#run-progress", ProgressBar)
        bar.update(progress=epochs)
        self.query_one("#run-eta", EtaLine).follow(
            epochs, int(bar.total or 0), alive=self.runner_alive, started=self.runner_started)

    @staticmethod
    def _round_line(latest: RoundRow, study: StudyRow) -> str:
        """An adaptive round and its seeds; a batch's reason says which batch of how many."""
        if study.strategy in BATCHED_STRATEGIES:
            return latest.reason
        return f"{latest.reason} ({latest.seeds} seeds)"

    def _halving_line(self) -> str:
        """A halving study's rungs and the trial-epochs its pruning saved, on a line of its own."""
        if self.study is None or self.study.spec.get("pruner") != "halving":
            return ""
        facts = report.halving_facts(StudySpec.from_dict(self.study.spec),
                                     list(self.trials.values()))
        rungs = ", ".join(str(r) for r in facts["rungs"]) or "none"
        return (f"\nhalving: rungs after epochs {rungs}; {facts['pruned']} pruned, "
                f"{facts['trial_epochs_saved']:,} of {facts['trial_epochs_full']:,} "
                "trial-epochs saved")

    # -- plots ----------------------------------------------------------------------------------

    def redraw(self) -> None:
        self._plots_dirty, self._last_redraw = False, time.monotonic()
        sel = self.trials.get(self.selected) if self.selected is not None else None
        mine = self.metrics.get(self.selected or -1, [])
        title = f"trial {sel.number}" if sel else "trial"
        lr = None
        if sel is not None:
            config = TrialConfig.from_dict(sel.config)
            if config.schedule != "constant" or config.warmup_epochs:
                # the schedule against the right-hand axis, over the epochs drawn so far
                title += f", lr {describe_schedule(config)}"
                done = max((m[0] + 1 for m in mine), default=0)
                lr = ("lr", [float(e + 1) for e in range(done)], lr_curve(config)[:done])
        self.query_one("#plot-selected", LossPlot).draw(
            title, [("train", *curve(mine, 1)), ("val", *curve(mine, 2))], log=self.log_scale,
            lr=lr)
        plot = self.query_one("#plot-all", LossPlot)
        if len(self.metrics) > BAND_ABOVE:
            plot.draw(f"val loss of {len(self.metrics)} trials", self._band_series(sel),
                      log=self.log_scale)
            return
        series = [(f"{self.trials[i].number}" if i in self.trials else str(i), *curve(m, 2))
                  for i, m in sorted(self.metrics.items())]
        plot.draw("val loss, all trials", series, log=self.log_scale, legend=len(series) <= 4)

    def _band_series(self, sel: TrialRow | None) -> list[Any]:
        """What reads at a thousand trials: the 10th, 50th and 90th percentiles of the
        validation loss across trials at each epoch, the best trial and the selected one."""
        bands = loss_percentiles(self.metrics, (0.1, 0.5, 0.9))
        series: list[Any] = [("p90", *bands[2]), ("median", *bands[1]), ("p10", *bands[0])]
        best = min(self.trials.values(), key=lambda t: t.val_loss if t.val_loss is not None
                   else float("inf"), default=None)
        for label, trial in (("best", best), ("selected", sel)):
            if trial is not None and trial.id in self.metrics:
                series.append((f"{label} ({trial.number})", *curve(self.metrics[trial.id], 2)))
        return series

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
        ok = actions.stop(self.app.store, self.study_id)
        self.app.call_from_thread(self._stopped, ok)

    def _stopped(self, ok: bool) -> None:
        self._stopping = False
        self.refresh_bindings()
        if ok:
            self.notify(f"study {self.study_id} stopped; r resumes it")
        else:
            self.notify("the runner did not stop in time", severity="error")

    def action_resume(self) -> None:
        store = self.app.store
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
        self.post_message(OpenResults(self.study_id))

    def palette_commands(self) -> Iterable[PaletteCommand]:
        yield PaletteCommand("Stop the runner", "The study stays resumable", self.action_stop)
        yield PaletteCommand("Resume the study", "Train what is unfinished", self.action_resume)
        yield PaletteCommand("Toggle log scale", "Loss axis", self.action_toggle_log)
        yield PaletteCommand("Results", "Trials, impact table, vault", self.action_results)
