"""The store's connection: opening a file, short read transactions, fenced write
transactions (every write of a runner checks, inside its transaction, that it still holds
the study's lease)."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from engine.store import schema as store_schema
from engine.store.rows import (
    LeaseLost,
)
from engine.store.schema import StoreError, translated


def default_store_path(override: str | Path | None = None) -> Path:
    """--store PATH (passed by the caller), else $HP_TUI_STORE, else ./.hp-tui/store.db."""
    chosen = override or os.environ.get("HP_TUI_STORE") or Path.cwd() / ".hp-tui" / "store.db"
    return Path(chosen).expanduser()


S = TypeVar("S", bound="StoreBase")


class StoreBase:
    """A connection to one store file; safe to share between threads (calls are serialised)."""

    def __init__(self, path: Path | str, *, create: bool = True, readonly: bool = False) -> None:
        self.path = Path(path).expanduser().absolute()
        self.readonly = readonly
        self._lock = threading.RLock()
        self._fence: tuple[int, str] | None = None  # (study, lease token) every write must hold
        self._db = store_schema.open_db(self.path, create=create, readonly=readonly)
        self.nfs_warning: str | None = store_schema.network_fs_warning(self.path)

    def close(self) -> None:
        with self._lock:
            store_schema.close_db(self._db)

    def __enter__(self: S) -> S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------- transactions

    @contextmanager
    def _read(self, action: str) -> Iterator[sqlite3.Connection]:
        """One short read transaction: a consistent snapshot; callers fetch all rows inside."""
        with self._lock, translated(self.path, action):
            self._db.execute("BEGIN")
            try:
                yield self._db
            finally:
                if self._db.in_transaction:
                    self._db.execute("COMMIT")

    def hold(self, study_id: int, token: str) -> None:
        """Fence this connection with the study's lease: from now on every write transaction first
        checks, inside the transaction, that `token` still holds the lease, and raises LeaseLost
        (writing nothing) once a takeover has changed it. A runner paused past its lease (SIGSTOP,
        a frozen VM) that wakes after another runner took the study over thus writes nothing."""
        self._fence = (study_id, token)

    @contextmanager
    def _write(self, action: str, *, fenced: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction, all or nothing. IMMEDIATE takes the write lock at BEGIN (waiting
        up to busy_timeout), so it never has to upgrade a read lock and fail with SQLITE_BUSY."""
        if self.readonly:
            raise StoreError(f"the store {self.path} was opened read-only (for viewing); "
                             f"{action} needs a writable store")
        with self._lock, translated(self.path, action):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if fenced and self._fence is not None:
                    self._check_fence(self._db, *self._fence)
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # SQLite may already have rolled back (disk full)
                    self._db.execute("ROLLBACK")
                raise


    def _check_fence(self, db: sqlite3.Connection, study_id: int, token: str) -> None:
        row = db.execute("SELECT token FROM leases WHERE study_id = ?", (study_id,)).fetchone()
        if row is None or row[0] != token:
            raise LeaseLost(f"this runner no longer holds study {study_id} in {self.path}: its "
                            "lease was taken over (it was judged dead, e.g. paused past its "
                            "heartbeat); stopping without writing")
