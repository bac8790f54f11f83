"""Opening store files: new, empty, corrupt, foreign, newer, read-only, a directory, disk full,
network drives; and migrations. A file that is refused must come out byte for byte as it went in.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.store import (
    SCHEMA_VERSION,
    EpochRow,
    FinishRow,
    Store,
    StoreError,
    encode_weights,
)
from engine.store import schema as store_schema
from engine.store.schema import APPLICATION_ID, filesystem_type, network_fs_warning

ROOT = Path(__file__).resolve().parents[1]


def snapshot(path: Path) -> tuple[bytes, list[str]]:
    """A file's bytes and what lies beside it: to prove a refusal changed nothing."""
    return path.read_bytes(), sorted(os.listdir(path.parent))


def filled_store(path: Path, studies: int = 1) -> Path:
    with Store(path) as s:
        for i in range(studies):
            s.create_study(name=f"s{i}", preset_name="p", preset_path=None, preset_text="x" * 2000,
                           strategy="single", seed=0, baseline={}, spec={}, device="cpu",
                           trials=[({"lr": 0.1}, j, 0) for j in range(20)])
    return path


def raw_sql(path: Path, *statements: str) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    for statement in statements:
        db.execute(statement)
    db.close()


# ------------------------------------------------------------------------ new and migrated

