"""The store: one SQLite file that is the single source of truth for studies.

The runner is the only heavy writer; viewers (the terminal UI, `hp-tui show`) open it with
`readonly=True` and poll it. SQLite runs in WAL mode, so readers and the writer never block each
other; every write is one `BEGIN IMMEDIATE` transaction (it takes the write lock up front, so it
never fails half-way with "database is locked"); every read is one short read transaction with all
rows fetched before it ends. Opening, schema and migrations: `engine.store.schema`; row types,
errors and the weights codec: `engine.store.rows`; transactions: `engine.store.base`; leases,
vault, predictions and runs: `engine.store.records`.

Conventions: timestamps are ISO 8601 UTC strings (lease heartbeats: unix seconds); epochs are
numbered from 0 (epoch e done -> epochs_done = e + 1); non-finite numbers (NaN, +-inf: a diverged
loss) are stored as NULL and read back as None. Standard library and numpy only: no torch here.
"""

from __future__ import annotations

import io
import json
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from engine.spec import KEPT_ON_RESUME, STUDY_STATUSES, TRIAL_STATUSES, StudyStatus
from engine.store.records import StoreRecords
from engine.store.rows import (
    BadName,
    EpochRow,
    FinishRow,
    Metric,
    MetricsDelta,
    NoSuchStudy,
    NoSuchTrial,
    RoundRow,
    StudyRow,
    TrialRow,
    check_choice,
    chunks,
    decode_weights,
    dumps,
    finite,
    no_such_study_message,
    now_iso,
    round_row,
    study_row,
    trial_row,
)
from engine.store.schema import StoreError

SQLITE_MAX_INT = 2**63 - 1


def _in_range(number: int) -> int:
    """`number` as an SQLite integer; one beyond them (which no row has) as 0, which no study
    or trial has either (both are numbered from 1)."""
    return number if abs(number) <= SQLITE_MAX_INT else 0


