"""The store's value types: rows as frozen dataclasses, errors, the weights codec, and the small
conversions between Python values and SQLite columns. Standard library and numpy only.
"""

from __future__ import annotations

import difflib
import io
import json
import math
import os
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from engine.spec import TRIAL_STATUSES, pid_alive
from engine.store.schema import StoreError


def _lease_seconds(default: float = 30.0) -> float:
    """$HP_TUI_LEASE_SECONDS, else 30: how long a runner may go without a heartbeat before its
    study may be taken over (the stress tests shorten it; a loaded machine may lengthen it)."""
    try:
        value = float(os.environ.get("HP_TUI_LEASE_SECONDS", default))
    except ValueError:
        return default
    return value if 1.0 <= value <= 86400.0 else default


STALE_AFTER = _lease_seconds()  # seconds without a heartbeat after which a lease may be taken over
CHUNK = 500  # ids per IN (...) query, under SQLite's variable limit

# epoch, train loss, val loss, val acc
Metric = tuple[int, float | None, float | None, float | None]


class LeaseBusy(StoreError):
    """Another live runner holds the study. `.holder`: pid, host, heartbeat, started."""

    def __init__(self, message: str, holder: dict[str, Any]) -> None:
        super().__init__(message)
        self.holder = holder


class LeaseLost(StoreError):
    """This runner's lease was taken over (it was judged dead): stop writing."""


class NoSuchStudy(StoreError):
    """A study reference matched nothing; the message lists what exists."""


class NoSuchTrial(StoreError):
    """A trial number outside the study."""


class BadName(StoreError):
    """A study name that is taken, empty, or a plain number (which would read as a study id)."""


class VaultUsed(StoreError):
    """The study's test vault was already opened. `.record`: what was recorded then."""

    def __init__(self, message: str, record: dict[str, Any]) -> None:
        super().__init__(message)
        self.record = record


@dataclass(frozen=True)
class StudyRow:
    id: int
    name: str | None
    preset_name: str | None
    preset_path: str | None
    preset_text: str | None
    strategy: str
    seed: int
    baseline: dict[str, Any]
    spec: dict[str, Any]
    device: str | None
    created: str
    status: str
    finished: str | None
    error: str | None
    executor: str = "local"
    ray_address: str | None = None  # None: the runner's default (engine.run.executors.ray_address)
    counts: dict[str, int] = field(default_factory=dict)  # trials by status, every status present
    # the CSV files it trains on, fingerprinted at creation (engine.datasets.identity); None: none
    data_files: list[dict[str, Any]] | None = None

    @property
    def base_dir(self) -> Path | None:
        """Where the study's relative data paths are anchored: its preset's folder."""
        return Path(self.preset_path).parent if self.preset_path else None


@dataclass(frozen=True)
class TrialRow:
    id: int
    study_id: int
    number: int  # 1..N within the study: what users see and type
    config: dict[str, Any]
    seed: int
    replicate: int
    status: str
    error: str | None
    torch_version: str | None
    device: str | None
    epochs_done: int
    train_loss: float | None  # the last epoch's
    val_loss: float | None
    val_acc: float | None
    diverged_epoch: int | None
    started: str | None
    finished: str | None


@dataclass(frozen=True)
class EpochRow:
    """One trial's epoch; status completed/diverged/failed also finishes the trial."""

    trial_id: int
    epoch: int
    train_loss: float | None
    val_loss: float | None
    val_acc: float | None
    status: str = "running"
    weights: bytes | None = None
    error: str | None = None


@dataclass(frozen=True)
class FinishRow:
    """A trial's end state, written with its final weights (`Store.finish_trials`)."""

    trial_id: int
    status: str
    weights: bytes | None
    diverged_epoch: int | None
    train_loss: float | None
    val_loss: float | None
    val_acc: float | None
    epochs_done: int
    error: str | None = None


@dataclass(frozen=True)
class MetricsDelta:
    """What `metrics_since` found. Pass `cursor` back next time; `full`: drop what you had first."""

    cursor: tuple[int, int]  # (the study's metrics generation, store-wide write sequence)
    full: bool
    rows: dict[int, list[Metric]]  # trial id -> new epochs, in write order


def encode_weights(layers: Sequence[tuple[np.ndarray, np.ndarray]]) -> bytes:
    """A trial's (weight, bias) pairs as bytes: an .npz of float32 arrays w0, b0, w1, b1, ..."""
    arrays: dict[str, np.ndarray] = {}
    for i, (w, b) in enumerate(layers):
        arrays[f"w{i}"] = np.asarray(w, dtype=np.float32)
        arrays[f"b{i}"] = np.asarray(b, dtype=np.float32)
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()


