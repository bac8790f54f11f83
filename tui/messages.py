"""Typed messages: what store-reading workers post to their screens, and where a screen asks to
go (`Navigate`: the app hands those to `tui.routes`, the one module that builds full screens).

Snapshots (the whole state, newest wins) override `can_replace`, so a screen that falls behind
handles one instead of a queue of stale ones. Metric deltas are never dropped: a poller batches
everything new since its last read into one message instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual.message import Message

from engine.presets import Preset
from engine.store import Metric, RoundRow, StudyRow, TrialRow


@dataclass
class StudiesPolled(Message):
    studies: list[StudyRow]

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StudiesPolled)


@dataclass
class StudyPolled(Message):
    study: StudyRow
    trials: list[TrialRow]
    runner_alive: bool
    rounds: list[RoundRow] = field(default_factory=list)  # an adaptive study's, in order
    runner_started: float | None = None  # when the runner took the study (epoch seconds)

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StudyPolled)


@dataclass
class MetricsPolled(Message):
    rows: dict[int, list[Metric]]  # trial id -> new epochs
    full: bool  # drop what was shown before (a rerun reset the metrics)


@dataclass
class VaultDone(Message):
    record: dict[str, Any] | None
    error: str | None


@dataclass
class StudyOpened(Message):
    """What the Run screen needs before its first poll: the study and its trials."""

    study: StudyRow
    trials: list[TrialRow]
    seconds_left: float | None = None  # the CLI's estimate for the unfinished trials
    same_took: float | None = None  # how long an identical study took here


@dataclass
class TrialPairRead(Message):
    pair: list[TrialRow]
    metrics: dict[int, list[Metric]]


@dataclass
class VaultOpened(Message):
    record: dict[str, Any] | None  # the vault's record, once opened
    trials: list[TrialRow]
    study: StudyRow
    blocked: str | None  # why the vault cannot open now


@dataclass
class VaultTrialRead(Message):
    """One trial as the vault screen checks it: for showing the choice, or for ctrl+o."""

    number: int
    trial: TrialRow | None
    error: str | None  # the store's, when the trial could not be read
    refused: str | None  # why its data refuses the vault
    seen_before: str | None  # the warning for a test split evaluated before
    to_open: bool

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, VaultTrialRead) and not message.to_open and not self.to_open


# -- navigation: a screen says where to go; tui.routes builds the screen -------------------------

@dataclass
class Navigate(Message):
    """Where a screen asks to go. It bubbles to the app, which routes it (tui.routes)."""


@dataclass
class OpenForm(Navigate):
    preset: Preset | None  # None: a form with the notebook's defaults


@dataclass
class OpenRace(Navigate):
    """A race of search strategies on a preset's space."""

    preset: Preset


@dataclass
class OpenPresetCompare(Navigate):
    a: Preset
    b: Preset


@dataclass
class OpenStudy(Navigate):
    """A study picked from the list: its results once completed, else the Run screen."""

    study_id: int
    status: str  # as the list shows it


@dataclass
class OpenRun(Navigate):
    """The Run screen of a study (in place of the same study's Results screen)."""

    study_id: int


@dataclass
class OpenResults(Navigate):
    """The Results screen of a study (in place of the same study's Run screen)."""

    study_id: int


@dataclass
class StudyLaunched(Navigate):
    """A study just launched from the form: its Run screen takes the form's place."""

    study_id: int
    pid: int  # the runner started for it


@dataclass
class OpenCompare(Navigate):
    study_id: int
    first: int  # trial numbers
    second: int


@dataclass
class OpenVault(Navigate):
    study_id: int


@dataclass
class RacePlanned(Message):
    """A race's plan (`tui.services.RacePlan`, None when the preset cannot race: `error`
    says why) and the number of the preset's latest race in the store, if any."""

    plan: Any
    error: str | None
    latest: int | None


@dataclass
class RacePolled(Message):
    """A race as the store holds it now (`engine.study.race_store.race_result`)."""

    result: dict[str, Any]
    done: int  # studies completed
    planned: int

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RacePolled)