def test_new_store_is_wal_with_current_schema(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    with Store(path) as s:
        db = s._db
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert db.execute("PRAGMA busy_timeout").fetchone()[0] == 10_000
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    with Store(path) as again:  # reopening migrates nothing and keeps the data
        assert again.studies() == []


@pytest.mark.parametrize("kind", ["zero-bytes", "empty-sqlite"])
def test_empty_file_is_migrated(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "store.db"
    if kind == "zero-bytes":
        path.write_bytes(b"")
    else:  # a real SQLite file at user_version 0 holding nothing
        raw_sql(path, "CREATE TABLE t (x)", "DROP TABLE t")
        assert path.stat().st_size > 0
    with Store(path) as s:
        assert s._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert s.studies() == []


def test_migrations_run_in_order_in_one_transaction(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    path = filled_store(tmp_path / "store.db")
    v2 = ("CREATE TABLE extra (x INTEGER)", "INSERT INTO extra VALUES (1)")
    monkeypatch.setattr(store_schema, "MIGRATIONS", [*store_schema.MIGRATIONS, v2])
    monkeypatch.setattr(store_schema, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with Store(path) as s:
        assert s._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
        assert s._db.execute("SELECT x FROM extra").fetchone()[0] == 1
        assert len(s.studies()) == 1  # the data came along


def test_failed_migration_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = filled_store(tmp_path / "store.db")
    broken = ("CREATE TABLE half_done (x INTEGER)", "THIS IS NOT SQL")
    monkeypatch.setattr(store_schema, "MIGRATIONS", [*store_schema.MIGRATIONS, broken])
    monkeypatch.setattr(store_schema, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(StoreError, match="syntax error"):
        Store(path)
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    half = db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'half_done'").fetchone()
    assert half[0] == 0
    db.close()


# --------------------------------------------------------------------- refused, untouched

@pytest.mark.parametrize("content", [b"garbage!!", b"not a database, just text\n" * 400])
def test_garbage_file_is_refused_untouched(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "store.db"
    path.write_bytes(content)
    before = snapshot(path)
    for readonly in (False, True):
        with pytest.raises(StoreError) as err:
            Store(path, readonly=readonly)
        assert str(path) in str(err.value) and "corrupt" in str(err.value)
        assert "untouched" in str(err.value)
    assert snapshot(path) == before  # not even a -wal or -shm file appeared


def test_damaged_schema_page_is_refused_untouched(tmp_path: Path) -> None:
    path = filled_store(tmp_path / "store.db")
    raw = bytearray(path.read_bytes())
    raw[100:4096] = b"\x55" * (4096 - 100)  # the header survives, the schema does not
    path.write_bytes(bytes(raw))
    before = path.read_bytes()
    with pytest.raises(StoreError, match="corrupt"):
        Store(path)
    assert path.read_bytes() == before


def test_damage_deeper_in_the_file_is_refused_for_writing(tmp_path: Path) -> None:
    """A writer checks the whole file once (quick_check) and refuses a damaged one, with how to
    recover it; a viewer does not read it all, and meets the damage as a StoreError."""
    path = filled_store(tmp_path / "store.db", studies=30)
    raw = bytearray(path.read_bytes())
    raw[4096:] = b"\xaa" * (len(raw) - 4096)
    path.write_bytes(bytes(raw))
    before = path.read_bytes()
    with pytest.raises(StoreError, match=r"damaged.*\.recover"):
        Store(path)
    assert path.read_bytes() == before
    with pytest.raises(StoreError, match="corrupt"), Store(path, readonly=True) as s:
        s.studies()  # (or already the open, when the schema reaches the damaged pages)
    assert path.read_bytes() == before


def test_newer_schema_is_refused_untouched(tmp_path: Path) -> None:
    path = filled_store(tmp_path / "store.db")
    raw_sql(path, f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    before = snapshot(path)
    for readonly in (False, True):
        with pytest.raises(StoreError, match=rf"newer hp-tui .*v{SCHEMA_VERSION + 1}"):
            Store(path, readonly=readonly)
    assert snapshot(path) == before


def test_foreign_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    raw_sql(path, "CREATE TABLE notes (text TEXT)", "INSERT INTO notes VALUES ('mine')")
    before = snapshot(path)
    with pytest.raises(StoreError, match="not an hp-tui store"):
        Store(path)
    assert snapshot(path) == before


def test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"is a directory.*--store .*store\.db"):
        Store(tmp_path)


def test_readonly_directory_is_refused_and_nothing_created(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests run as root, for whom chmod does not stop writes; so the check's view of the
    # directory is made read-only instead (os.access is what the store consults).
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(store_schema.os, "access",
                        lambda p, mode: False if Path(p) == locked else real_access(p, mode))
    with pytest.raises(StoreError, match="read-only place") as err:
        Store(locked / "store.db")
    assert str(locked) in str(err.value) and "--store" in str(err.value)
    assert os.listdir(locked) == []


def test_readonly_existing_store_is_refused_for_writing(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    path = filled_store(tmp_path / "store.db")
    before = snapshot(path)
    real_access = os.access
    monkeypatch.setattr(store_schema.os, "access",
                        lambda p, mode: False if Path(p) == path else real_access(p, mode))
    with pytest.raises(StoreError, match="read-only place"):
        Store(path)
    assert snapshot(path) == before
    with Store(path, readonly=True) as viewer:  # a viewer can still read it
        assert len(viewer.studies()) == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_chmod_readonly_directory_is_refused(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(StoreError, match="read-only place"):
            Store(locked / "store.db")
        assert os.listdir(locked) == []
    finally:
        locked.chmod(0o755)


READONLY_MOUNT_PROBE = """
import json, sys
from engine.store import Store, StoreError
out = {}
cases = [("writer", sys.argv[1], {}), ("viewer", sys.argv[1], {"readonly": True}),
         ("new", sys.argv[2], {})]
for label, path, kwargs in cases:
    try:
        with Store(path, **kwargs) as s:
            out[label] = [x.name for x in s.studies()]
    except StoreError as e:
        out[label] = str(e)
print(json.dumps(out))
"""


def can_mount_readonly() -> bool:
    try:
        probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


@pytest.mark.skipif(not can_mount_readonly(), reason="needs `unshare -rm` (user namespaces)")
def test_really_readonly_directory(tmp_path: Path) -> None:
    # A read-only bind mount in a private namespace: writes fail with EROFS even for root.
    place = tmp_path / "ro"
    place.mkdir()
    path = filled_store(place / "store.db")  # closed cleanly: no -wal/-shm left beside it
    before = snapshot(path)
    script = (f"mount --bind {place} {place} && mount -o remount,bind,ro {place} && "
              f'"{sys.executable}" -c "$0" "$1" "$2"')
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script, READONLY_MOUNT_PROBE, str(path),
                           str(place / "new.db")], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert "read-only place" in out["writer"] and "hp-tui show" in out["writer"]
    assert out["viewer"] == ["s0"]  # a viewer still reads it (as an immutable file)
    assert "read-only place" in out["new"]
    assert snapshot(path) == before


def test_uncreatable_place_is_refused() -> None:
    # /proc refuses new files even to root: a real, unsimulated failure to create the store.
    with pytest.raises(StoreError, match="hp-tui-test"):
        Store("/proc/hp-tui-test/store.db")


def test_missing_store_with_create_false_or_readonly(tmp_path: Path) -> None:
    path = tmp_path / "nothing" / "store.db"
    for kwargs in ({"create": False}, {"readonly": True}):
        with pytest.raises(StoreError, match="no store at"):
            Store(path, **kwargs)  # type: ignore[arg-type]
    assert not path.parent.exists()


def test_readonly_viewer_reads_and_refuses_writes(tmp_path: Path) -> None:
    path = filled_store(tmp_path / "store.db")  # closed: no -wal/-shm files left
    with Store(path, readonly=True) as viewer:
        assert viewer.study("s0").counts["pending"] == 20
        with pytest.raises(StoreError, match="read-only"):
            viewer.set_study_status(1, "running")


def test_readonly_viewer_refuses_an_empty_store(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    path.write_bytes(b"")
    with pytest.raises(StoreError, match="is empty"):
        Store(path, readonly=True)
    assert path.read_bytes() == b""


def test_disk_full_is_a_store_error_and_loses_nothing(tmp_path: Path) -> None:
    path = filled_store(tmp_path / "store.db")
    with Store(path) as s:
        pages = s._db.execute("PRAGMA page_count").fetchone()[0]
        s._db.execute(f"PRAGMA max_page_count = {pages + 2}")  # the disk is now "full"
        trial = s.trials(1)[0].id
        big = encode_weights([(np.ones((300, 300)), np.ones(300))])  # ~360 kB: many pages
        with pytest.raises(StoreError, match=r"disk holding .* is full"):
            s.finish_trials([FinishRow(trial, "completed", big, None, 0.1, 0.1, 0.9, 5)])
        assert s.trial(1, 1).status == "pending" and s.weights(trial) is None  # rolled back
        s.start_trials([trial], device="cpu", torch_version="x")  # and still usable
        assert s.trial(1, 1).status == "running"


def test_locked_store_is_a_store_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = filled_store(tmp_path / "store.db")
    monkeypatch.setattr(store_schema, "BUSY_TIMEOUT_S", 0.2)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # someone holds the write lock and does not let go
    try:
        with Store(path) as s, pytest.raises(StoreError, match="locked by another process"):
            s.set_study_status(1, "running")
        with Store(path, readonly=True) as viewer:  # readers are not blocked by the writer
            assert viewer.study(1).status == "pending"
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_a_reader_mid_transaction_does_not_block_the_writer(tmp_path: Path) -> None:
    path = filled_store(tmp_path / "store.db")
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM trials").fetchone()[0] == 20  # holds a snapshot
    try:
        with Store(path) as s:
            s.start_trials([1, 2], device="cpu", torch_version="x")  # WAL: not blocked
            s.record_epoch([EpochRow(1, 0, 1.0, 1.0, 0.5)])
            assert s.trial(1, 1).epochs_done == 1
        # the reader still sees its snapshot, the new data once its transaction ends
        assert reader.execute("SELECT count(*) FROM metrics").fetchone()[0] == 0
        reader.execute("COMMIT")
        assert reader.execute("SELECT count(*) FROM metrics").fetchone()[0] == 1
    finally:
        reader.close()


# ------------------------------------------------------------------------ network drives

def test_network_filesystem_is_detected(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text(
        "/dev/vda / ext4 rw 0 0\n"
        "server:/export /mnt/lab\\040share nfs4 rw,relatime 0 0\n"
        "//nas/x /mnt/lab\\040share/smb cifs rw 0 0\n"
        "tmpfs /mnt/lab\\040share/smb/tmp tmpfs rw 0 0\n")
    assert filesystem_type(Path("/mnt/lab share/store.db"), mounts) == "nfs4"
    assert filesystem_type(Path("/mnt/lab share/smb/a/store.db"), mounts) == "cifs"
    assert filesystem_type(Path("/mnt/lab share/smb/tmp/store.db"), mounts) == "tmpfs"
    assert filesystem_type(Path("/mnt/labx/store.db"), mounts) == "ext4"
    warning = network_fs_warning(Path("/mnt/lab share/store.db"), mounts)
    assert warning is not None and "nfs4" in warning and "local disk" in warning
    assert network_fs_warning(Path("/home/me/store.db"), mounts) is None
    assert network_fs_warning(Path("/x"), tmp_path / "no-such-mounts") is None


# ---------------------------------------------------------------------------------- layering

def test_store_imports_no_torch() -> None:
    code = ("import sys, engine.store.store\n"
            "heavy = [m for m in ('torch', 'textual') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=60)


def test_a_v1_store_upgrades_and_its_studies_train_locally(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "store.db"
    with monkeypatch.context() as m:  # a store written before studies recorded their executor
        m.setattr(store_schema, "MIGRATIONS", store_schema.MIGRATIONS[:1])
        m.setattr(store_schema, "SCHEMA_VERSION", 1)
        Store(path).close()
    raw_sql(path, "INSERT INTO studies (name, strategy, seed, baseline_json, spec_json, device,"
                  " created) VALUES ('old', 'single', 0, '{}', '{}', 'cpu', '2026-01-01')")
    with Store(path) as s:
        [study] = s.studies()
        assert (study.executor, study.ray_address) == ("local", None)
        new = s.create_study(name="on ray", preset_name="p", preset_path=None, preset_text="",
                             strategy="single", seed=0, baseline={}, spec={}, device="cpu",
                             trials=[], executor="ray", ray_address="10.0.0.5:6379")
        assert (s.study(new).executor, s.study(new).ray_address) == ("ray", "10.0.0.5:6379")