def decode_weights(blob: bytes) -> list[tuple[np.ndarray, np.ndarray]]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        count = len(npz.files) // 2
        return [(npz[f"w{i}"], npz[f"b{i}"]) for i in range(count)]


# ------------------------------------------------------------- conversions and messages

def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def finite(x: Any) -> float | None:
    """A float for SQLite; NaN and +-inf become NULL (SQLite would store NaN as NULL anyway)."""
    if x is None:
        return None
    value = float(x)  # also unwraps numpy scalars, which sqlite3 cannot bind
    return value if math.isfinite(value) else None


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2%}"


def check_choice(value: str, allowed: Sequence[str], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"{what} {value!r} is not one of {', '.join(allowed)}")


def chunks(ids: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start:start + CHUNK]


def study_row(r: Any, counts: dict[str, int]) -> StudyRow:
    return StudyRow(
        id=r["id"], name=r["name"], preset_name=r["preset_name"], preset_path=r["preset_path"],
        preset_text=r["preset_text"], strategy=r["strategy"], seed=r["seed"],
        baseline=json.loads(r["baseline_json"]), spec=json.loads(r["spec_json"]),
        device=r["device"], created=r["created"], status=r["status"], finished=r["finished"],
        error=r["error"], executor=r["executor"] or "local", ray_address=r["ray_address"],
        counts=counts or dict.fromkeys(TRIAL_STATUSES, 0),
        data_files=json.loads(r["data_files_json"]) if r["data_files_json"] else None)


def trial_row(r: Any) -> TrialRow:
    return TrialRow(
        id=r["id"], study_id=r["study_id"], number=r["number"], config=json.loads(r["config_json"]),
        seed=r["seed"], replicate=r["replicate"], status=r["status"], error=r["error"],
        torch_version=r["torch_version"], device=r["device"], epochs_done=r["epochs_done"],
        train_loss=r["train_loss"], val_loss=r["val_loss"], val_acc=r["val_acc"],
        diverged_epoch=r["diverged_epoch"], started=r["started"], finished=r["finished"])


@dataclass(frozen=True)
class RoundRow:
    """One round of an adaptive study: round 1 is its start (no trials added)."""

    study_id: int
    number: int
    seeds: int  # seeds of the configurations it extended, after it
    configs: list[int]  # the configurations it extended (indices in plan order, from 0)
    trials: int  # trials it added
    reason: str
    created: str

    def to_dict(self) -> dict[str, Any]:
        return {"round": self.number, "seeds": self.seeds, "configs": self.configs,
                "trials": self.trials, "reason": self.reason, "created": self.created}


def round_row(r: Any) -> RoundRow:
    return RoundRow(study_id=r["study_id"], number=r["number"], seeds=r["seeds"],
                    configs=json.loads(r["configs_json"]), trials=r["trials"], reason=r["reason"],
                    created=r["created"])


def vault_dict(r: Any) -> dict[str, Any]:
    return {"study_id": r["study_id"], "trial_id": r["trial_id"],
            "trial_number": r["trial_number"], "config": json.loads(r["config_json"]),
            "test_acc": r["test_acc"], "test_loss": r["test_loss"], "val_acc": r["val_acc"],
            "created": r["created"]}


def lease_alive(r: Any, stale_after: float) -> bool:
    """Alive unless its heartbeat is stale, or it ran on this host and its pid is gone."""
    if time.time() - r["heartbeat"] > stale_after:
        return False
    return not (r["host"] == socket.gethostname() and not pid_alive(r["pid"]))


def lease_dict(r: Any, *, alive: bool) -> dict[str, Any]:
    # The token stays private: it is the holder's proof of ownership.
    return {"pid": r["pid"], "host": r["host"], "heartbeat": r["heartbeat"],
            "started": r["started"], "alive": alive}


def busy_message(study_id: int, holder: dict[str, Any]) -> str:
    ago = max(0.0, time.time() - holder["heartbeat"])
    return (f"study {study_id} is being run by pid {holder['pid']} on {holder['host']} since "
            f"{holder['started']} (last heartbeat {ago:.0f} s ago); wait for it, or stop it first")


def no_such_study_message(ref: str | int, known: list[Any], path: Path) -> str:
    if not known:
        return f"no study {ref} in {path}: it has no studies yet (start one with `hp-tui run`)"
    listing = ", ".join(f"{r[0]}" + (f" ({r[1]})" if r[1] else "") for r in known[-10:])
    more = f" (last 10 of {len(known)})" if len(known) > 10 else ""
    msg = f"no study {ref} in {path}; studies{more}: {listing}"
    names = [r[1] for r in known if r[1]]
    close = difflib.get_close_matches(str(ref), names, n=1)
    return msg + (f". Did you mean {close[0]!r}?" if close else "")
