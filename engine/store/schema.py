"""The store's SQLite layer: opening a user's file safely, the schema, and its migrations.

Kept apart from `engine.store.store` (the queries) so that the rules for touching a file live in one
place: nothing is written until the file is known to be an hp-tui store of a version this code
understands, and every SQLite error reaches the user as a `StoreError` that names the file and
says what to do.
Standard library only: the terminal UI imports this and must stay free of torch.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from engine.store.migrations import MIGRATIONS

APPLICATION_ID = 0x48505455  # "HPTU" in the SQLite header: tells our stores from other databases
BUSY_TIMEOUT_S = 10.0
NETWORK_FS = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "sshfs", "9p", "afs", "ncpfs",
    "fuse.glusterfs", "glusterfs", "ceph", "fuse.ceph", "lustre", "fuse.s3fs", "fuse.rclone",
})


class StoreError(Exception):
    """A problem with the store, worded for the user: what happened, to which file, what to do."""


SCHEMA_VERSION = len(MIGRATIONS)


# ---------------------------------------------------------------------------------------- errors

def translate(exc: sqlite3.Error, path: Path, action: str) -> StoreError:
    """An SQLite error as a user-facing StoreError (the cause stays chained for logs)."""
    msg = str(exc)
    low = msg.lower()
    if "not a database" in low or "malformed" in low:
        return corrupt_error(path, msg)
    if "disk is full" in low:
        return StoreError(f"the disk holding {path} is full ({action}). Free some space and resume "
                          "the study: every epoch committed so far is kept.")
    if "locked" in low or "busy" in low:
        return StoreError(f"{path} stayed locked by another process for over "
                          f"{BUSY_TIMEOUT_S:.0f} s ({action}). Try again; if it persists, look "
                          "for a stuck hp-tui process.")
    if "readonly" in low or "read-only" in low:
        return readonly_error(path, msg)
    if "unable to open" in low:
        return StoreError(f"cannot open the store {path} ({msg}). Check that its directory exists "
                          "and is writable, or choose another file with --store or HP_TUI_STORE.")
    if "closed database" in low:
        return StoreError(f"the store {path} was already closed ({action})")
    return StoreError(f"store {path}: {msg} ({action})")


def corrupt_error(path: Path, detail: str) -> StoreError:
    return StoreError(f"{path} is not a readable hp-tui store: it is corrupt or not a SQLite "
                      f"database ({detail}). It was left untouched: move it aside (or restore a "
                      "backup) and run again, or choose another file with --store or "
                      f"HP_TUI_STORE. A damaged store's studies may be recovered with `sqlite3 "
                      f"{path} \".recover\" | sqlite3 recovered.db`.")


def damaged_error(path: Path, problem: str) -> StoreError:
    return StoreError(f"the store {path} is damaged ({problem}); nothing was written to it. "
                      f"Recover what it holds with `sqlite3 {path} \".recover\" | sqlite3 "
                      "recovered.db`, then use recovered.db (--store or HP_TUI_STORE), or move "
                      "the damaged file aside.")


def foreign_error(path: Path) -> StoreError:
    return StoreError(f"{path} is a SQLite database but not an hp-tui store; it was left "
                      "untouched. Choose another file with --store or HP_TUI_STORE.")


def newer_error(path: Path, version: int) -> StoreError:
    return StoreError(f"{path} was written by a newer hp-tui (store schema v{version}; this "
                      f"version knows up to v{SCHEMA_VERSION}). It was left untouched: upgrade "
                      "hp-tui, or use another store with --store or HP_TUI_STORE.")


def readonly_error(path: Path, detail: str) -> StoreError:
    return StoreError(f"the store {path} is in a read-only place ({detail}). It was not modified. "
                      "Use a writable location with --store PATH or HP_TUI_STORE; `hp-tui show` "
                      "and `hp-tui studies` can still read it.")


@contextmanager
def translated(path: Path, action: str) -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise translate(exc, path, action) from exc


# ----------------------------------------------------------------------------------- opening

class Connection(sqlite3.Connection):
    """A connection that remembers which file (device, inode) it was opened on."""

    identity: tuple[int, int] | None = None


class _OpenFiles:
    """The store files this process has SQLite connections to, by (device, inode).

    POSIX locks belong to the process: closing *any* descriptor of a database file drops every
    lock SQLite holds on it through other connections, and SQLite, which counts its locks per
    file, never takes them again (SQLite's "How To Corrupt An SQLite Database File", 2.2). So
    the raw header read of `check_header` happens only while this process has no connection to
    the file."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[int, int], int] = {}

    @contextmanager
    def opening(self, path: Path) -> Iterator[bool]:
        """Held across a whole open, so that no other thread's header read falls inside it;
        yields whether this process has no connection to the file yet."""
        with self._lock:
            yield self._counts.get(_identity(path) or (-1, -1), 0) == 0

    def opened(self, db: Connection, path: Path) -> None:
        """Count a new connection (called inside `opening`)."""
        db.identity = _identity(path)
        if db.identity is not None:
            self._counts[db.identity] = self._counts.get(db.identity, 0) + 1

    def closed(self, db: Connection) -> None:
        with self._lock:
            if db.identity is not None and db.identity in self._counts:
                self._counts[db.identity] -= 1
                if not self._counts[db.identity]:
                    del self._counts[db.identity]
            db.identity = None


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


OPEN_FILES = _OpenFiles()


def open_db(path: Path, *, create: bool, readonly: bool) -> Connection:
    """A checked, configured, up-to-date connection, or a StoreError with the file as it was.
    Close it with `close_db`, which keeps the process's count of connections per file."""
    check_location(path, create=create, readonly=readonly)
    with OPEN_FILES.opening(path) as first:
        if first:
            check_header(path)
        with translated(path, "opening the store"):
            try:
                # A writer checks the file's structure first, once per process: what it would add
                # to a damaged file could be lost with it.
                db = _open(path, readonly=readonly, check=first and not readonly)
            except sqlite3.OperationalError as exc:
                # A viewer in a read-only directory cannot create the -shm file that WAL readers
                # need; nobody can write there either, so the file may be read as immutable.
                cannot = "unable to open" in str(exc) and not os.access(path.parent, os.W_OK)
                if not (readonly and cannot):
                    raise
                db = _open(path, readonly=True, immutable=True)
        OPEN_FILES.opened(db, path)
    return db


def close_db(db: Connection) -> None:
    OPEN_FILES.closed(db)
    db.close()


def _open(path: Path, *, readonly: bool, immutable: bool = False,
          check: bool = False) -> Connection:
    db = _connect(path, readonly=readonly, immutable=immutable)
    try:
        version = check_identity(db, path, readonly=readonly)
        if check:
            quick_check(db, path)
        if not readonly:
            configure_writer(db, path)
            if version < SCHEMA_VERSION:
                migrate(db, path)
    except BaseException:
        db.close()
        raise
    return db


def check_location(path: Path, *, create: bool, readonly: bool) -> None:
    """Refuse a directory, a missing file we may not create, and a place we cannot write."""
    if path.is_dir():
        raise StoreError(f"the store path {path} is a directory; give a file path instead, "
                         f"e.g. --store {path / 'store.db'}")
    if not path.exists():
        if readonly or not create:
            raise StoreError(f"there is no store at {path}: nothing has been run with it yet. "
                             "Start a study with `hp-tui run PRESET`, or point --store or "
                             "HP_TUI_STORE at an existing store.")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise readonly_error(path, f"cannot create {path.parent}: {exc.strerror}") from exc
    if readonly:
        return
    # SQLite's WAL needs to create -wal and -shm files beside the store, so the directory must be
    # writable too. Checked before SQLite touches anything, so nothing is half-written.
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise readonly_error(path, f"directory {path.parent} is not writable")
    if path.exists() and not os.access(path, os.W_OK):
        raise readonly_error(path, "the file is not writable")


def check_header(path: Path) -> None:
    """Refuse garbage, foreign and newer files from their first 100 bytes, before SQLite opens them
    (SQLite would create -wal/-shm files beside them). Only refuses: the header can lag behind
    the WAL, so the full check is `check_identity`, under SQLite."""
    head = _read_header(path)
    if head and not _is_sqlite(head):
        time.sleep(0.2)  # maybe another process is creating this store right now: look again
        head = _read_header(path)
    if not head:
        return  # missing or empty: a new store
    if not _is_sqlite(head):
        raise corrupt_error(path, "no SQLite header")
    version = int.from_bytes(head[60:64], "big")
    app_id = int.from_bytes(head[68:72], "big")
    if app_id not in (0, APPLICATION_ID):
        raise foreign_error(path)
    if version > SCHEMA_VERSION:
        raise newer_error(path, version)


def _read_header(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(100)
    except FileNotFoundError:
        return b""
    except OSError as exc:
        raise StoreError(f"cannot read the store {path}: {exc.strerror}") from exc


def _is_sqlite(head: bytes) -> bool:
    return len(head) == 100 and head.startswith(b"SQLite format 3\x00")


def _connect(path: Path, *, readonly: bool, immutable: bool = False) -> Connection:
    # mode=ro never creates or writes; mode=rw opens an existing file only; rwc may create it.
    mode = "ro" if readonly else ("rw" if path.exists() else "rwc")
    extra = "&immutable=1" if immutable else ""
    db = sqlite3.connect(f"{path.absolute().as_uri()}?mode={mode}{extra}", uri=True,
                         timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False,
                         factory=Connection)
    db.row_factory = sqlite3.Row
    db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    return db


def check_identity(db: sqlite3.Connection, path: Path, *, readonly: bool) -> int:
    """The file's schema version, after checking it is ours (or empty) and not from the future."""
    db.execute("BEGIN")  # one consistent snapshot of the header and the schema; reads only
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        app_id = db.execute("PRAGMA application_id").fetchone()[0]
        objects = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    finally:
        db.execute("COMMIT")
    empty = version == 0 and app_id == 0 and objects == 0
    if not empty and app_id != APPLICATION_ID:
        raise foreign_error(path)
    if version > SCHEMA_VERSION:
        raise newer_error(path, version)
    if readonly and version < SCHEMA_VERSION:
        what = "is empty" if empty else f"uses the older schema v{version}"
        raise StoreError(f"the store {path} {what}; a viewer does not change it. Run a study or "
                         "`hp-tui studies` on it first to initialise or upgrade it.")
    return int(version)


def quick_check(db: sqlite3.Connection, path: Path) -> None:
    """Refuse a damaged store (SQLite's quick_check: every page and record well formed; 0.3 s
    for 140 MB) before anything is written to it."""
    try:
        found = "\n".join(str(r[0]) for r in db.execute("PRAGMA quick_check(5)").fetchall())
    except sqlite3.DatabaseError as exc:  # damage the check itself trips over
        raise damaged_error(path, str(exc)) from exc
    if found != "ok":
        lines = [line for line in found.splitlines() if line and not line.startswith("***")]
        raise damaged_error(path, lines[0] if lines else found)


def configure_writer(db: sqlite3.Connection, path: Path) -> None:
    # WAL: readers never block the writer nor the writer readers. synchronous=NORMAL: a commit
    # survives any process crash (only power loss can drop the last commits). Both need no fsync
    # per commit, which keeps per-epoch writes cheap.
    mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise StoreError(f"cannot put the store {path} in WAL mode (got {mode!r}); use a store on "
                         "a local disk with --store or HP_TUI_STORE.")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("PRAGMA foreign_keys = ON")


def migrate(db: sqlite3.Connection, path: Path) -> None:
    """Bring the schema to SCHEMA_VERSION in one transaction: all steps or none."""
    db.execute("BEGIN IMMEDIATE")
    try:
        # Re-read under the write lock: another process may have migrated since we looked.
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:  # upgraded by a newer hp-tui since we looked
            raise newer_error(path, version)
        for statements in MIGRATIONS[version:]:
            for statement in statements:
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


# ---------------------------------------------------------------------------- network drives

def network_fs_warning(path: Path, mounts: Path = Path("/proc/mounts")) -> str | None:
    """A warning when the store sits on a network filesystem, where SQLite's WAL is unsafe."""
    fstype = filesystem_type(path, mounts)
    if fstype is None or fstype not in NETWORK_FS:
        return None
    return (f"the store {path} is on a network filesystem ({fstype}). SQLite's WAL mode needs "
            "shared memory on one machine: processes on other hosts may see a stale or corrupt "
            "store. Prefer a local disk (--store PATH or HP_TUI_STORE).")


def filesystem_type(path: Path, mounts: Path = Path("/proc/mounts")) -> str | None:
    """The type of the filesystem holding `path` (longest matching mount point), if known."""
    try:
        lines = mounts.read_text().splitlines()
    except OSError:
        return None  # not Linux, or no /proc: nothing to say
    target = str(path.absolute().resolve())
    best: tuple[int, str] | None = None
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = _unescape_mount(fields[1])
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= best[0]):
            best = (len(point), fields[2])
    return best[1] if best else None


def _unescape_mount(field: str) -> str:
    # /proc/mounts writes space, tab, newline and backslash as octal escapes (\040 ...).
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)