class Store(StoreRecords):
    """A connection to one store file; safe to share between threads (calls are serialised)."""

    # ------------------------------------------------------------------------------ studies

    def create_study(self, *, name: str | None, preset_name: str | None, preset_path: str | None,
                     preset_text: str | None, strategy: str, seed: int, baseline: dict[str, Any],
                     spec: dict[str, Any], device: str | None,
                     trials: Sequence[tuple[dict[str, Any], int, int]],
                     executor: str = "local", ray_address: str | None = None,
                     data_files: list[dict[str, Any]] | None = None) -> int:
        """A new study and its trials (config, seed, replicate), numbered 1..N; returns its id.
        `data_files`: fingerprints of the CSV files it reads (engine.datasets.identity)."""
        if name is not None and (not name.strip() or name.strip().isdigit()):
            raise BadName(f"study name {name!r} is not allowed: use letters too (plain numbers "
                             "are study ids)")
        with self._write("creating a study") as db:
            if name is not None:
                clash = db.execute("SELECT id FROM studies WHERE name = ?", (name,)).fetchone()
                if clash:
                    raise BadName(f"a study named {name!r} already exists (study {clash[0]}) in "
                                     f"{self.path}; choose another --name")
            study_id = db.execute(
                "INSERT INTO studies (name, preset_name, preset_path, preset_text, strategy, seed,"
                " baseline_json, spec_json, device, created, executor, ray_address,"
                " data_files_json) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (name, preset_name, preset_path, preset_text, strategy, seed, dumps(baseline),
                 dumps(spec), device, now_iso(), executor, ray_address,
                 dumps(data_files) if data_files else None)).lastrowid
            assert study_id is not None  # an INSERT always sets it
            db.executemany(
                "INSERT INTO trials (study_id, number, config_json, seed, replicate)"
                " VALUES (?,?,?,?,?)",
                [(study_id, n, dumps(cfg), s, rep) for n, (cfg, s, rep) in enumerate(trials, 1)])
        return int(study_id)

    def study(self, ref: str | int) -> StudyRow:
        """A study by number (3 or "3": ASCII digits) or by name. A number beyond SQLite's
        integers, or digits other than 0-9 ("²", never a name), find no study."""
        text = str(ref).strip()
        by_id = isinstance(ref, int) or (text.isascii() and text.isdigit())
        where, arg = (("id = ?", _in_range(int(text))) if by_id else ("name = ?", str(ref)))
        with self._read("reading a study") as db:
            row = db.execute(f"SELECT * FROM studies WHERE {where}", (arg,)).fetchone()
            counts = self._counts(db, row["id"]) if row else {}
            known = [] if row else db.execute("SELECT id, name FROM studies ORDER BY id").fetchall()
        if row is None:
            raise NoSuchStudy(no_such_study_message(ref, known, self.path))
        return study_row(row, counts.get(row["id"], {}))

    def studies(self) -> list[StudyRow]:
        with self._read("listing studies") as db:
            rows = db.execute("SELECT * FROM studies ORDER BY id").fetchall()
            counts = self._counts(db, None)
        return [study_row(r, counts.get(r["id"], {})) for r in rows]

    def set_study_status(self, study_id: int, status: str, error: str | None = None) -> None:
        check_choice(status, STUDY_STATUSES, "study status")
        ended = now_iso() if StudyStatus(status).is_finished() else None
        with self._write("updating a study") as db:
            cur = db.execute("UPDATE studies SET status = ?, error = ?, finished = ? WHERE id = ?",
                             (status, error, ended, study_id))
            if cur.rowcount == 0:
                raise NoSuchStudy(f"no study {study_id} in {self.path}")

    @staticmethod
    def _counts(db: sqlite3.Connection, study_id: int | None) -> dict[int, dict[str, int]]:
        sql = "SELECT study_id, status, count(*) FROM trials"
        rows = db.execute(sql + (" WHERE study_id = ?" if study_id is not None else "")
                          + " GROUP BY study_id, status",
                          () if study_id is None else (study_id,)).fetchall()
        out: dict[int, dict[str, int]] = {}
        for sid, status, n in rows:
            out.setdefault(sid, dict.fromkeys(TRIAL_STATUSES, 0))[status] = n
        return out

    # --------------------------------------------------------------------- trials and metrics

    def trials(self, study_id: int, statuses: Iterable[str] | None = None) -> list[TrialRow]:
        sql = "SELECT * FROM trials WHERE study_id = ?"
        args: list[Any] = [study_id]
        if statuses is not None:
            wanted = list(statuses)
            sql += f" AND status IN ({','.join('?' * len(wanted))})"
            args += wanted
        with self._read("reading trials") as db:
            rows = db.execute(sql + " ORDER BY number", args).fetchall()
        return [trial_row(r) for r in rows]

    def trial(self, study_id: int, number: int) -> TrialRow:
        with self._read("reading a trial") as db:
            row = db.execute("SELECT * FROM trials WHERE study_id = ? AND number = ?",
                             (study_id, _in_range(number))).fetchone()
            total = None if row else db.execute(
                "SELECT count(*) FROM trials WHERE study_id = ?", (study_id,)).fetchone()[0]
        if row is None:
            raise NoSuchTrial(f"study {study_id} has no trial {number}; its trials are numbered "
                              f"1 to {total}" if total else f"study {study_id} has no trials")
        return trial_row(row)

    def start_trials(self, trial_ids: Iterable[int], *, device: str, torch_version: str) -> None:
        """Mark trials running from scratch: a rerun forgets the metrics and weights of before."""
        ids = list(trial_ids)
        with self._write("starting trials") as db:
            self._forget_progress(db, ids)
            db.executemany("UPDATE trials SET status = 'running', started = ?, device = ?,"
                           " torch_version = ? WHERE id = ?",
                           [(now_iso(), device, torch_version, i) for i in ids])

    def record_epoch(self, rows: Sequence[EpochRow]) -> None:
        """One epoch of a population, in one transaction."""
        for r in rows:
            check_choice(r.status, ("running", "completed", "diverged", "failed", "pruned"),
                         "epoch status")
        values = [(finite(r.train_loss), finite(r.val_loss), finite(r.val_acc)) for r in rows]
        now = now_iso()
        with self._write("recording an epoch") as db:
            first = self._next_seq(db, len(rows))
            added = db.executemany(
                "INSERT OR REPLACE INTO metrics (seq, study_id, trial_id, epoch, train_loss,"
                " val_loss, val_acc) SELECT ?, study_id, id, ?, ?, ?, ? FROM trials WHERE id = ?",
                [(first + i, r.epoch, *v, r.trial_id)
                 for i, (r, v) in enumerate(zip(rows, values, strict=True))]).rowcount
            if added != len(rows):  # rolls the whole epoch back
                known = {r[0] for r in db.execute("SELECT id FROM trials").fetchall()}
                missing = sorted({r.trial_id for r in rows} - known)
                raise StoreError(f"cannot record epochs of unknown trials {missing} in {self.path}")
            db.executemany(
                "UPDATE trials SET epochs_done = max(epochs_done, ?), train_loss = ?, val_loss = ?,"
                " val_acc = ?, status = ?, error = coalesce(?, error), finished = ?,"
                " diverged_epoch = ? WHERE id = ?",
                [(r.epoch + 1, *v, r.status, r.error, now if r.status != "running" else None,
                  r.epoch if r.status == "diverged" else None, r.trial_id)
                 for r, v in zip(rows, values, strict=True)])
            self._put_weights(db, [(r.trial_id, r.weights) for r in rows if r.weights])

    def finish_trials(self, rows: Sequence[FinishRow]) -> None:
        """Trials' end states and final weights, in one transaction."""
        for r in rows:
            check_choice(r.status, TRIAL_STATUSES, "trial status")
        now = now_iso()
        with self._write("finishing trials") as db:
            db.executemany(
                "UPDATE trials SET status = ?, diverged_epoch = ?, train_loss = ?, val_loss = ?,"
                " val_acc = ?, epochs_done = max(epochs_done, ?), error = coalesce(?, error),"
                " finished = ?"
                " WHERE id = ?",
                [(r.status, r.diverged_epoch, finite(r.train_loss), finite(r.val_loss),
                  finite(r.val_acc), r.epochs_done, r.error, now, r.trial_id) for r in rows])
            self._put_weights(db, [(r.trial_id, r.weights) for r in rows])

    def mark_trials(self, trial_ids: Iterable[int], status: str, error: str | None = None) -> None:
        """Set trials' status (failed, interrupted, ...); an end state stamps `finished`."""
        check_choice(status, TRIAL_STATUSES, "trial status")
        ended = None if status in ("pending", "running") else now_iso()
        with self._write("updating trials") as db:
            db.executemany("UPDATE trials SET status = ?, error = ?, finished = ? WHERE id = ?",
                           [(status, error, ended, i) for i in trial_ids])

    def reset_unfinished(self, study_id: int) -> list[TrialRow]:
        """Every trial not kept on resume (completed, diverged, pruned) back to pending with no
        progress (one transaction): what a resume must train, including "running" zombies
        left by a dead runner."""
        with self._write("resetting unfinished trials") as db:
            ids = [r[0] for r in db.execute(
                "SELECT id FROM trials WHERE study_id = ? AND status NOT IN"
                f" ({', '.join(repr(str(s)) for s in sorted(KEPT_ON_RESUME))})",
                (study_id,)).fetchall()]
            self._forget_progress(db, ids)
            db.executemany("UPDATE trials SET status = 'pending', started = NULL WHERE id = ?",
                           [(i,) for i in ids])
            rows = db.execute("SELECT * FROM trials WHERE study_id = ? AND status = 'pending'"
                              " ORDER BY number", (study_id,)).fetchall()
        return [trial_row(r) for r in rows]

    # ------------------------------------------------------------------------------- rounds

    def add_round(self, study_id: int, *, number: int, seeds: int, configs: Sequence[int],
                  reason: str, trials: Sequence[tuple[dict[str, Any], int, int]] = ()
                  ) -> list[TrialRow]:
        """Record a round of an adaptive study and append its trials (config, seed, replicate),
        numbered after the study's last trial, in one (fenced) transaction; returns them.
        A round recorded twice raises StoreError and writes nothing."""
        with self._write("recording a round") as db:
            if db.execute("SELECT 1 FROM studies WHERE id = ?", (study_id,)).fetchone() is None:
                raise NoSuchStudy(f"no study {study_id} in {self.path}")
            if db.execute("SELECT 1 FROM rounds WHERE study_id = ? AND number = ?",
                          (study_id, number)).fetchone():
                raise StoreError(f"study {study_id} already has a round {number} in {self.path}")
            last = db.execute("SELECT coalesce(max(number), 0) FROM trials WHERE study_id = ?",
                              (study_id,)).fetchone()[0]
            db.execute("INSERT INTO rounds (study_id, number, seeds, configs_json, trials, reason,"
                       " created) VALUES (?,?,?,?,?,?,?)",
                       (study_id, number, seeds, dumps(list(configs)), len(trials), reason,
                        now_iso()))
            db.executemany(
                "INSERT INTO trials (study_id, number, config_json, seed, replicate)"
                " VALUES (?,?,?,?,?)",
                [(study_id, last + n, dumps(cfg), s, rep)
                 for n, (cfg, s, rep) in enumerate(trials, 1)])
            rows = db.execute("SELECT * FROM trials WHERE study_id = ? AND number > ?"
                              " ORDER BY number", (study_id, last)).fetchall()
        return [trial_row(r) for r in rows]

    def rounds(self, study_id: int) -> list[RoundRow]:
        """The study's rounds in order ([] for a fixed study)."""
        with self._read("reading rounds") as db:
            rows = db.execute("SELECT * FROM rounds WHERE study_id = ? ORDER BY number",
                              (study_id,)).fetchall()
        return [round_row(r) for r in rows]

    def metrics(self, trial_ids: Iterable[int]) -> dict[int, list[Metric]]:
        """Each trial's epochs in order (a trial without any maps to [])."""
        ids = list(trial_ids)
        out: dict[int, list[Metric]] = {i: [] for i in ids}
        with self._read("reading metrics") as db:
            for chunk in chunks(ids):
                marks = ",".join("?" * len(chunk))
                # Through the study index: metrics are laid out by write order, not by trial.
                for r in db.execute(
                        "SELECT trial_id, epoch, train_loss, val_loss, val_acc FROM metrics WHERE"
                        f" study_id IN (SELECT study_id FROM trials WHERE id IN ({marks}))"
                        f" AND trial_id IN ({marks}) ORDER BY trial_id, epoch",
                        chunk + chunk).fetchall():
                    out[r[0]].append((r[1], r[2], r[3], r[4]))
        return out

    def metrics_since(self, study_id: int, after: tuple[int, int] | None = None) -> MetricsDelta:
        """Epochs written since `after` (a previous delta's cursor; None: everything).

        Each metrics row carries a store-wide write sequence number with an index, so a poll reads
        only what is new. Deleting metrics (a rerun) bumps the study's generation; a cursor from an
        older generation gets everything again with `full=True`.
        """
        with self._read("polling metrics") as db:
            gen = db.execute("SELECT metrics_gen FROM studies WHERE id = ?", (study_id,)).fetchone()
            seq = db.execute("SELECT value FROM counters WHERE name = 'metrics_seq'").fetchone()[0]
            full = after is None or gen is None or after[0] != gen[0]
            since = 0 if full or after is None else after[1]
            rows = db.execute(
                "SELECT trial_id, epoch, train_loss, val_loss, val_acc FROM metrics"
                " WHERE study_id = ? AND seq > ? ORDER BY seq", (study_id, since)).fetchall()
        out: dict[int, list[Metric]] = {}
        for r in rows:
            out.setdefault(r[0], []).append((r[1], r[2], r[3], r[4]))
        return MetricsDelta(cursor=(gen[0] if gen else 0, seq), full=full, rows=out)

    def weights(self, trial_id: int) -> list[tuple[np.ndarray, np.ndarray]] | None:
        with self._read("reading weights") as db:
            row = db.execute("SELECT blob FROM weights WHERE trial_id = ?", (trial_id,)).fetchone()
        return decode_weights(row[0]) if row else None

    def save_points(self, study_id: int, data: dict[str, Any], x: np.ndarray,
                    y: np.ndarray) -> None:
        """Keep a dataset's validation points (x [n, features], y [n]) with the study."""
        buf = io.BytesIO()
        np.savez(buf, x=np.asarray(x, dtype=np.float32), y=np.asarray(y, dtype=np.float32))
        with self._write("saving validation points") as db:
            db.execute("INSERT OR REPLACE INTO points (study_id, data_json, blob) VALUES (?,?,?)",
                       (study_id, json.dumps(data, sort_keys=True), buf.getvalue()))

    def points(self, study_id: int, data: dict[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
        """The validation points saved for this study and data section, if the runner saved them."""
        with self._read("reading validation points") as db:
            row = db.execute("SELECT blob FROM points WHERE study_id = ? AND data_json = ?",
                             (study_id, json.dumps(data, sort_keys=True))).fetchone()
        if row is None:
            return None
        with np.load(io.BytesIO(row[0]), allow_pickle=False) as npz:
            return npz["x"], npz["y"]

    def _forget_progress(self, db: sqlite3.Connection, ids: list[int]) -> None:
        for chunk in chunks(ids):
            marks = ",".join("?" * len(chunk))
            # Only trials with epochs_done > 0 can have metrics (every insert raises it), which
            # spares the common case, fresh trials, a scan of the study's metrics.
            done = [r[0] for r in db.execute(
                f"SELECT id FROM trials WHERE id IN ({marks}) AND epochs_done > 0", chunk)]
            db.execute(f"DELETE FROM weights WHERE trial_id IN ({marks})", chunk)
            db.execute(
                "UPDATE trials SET epochs_done = 0, train_loss = NULL, val_loss = NULL,"
                " val_acc = NULL, diverged_epoch = NULL, error = NULL, finished = NULL"
                f" WHERE id IN ({marks})", chunk)
            if done:
                marks = ",".join("?" * len(done))
                studies = f"SELECT DISTINCT study_id FROM trials WHERE id IN ({marks})"
                db.execute(f"DELETE FROM metrics WHERE study_id IN ({studies})"
                           f" AND trial_id IN ({marks})", done + done)
                # pollers holding these epochs must start over
                db.execute(f"UPDATE studies SET metrics_gen = metrics_gen + 1 WHERE id IN"
                           f" ({studies})", done)

    @staticmethod
    def _next_seq(db: sqlite3.Connection, count: int) -> int:
        """Reserve `count` write sequence numbers; returns the first."""
        last = db.execute("SELECT value FROM counters WHERE name = 'metrics_seq'").fetchone()[0]
        db.execute("UPDATE counters SET value = ? WHERE name = 'metrics_seq'", (last + count,))
        return int(last) + 1

    @staticmethod
    def _put_weights(db: sqlite3.Connection, pairs: list[tuple[int, bytes | None]]) -> None:
        db.executemany("INSERT OR REPLACE INTO weights (trial_id, blob) VALUES (?, ?)",
                       [(i, w) for i, w in pairs if w is not None])
