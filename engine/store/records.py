"""The store's records beside studies and trials: leases, the vault, predictions, runs."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from engine.spec import EFFECT_SIZES
from engine.store.base import StoreBase
from engine.store.rows import (
    STALE_AFTER,
    LeaseBusy,
    LeaseLost,
    NoSuchStudy,
    VaultUsed,
    busy_message,
    dumps,
    finite,
    lease_alive,
    lease_dict,
    now_iso,
    pct,
    vault_dict,
)
from engine.store.schema import StoreError


class StoreRecords(StoreBase):
    """Leases (which runner holds a study), the test vault's one evaluation per study, the
    user's predictions, and past runs (the ETA's calibration)."""

    # ------------------------------------------------------------------------------- leases

    def acquire_lease(self, study_id: int, *, pid: int, host: str,
                      stale_after: float = STALE_AFTER) -> str:
        """The study's lease for this runner; a stale holder is replaced in the same transaction."""
        token = uuid.uuid4().hex
        with self._write("taking the study's lease", fenced=False) as db:
            if db.execute("SELECT 1 FROM studies WHERE id = ?", (study_id,)).fetchone() is None:
                raise NoSuchStudy(f"no study {study_id} in {self.path}")
            row = db.execute("SELECT * FROM leases WHERE study_id = ?", (study_id,)).fetchone()
            if row is not None and lease_alive(row, stale_after):
                holder = lease_dict(row, alive=True)
                raise LeaseBusy(busy_message(study_id, holder), holder)
            db.execute("INSERT OR REPLACE INTO leases (study_id, pid, host, token, heartbeat,"
                       " started) VALUES (?,?,?,?,?,?)",
                       (study_id, pid, host, token, time.time(), now_iso()))
        return token

    def heartbeat(self, study_id: int, token: str) -> None:
        with self._write("renewing the study's lease", fenced=False) as db:
            cur = db.execute("UPDATE leases SET heartbeat = ? WHERE study_id = ? AND token = ?",
                             (time.time(), study_id, token))
            if cur.rowcount == 0:
                raise LeaseLost(f"the lease on study {study_id} in {self.path} was taken over by "
                                "another runner (this one was judged dead); stop")

    def release_lease(self, study_id: int, token: str) -> None:
        """Give the lease up; a lease already taken over stays with its new holder."""
        with self._write("releasing the study's lease", fenced=False) as db:
            db.execute("DELETE FROM leases WHERE study_id = ? AND token = ?", (study_id, token))

    def lease(self, study_id: int, stale_after: float = STALE_AFTER) -> dict[str, Any] | None:
        """The holder (pid, host, heartbeat, started) and whether it is `alive` as judged now."""
        with self._read("reading the study's lease") as db:
            row = db.execute("SELECT * FROM leases WHERE study_id = ?", (study_id,)).fetchone()
        return lease_dict(row, alive=lease_alive(row, stale_after)) if row else None

    # ------------------------------------------------------------ vault, predictions, speed

    def record_vault(self, study_id: int, *, trial_id: int, trial_number: int,
                     config: dict[str, Any], test_acc: float, test_loss: float,
                     val_acc: float | None) -> dict[str, Any]:
        """The study's one test evaluation. The check and the insert share one transaction, so of
        two concurrent attempts exactly one wins; the other gets VaultUsed with the record."""
        with self._write("recording the test vault") as db:
            old = db.execute("SELECT * FROM vault WHERE study_id = ?", (study_id,)).fetchone()
            if old is None:
                db.execute("INSERT INTO vault (study_id, trial_id, trial_number, config_json,"
                           " test_acc, test_loss, val_acc, created) VALUES (?,?,?,?,?,?,?,?)",
                           (study_id, trial_id, trial_number, dumps(config), finite(test_acc),
                            finite(test_loss), finite(val_acc), now_iso()))
        if old is not None:
            record = vault_dict(old)
            raise VaultUsed(f"the test vault of study {study_id} was already opened on "
                            f"{record['created']} (trial {record['trial_number']}, test accuracy "
                            f"{pct(record['test_acc'])}); it opens once per study", record)
        vault = self.vault(study_id)
        assert vault is not None
        return vault

    def vault(self, study_id: int) -> dict[str, Any] | None:
        with self._read("reading the test vault") as db:
            row = db.execute("SELECT * FROM vault WHERE study_id = ?", (study_id,)).fetchone()
        return vault_dict(row) if row else None

    def vaults(self) -> list[dict[str, Any]]:
        """Every test evaluation in the store, oldest first (to find earlier looks at a split)."""
        with self._read("reading the test vaults") as db:
            rows = db.execute("SELECT * FROM vault ORDER BY created, study_id").fetchall()
        return [vault_dict(r) for r in rows]

    def set_predictions(self, study_id: int, predictions: dict[str, tuple[Any, str]]) -> None:
        """Replace the study's predictions: param -> (expected best value, effect size)."""
        for param, (_, size) in predictions.items():
            if size not in EFFECT_SIZES:
                raise StoreError(f"prediction for {param}: effect size {size!r} is not one of "
                                 f"{', '.join(EFFECT_SIZES)}")
        with self._write("saving predictions") as db:
            db.execute("DELETE FROM predictions WHERE study_id = ?", (study_id,))
            db.executemany("INSERT INTO predictions (study_id, param, best_value_json, effect_size,"
                           " created) VALUES (?,?,?,?,?)",
                           [(study_id, p, dumps(v), s, now_iso())
                            for p, (v, s) in predictions.items()])

    def predictions(self, study_id: int) -> dict[str, tuple[Any, str]]:
        with self._read("reading predictions") as db:
            rows = db.execute("SELECT param, best_value_json, effect_size FROM predictions"
                              " WHERE study_id = ? ORDER BY param", (study_id,)).fetchall()
        return {r[0]: (json.loads(r[1]), r[2]) for r in rows}

    def record_run(self, study_id: int, *, trials: int, trial_steps: int, seconds: float,
                   device: str, model_seconds: float | None = None) -> None:
        """Log a finished run; `model_seconds` is what engine.study.eta predicted for it, so later
        estimates can be rescaled to what this machine really does."""
        with self._write("recording throughput") as db:
            db.execute("INSERT INTO runs (study_id, trials, trial_steps, seconds, model_seconds,"
                       " device, created) VALUES (?,?,?,?,?,?,?)",
                       (study_id, trials, trial_steps, seconds, model_seconds, device, now_iso()))

    def runs(self, device: str | None = None, limit: int = 5) -> list[dict[str, Any]]:
        """The most recent runs (newest first), on one device or any."""
        where, args = ("WHERE device = ?", (device,)) if device else ("", ())
        with self._read("reading past runs") as db:
            rows = db.execute(f"SELECT study_id, trials, trial_steps, seconds, model_seconds,"
                              f" device, created FROM runs {where} ORDER BY id DESC LIMIT ?",
                              (*args, limit)).fetchall()
        keys = ("study_id", "trials", "trial_steps", "seconds", "model_seconds", "device",
                "created")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def throughput(self, device: str, recent: int = 5) -> float | None:
        """Trial-steps per second over the last `recent` runs on this device (None: no history)."""
        with self._read("reading throughput") as db:
            row = db.execute("SELECT sum(trial_steps), sum(seconds) FROM (SELECT trial_steps,"
                             " seconds FROM runs WHERE device = ? AND seconds > 0 ORDER BY id DESC"
                             " LIMIT ?)", (device, recent)).fetchone()
        steps, seconds = row[0], row[1]
        return float(steps) / float(seconds) if steps and seconds else None
