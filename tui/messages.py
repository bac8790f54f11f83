"""Typed messages that store-polling workers post to screens.

Snapshots (the whole state, newest wins) override `can_replace`, so a screen that falls behind
handles one instead of a queue of stale ones. Metric deltas are never dropped: a poller batches
everything new since its last read into one message instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message

from engine.store import Metric, StudyRow, TrialRow


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
