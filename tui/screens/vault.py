"""The test vault: one trial, evaluated once per study on the held-out test split.

The evaluation needs torch, which the app never imports: it runs `hp-tui vault ... --json` in a
subprocess and shows the record that process wrote to the store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.timer import Timer
from textual.widgets import Footer, Header, Input, Label, Static

from engine.run import vault
from engine.spec import TrialConfig
from engine.store import StoreError, StudyRow, TrialRow
from engine.study import analysis, eta, report
from tui.format import fmt_pct
from tui.messages import VaultDone, VaultOpened, VaultTrialRead
from tui.screens.base import AppScreen
from tui.screens.confirm import ConfirmVault
from tui.screens.guard import leave_on_store_error

WHY_THE_GAP = (
    "Why the gap? Validation accuracy chose this trial: among many configurations and seeds, the "
    "one that scored best on the validation split is partly the best model and partly the one "
    "that got luckiest on those particular points. The test split was never used for any "
    "choice, so its accuracy carries no such selection luck; it is the honest estimate of how "
    "the model does on new data. A test accuracy a little below validation is the normal price "
    "of selection; a large gap says the study fitted its validation split rather than the "
    "problem. That is also why the vault opens only once: evaluating on the test split again "
    "and again, and choosing by it, would turn it into a second validation split."
)
ROOT = Path(__file__).resolve().parents[2]
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
SPIN_SECONDS = 0.25  # the spinner's step while the evaluation runs


def run_vault(store_path: Path, study_id: int, trial: int) -> tuple[dict[str, Any] | None, str]:
    """`hp-tui vault STUDY --trial N --yes --json` in a subprocess: (record or None, message)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "tui.cli", "vault", str(study_id), "--trial", str(trial),
           "--yes", "--json", "--store", str(store_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          env=env, timeout=600)
    record = None
    for line in proc.stdout.splitlines()[::-1]:
        try:
            record = json.loads(line)
            break
        except ValueError:
            continue
    message = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""
    return (record if isinstance(record, dict) else None), message


class VaultScreen(AppScreen[None]):
    """Evaluate one chosen trial on the locked test split: once per study, after confirmation.
    Then the test accuracy stands next to the validation accuracy, with the gap explained."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="back"),
        Binding("ctrl+o", "open_vault", "Open the vault", tooltip="Once per study",
                priority=True, id="open"),
    ]

    def __init__(self, study_id: int) -> None:
        super().__init__()
        self.study_id = study_id
        self.record: dict[str, Any] | None = None
        self.busy = False
        self.evaluating: tuple[int, int | None, float] | None = None  # trial, test rows, since
        self._ticker: Timer | None = None
        self.study: StudyRow | None = None
        self.blocked: str | None = None  # why the study cannot be evaluated now (it trains)
        self.refused: str | None = None  # why the chosen trial cannot (its data changed)
        self.seen_before: str | None = None  # the warning for a test split evaluated before
        self._notes: dict[str, tuple[str | None, str | None]] = {}  # per data section

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="vault-body"):
            yield Static("", id="vault-intro")
            with Horizontal(classes="field-row"):
                yield Label("trial to evaluate ", classes="field-label")
                yield Input("", id="vault-trial", compact=True, type="integer")
            yield Static("", id="vault-choice")
            yield Static("", id="vault-result")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"study {self.study_id}: test vault"
        self._open()

    @work(thread=True, exclusive=True, exit_on_error=False, group="vault-open")
    def _open(self) -> None:
        store = self.app.store
        try:
            record = store.vault(self.study_id)
            trials = store.trials(self.study_id)
            study = store.study(self.study_id)
            blocked = vault.training_refusal(store, study) if record is None else None
        except StoreError as e:
            self.app.call_from_thread(leave_on_store_error, self, e,
                                      f"cannot open the vault of study {self.study_id}")
            return
        self.post_message(VaultOpened(record, trials, study, blocked))

    def on_vault_opened(self, message: VaultOpened) -> None:
        self.record, self.study, self.blocked = message.record, message.study, message.blocked
        best = analysis.best_trial(report.trial_results(message.trials))
        self.query_one("#vault-trial", Input).value = str(best or "")
        self.query_one("#vault-intro", Static).update(
            f"[red]The vault cannot open now:[/] {escape(self.blocked)}." if self.blocked else
            "The test split has never been read. Pick the trial you would ship (default: the "
            "best trial of the configuration with the best mean validation accuracy), then "
            "ctrl+o. This can be done once per study.")
        self._show()

    @on(Input.Submitted, "#vault-trial")
    def _submitted(self) -> None:
        self.action_open_vault()

    @on(Input.Changed, "#vault-trial")
    def _trial_changed(self) -> None:
        self._show_choice()

    def _trial_number(self) -> int | None:
        text = self.query_one("#vault-trial", Input).value.strip()
        return int(text) if text.isdigit() else None

    def _show_choice(self) -> None:
        number = self._trial_number()
        if number is None:
            self.query_one("#vault-choice", Static).update("[red]type a trial number[/]")
            return
        self._read_choice(number)

    @work(thread=True, exclusive=True, exit_on_error=False, group="vault-choice")
    def _read_choice(self, number: int) -> None:
        self.post_message(self._read_trial(number, to_open=False))

    @work(thread=True, exclusive=True, exit_on_error=False, group="vault-check")
    def _read_to_open(self, number: int) -> None:
        self.post_message(self._read_trial(number, to_open=True))

    def _read_trial(self, number: int, to_open: bool) -> VaultTrialRead:
        """The trial and its data's notes, read in a worker (never on the UI thread)."""
        try:
            t = self.app.store.trial(self.study_id, number)
        except StoreError as e:
            return VaultTrialRead(number, None, str(e), None, None, to_open)
        return VaultTrialRead(number, t, None, *self._notes_for(t), to_open=to_open)

    def on_vault_trial_read(self, message: VaultTrialRead) -> None:
        if message.to_open:
            self._confirm(message)
        elif message.number == self._trial_number():  # else typing has moved on
            self._show_trial(message)

    def _show_trial(self, message: VaultTrialRead) -> None:
        box = self.query_one("#vault-choice", Static)
        t = message.trial
        if t is None:
            box.update(f"[red]{message.error}[/]")
            return
        flat = report.flat_config(t)
        cfg = ", ".join(f"{k}={v}" for k, v in flat.items() if k not in ("dataset", "seed"))
        self.refused, self.seen_before = message.refused, message.seen_before
        notes = "".join(f"\n[{style}]{escape(text)}[/]" for style, text in (
            ("red", self.refused), ("yellow", self.seen_before and f"warning: {self.seen_before}"))
            if text)
        box.update(f"trial {t.number}: {t.status}, validation accuracy {fmt_pct(t.val_acc)}"
                   f"\n[dim]{cfg}[/]{notes}")

    def _notes_for(self, t: TrialRow) -> tuple[str | None, str | None]:
        """(why its data refuses the vault, the warning for a test split seen before), for the
        trial's data section (hashing a CSV once per section, not per keystroke)."""
        if self.record is not None or self.study is None:
            return None, None
        key = json.dumps(t.config.get("data", {}), sort_keys=True)
        if key not in self._notes:
            try:
                earlier = vault.earlier_evaluations(self.app.store, self.study, t)
            except StoreError:
                return None, None  # the store is failing: the guard tells; ask again next time
            self._notes[key] = (vault.data_refusal(self.study, t),
                                vault.seen_before_message(earlier) if earlier else None)
        return self._notes[key]

    def _show(self) -> None:
        used = self.record is not None
        self.query_one("#vault-trial", Input).disabled = used or self.busy or bool(self.blocked)
        result = self.query_one("#vault-result", Static)
        if self.record is not None:
            r = self.record
            test, val = r.get("test_acc"), r.get("val_acc")
            gap = (f"gap {100 * (val - test):+.1f} points (validation - test)"
                   if test is not None and val is not None else "")
            result.update(
                f"[b]test vault opened {r.get('created')}[/b] on trial {r.get('trial_number')}"
                f"\n\n  validation accuracy  {fmt_pct(val)}\n  test accuracy        "
                f"[b]{fmt_pct(test)}[/b]\n  {gap}\n\n{WHY_THE_GAP}\n\n[dim]The vault is used: "
                "it cannot evaluate again for this study.[/]")
        elif self.busy:
            result.update(self._progress_text())
        else:
            result.update("")
        self._show_choice()
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "open_vault":
            return (self.study is not None and self.record is None and not self.busy
                    and not self.blocked)
        return True

    def action_open_vault(self) -> None:
        number = self._trial_number()
        if number is None:
            self.notify("type the number of a trial", severity="error")
            return
        self._read_to_open(number)  # then _confirm

    def _confirm(self, message: VaultTrialRead) -> None:
        t, number = message.trial, message.number
        if t is None:
            self.notify(str(message.error), severity="error")
            return
        if t.status != "completed":
            self.notify(f"trial {number} is {t.status}; only a completed trial can be "
                        "evaluated", severity="error")
            return
        refused, seen_before = message.refused, message.seen_before
        if self.blocked or refused:
            self.notify(escape(self.blocked or refused or ""), title="vault", severity="error",
                        timeout=12)
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.busy = True
                rows = TrialConfig.from_dict(t.config).data.test_size
                self.evaluating = (number, rows, time.monotonic())
                self._ticker = self.set_interval(SPIN_SECONDS, self._show)
                self._show()
                self.evaluate(number)

        self.app.push_screen(ConfirmVault(self.study_id, number, t.val_acc, seen_before),
                             confirmed)

    @work(thread=True, exclusive=True, exit_on_error=False, group="vault")
    def evaluate(self, number: int) -> None:
        store_path = self.app.store.path
        record, message = run_vault(store_path, self.study_id, number)
        self.post_message(VaultDone(record, message or None))

    def _progress_text(self) -> str:
        """What the evaluation is doing, with a spinner and the time it has taken."""
        if self.evaluating is None:
            return ""
        number, rows, since = self.evaluating
        elapsed = time.monotonic() - since
        frame = SPINNER[int(elapsed / SPIN_SECONDS) % len(SPINNER)]
        return (f"{frame} [b]evaluating trial {number} on the test split[/b] "
                f"({rows} rows)  {eta.format_clock(elapsed)}\n\n[dim]A process of its own loads "
                "torch and the trial's saved weights, scores every test row once and records "
                "the result; this study's vault is then used.[/]")

    def on_vault_done(self, message: VaultDone) -> None:
        self.busy, self.evaluating = False, None
        if self._ticker is not None:
            self._ticker.stop()
            self._ticker = None
        if message.record is not None:
            self.record = message.record
        if message.error and message.record is None:
            self.notify(message.error, title="vault", severity="error", timeout=12)
        elif message.error:
            self.notify(message.error, title="vault", severity="warning")
        self._show()
