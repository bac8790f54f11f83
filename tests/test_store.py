"""The store's API: studies, trials, metrics, weights; the locks every open keeps.

Leases, vault, predictions, runs: test_store_records.py.
Opening, corruption and migrations: test_store_files.py; several processes: test_store_processes.py.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.store import (
    EpochRow,
    FinishRow,
    LeaseLost,
    NoSuchStudy,
    NoSuchTrial,
    Store,
    StoreError,
    decode_weights,
    default_store_path,
    encode_weights,
)
from tests.store_helpers import HOST, ids, make_study

# ------------------------------------------------------------------------------------ paths

def test_default_store_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HP_TUI_STORE", raising=False)
    assert default_store_path() == tmp_path / ".hp-tui" / "store.db"
    monkeypatch.setenv("HP_TUI_STORE", str(tmp_path / "env.db"))
    assert default_store_path() == tmp_path / "env.db"
    assert default_store_path(tmp_path / "cli.db") == tmp_path / "cli.db"  # --store wins


def test_new_store_creates_its_directory(tmp_path: Path) -> None:
    path = tmp_path / ".hp-tui" / "store.db"
    with Store(path) as s:
        assert s.path == path and s.studies() == [] and s.nfs_warning is None
    assert path.is_file()


# ---------------------------------------------------------------------------------- studies

def test_create_study_and_read_it_back(store: Store) -> None:
    sid = make_study(store, n=3, name="lr-sweep")
    assert sid == 1  # numbered from 1 in each store
    s = store.study(sid)
    assert (s.name, s.preset_name, s.preset_path, s.strategy, s.seed, s.device) == (
        "lr-sweep", "notebook", "/presets/notebook.toml", "grid", 7, "cpu")
    assert s.preset_text == "[train]\nlr = 0.1\n"
    assert s.baseline == {"train": {"lr": 0.1}}
    assert s.spec["vary"] == {"lr": [0.1, 0.2]}
    assert s.status == "pending" and s.finished is None and s.error is None
    assert s.created.endswith("+00:00")
    assert s.counts["pending"] == 3 and s.counts["completed"] == 0
    trials = store.trials(sid)
    assert [t.number for t in trials] == [1, 2, 3]
    assert [(t.seed, t.replicate) for t in trials] == [(100, 0), (101, 1), (102, 0)]
    assert trials[1].config == {"train": {"lr": 0.2}}


def test_study_by_number_or_name(store: Store) -> None:
    first = make_study(store, name="baseline")
    second = make_study(store)
    assert store.study(first).name == "baseline"
    assert store.study("1").id == first
    assert store.study("baseline").id == first
    assert store.study(str(second)).name is None
    assert [s.id for s in store.studies()] == [first, second]


def test_no_such_study_lists_and_suggests(store: Store) -> None:
    with pytest.raises(NoSuchStudy, match="no studies yet"):
        store.study(1)
    make_study(store, name="baseline")
    make_study(store)
    with pytest.raises(NoSuchStudy) as err:
        store.study("baseln")
    assert "1 (baseline), 2" in str(err.value) and "Did you mean 'baseline'" in str(err.value)
    with pytest.raises(NoSuchStudy, match="no study 9"):
        store.study("9")


def test_study_names_are_unique_and_not_numbers(store: Store) -> None:
    make_study(store, name="sweep")
    with pytest.raises(StoreError, match=r"'sweep' already exists \(study 1\)"):
        make_study(store, name="sweep")
    with pytest.raises(StoreError, match="not allowed"):
        make_study(store, name="12")
    assert len(store.studies()) == 1  # the refused ones left nothing behind


def test_set_study_status(store: Store) -> None:
    sid = make_study(store)
    store.set_study_status(sid, "running")
    assert store.study(sid).status == "running" and store.study(sid).finished is None
    store.set_study_status(sid, "failed", error="boom")
    s = store.study(sid)
    assert (s.status, s.error) == ("failed", "boom") and s.finished is not None
    with pytest.raises(ValueError):
        store.set_study_status(sid, "nonsense")
    with pytest.raises(NoSuchStudy):
        store.set_study_status(42, "running")


# ------------------------------------------------------------------------- trials, metrics

def test_trial_and_filters(store: Store) -> None:
    sid = make_study(store, n=4)
    t = store.trial(sid, 2)
    assert t.number == 2 and t.status == "pending" and t.epochs_done == 0
    store.mark_trials([t.id], "failed", error="ValueError: x")
    failed = store.trials(sid, statuses=["failed"])
    assert [f.number for f in failed] == [2] and failed[0].error == "ValueError: x"
    assert failed[0].finished is not None
    assert len(store.trials(sid, statuses=("pending", "failed"))) == 4
    with pytest.raises(NoSuchTrial, match="numbered 1 to 4"):
        store.trial(sid, 5)


def test_start_and_record_epochs(store: Store) -> None:
    sid = make_study(store, n=3)
    a, b, c = ids(store, sid)
    store.start_trials([a, b, c], device="cpu", torch_version="2.13.0")
    t = store.trial(sid, 1)
    assert (t.status, t.device, t.torch_version) == ("running", "cpu", "2.13.0")
    assert t.started is not None
    store.record_epoch([EpochRow(a, 0, 0.9, 0.8, 0.5), EpochRow(b, 0, 0.9, 0.8, 0.6),
                        EpochRow(c, 0, 0.7, 0.6, 0.7)])
    weights = encode_weights([(np.ones((4, 2)), np.zeros(4)), (np.ones((1, 4)), np.zeros(1))])
    store.record_epoch([
        EpochRow(a, 1, 0.5, 0.4, 0.75, status="completed", weights=weights),
        EpochRow(b, 1, float("nan"), float("inf"), 0.5, status="diverged"),
        EpochRow(c, 1, np.float32(0.25), np.float64(0.5), 0.8),  # numpy scalars are fine
    ])
    ta, tb, tc = store.trials(sid)
    assert (ta.status, ta.epochs_done, ta.val_acc) == ("completed", 2, 0.75)
    assert ta.diverged_epoch is None and ta.finished is not None and store.weights(a) is not None
    assert (tb.status, tb.diverged_epoch, tb.train_loss, tb.val_loss) == ("diverged", 1, None,
                                                                          None)
    assert (tc.status, tc.finished, tc.train_loss) == ("running", None, 0.25)
    assert store.weights(c) is None
    m = store.metrics([a, b, c, 999])
    assert m[a] == [(0, 0.9, 0.8, 0.5), (1, 0.5, 0.4, 0.75)]
    assert m[b][1] == (1, None, None, 0.5)  # non-finite numbers read back as None
    assert m[999] == []
    assert store.study(sid).counts == {"pending": 0, "running": 1, "completed": 1,
                                       "diverged": 1, "failed": 0, "interrupted": 0,
                                       "pruned": 0}


def test_record_epoch_is_one_transaction(store: Store) -> None:
    sid = make_study(store, n=2)
    a, _ = ids(store, sid)
    # trial 999 does not exist: the whole epoch is refused, including trial a's row
    with pytest.raises(StoreError, match=r"unknown trials \[999\]"):
        store.record_epoch([EpochRow(a, 0, 1.0, 1.0, 0.5), EpochRow(999, 0, 1.0, 1.0, 0.5)])
    assert store.metrics([a]) == {a: []} and store.trial(sid, 1).epochs_done == 0
    with pytest.raises(ValueError):
        store.record_epoch([EpochRow(a, 0, 1.0, 1.0, 0.5, status="pending")])


def test_every_write_with_a_lost_lease_is_refused(store: Store) -> None:
    sid = make_study(store, n=1)
    [a] = ids(store, sid)
    token = store.acquire_lease(sid, pid=os.getpid(), host=HOST)
    store.hold(sid, token)
    store.record_epoch([EpochRow(a, 0, 1.0, 1.0, 0.5)])
    store.release_lease(sid, token)
    writes = [
        lambda: store.record_epoch([EpochRow(a, 1, 1.0, 1.0, 0.5)]),
        lambda: store.finish_trials([FinishRow(a, "completed", None, None, 0.1, 0.2, 0.9, 2)]),
        lambda: store.start_trials([a], device="cpu", torch_version="x"),
        lambda: store.mark_trials([a], "interrupted"),
        lambda: store.reset_unfinished(sid),
        lambda: store.set_study_status(sid, "completed"),
        lambda: store.save_points(sid, {}, np.zeros((1, 2)), np.zeros(1)),
        lambda: store.record_run(sid, trials=1, trial_steps=1, seconds=1.0, device="cpu"),
    ]
    for write in writes:
        with pytest.raises(LeaseLost, match="taken over"):
            write()
    assert len(store.metrics([a])[a]) == 1
    assert store.trial(sid, 1).status == "running" and store.runs() == []


def test_finish_trials(store: Store) -> None:
    sid = make_study(store, n=2)
    a, b = ids(store, sid)
    w = encode_weights([(np.eye(2), np.ones(2))])
    store.finish_trials([
        FinishRow(a, "completed", w, None, 0.1, 0.2, 0.9, 10),
        FinishRow(b, "diverged", w, 3, float("nan"), None, 0.5, 4),
    ])
    ta, tb = store.trials(sid)
    assert (ta.status, ta.epochs_done, ta.val_acc, ta.finished is not None) == (
        "completed", 10, 0.9, True)
    assert (tb.status, tb.diverged_epoch, tb.train_loss) == ("diverged", 3, None)
    got = store.weights(b)
    assert got is not None and np.array_equal(got[0][0], np.eye(2, dtype=np.float32))


def test_start_trials_reruns_from_scratch(store: Store) -> None:
    sid = make_study(store, n=1)
    [a] = ids(store, sid)
    store.start_trials([a], device="cpu", torch_version="x")
    store.record_epoch([EpochRow(a, 0, 1.0, 1.0, 0.5, status="failed", error="oops",
                                 weights=encode_weights([(np.ones(1), np.ones(1))]))])
    store.start_trials([a], device="cuda:0", torch_version="y")
    t = store.trial(sid, 1)
    assert (t.status, t.epochs_done, t.val_acc, t.error, t.finished) == ("running", 0, None, None,
                                                                           None)
    assert t.device == "cuda:0" and store.metrics([a]) == {a: []} and store.weights(a) is None


def test_mark_trials(store: Store) -> None:
    sid = make_study(store, n=3)
    a, b, _ = ids(store, sid)
    store.start_trials([a, b], device="cpu", torch_version="x")
    store.mark_trials([a, b], "interrupted")
    assert [t.status for t in store.trials(sid)] == ["interrupted", "interrupted", "pending"]
    with pytest.raises(ValueError):
        store.mark_trials([a], "exploded")


def test_reset_unfinished_keeps_finished_trials(store: Store) -> None:
    sid = make_study(store, n=5)
    a, b, c, d, e = ids(store, sid)
    store.start_trials([a, b, c, d], device="cpu", torch_version="x")
    store.record_epoch([EpochRow(a, 0, 1, 1, 0.9, status="completed"),
                        EpochRow(b, 0, 1, 1, 0.1, status="diverged"),
                        EpochRow(c, 0, 1, 1, 0.5), EpochRow(d, 0, 1, 1, 0.5, status="failed")])
    reset = store.reset_unfinished(sid)  # c was left "running" by a dead runner: a zombie
    assert [t.id for t in reset] == [c, d, e]
    assert all(t.status == "pending" and t.epochs_done == 0 and t.started is None for t in reset)
    m = store.metrics([a, b, c, d])
    assert len(m[a]) == 1 and len(m[b]) == 1 and m[c] == [] and m[d] == []
    assert [t.status for t in store.trials(sid)][:2] == ["completed", "diverged"]
    assert store.reset_unfinished(sid) == reset  # idempotent


def test_metrics_since_is_incremental(store: Store) -> None:
    sid = make_study(store, n=2)
    other = make_study(store, n=1)
    a, b = ids(store, sid)
    [o] = ids(store, other)
    first = store.metrics_since(sid)
    assert first.full and first.rows == {}
    store.record_epoch([EpochRow(a, 0, 1, 1, 0.1), EpochRow(b, 0, 1, 1, 0.2)])
    store.record_epoch([EpochRow(o, 0, 1, 1, 0.3)])  # another study's epochs are not returned
    d1 = store.metrics_since(sid, first.cursor)
    assert not d1.full and d1.rows == {a: [(0, 1.0, 1.0, 0.1)], b: [(0, 1.0, 1.0, 0.2)]}
    assert store.metrics_since(sid, d1.cursor).rows == {}  # nothing new
    store.record_epoch([EpochRow(a, 1, 1, 1, 0.4)])
    assert store.metrics_since(sid, d1.cursor).rows == {a: [(1, 1.0, 1.0, 0.4)]}
    # A rerun deletes epochs: a poller's cache is stale, so it gets everything again, marked full.
    store.start_trials([b], device="cpu", torch_version="x")
    d2 = store.metrics_since(sid, d1.cursor)
    assert d2.full and d2.rows == {a: [(0, 1.0, 1.0, 0.1), (1, 1.0, 1.0, 0.4)]}
    assert store.metrics_since(sid, d2.cursor).rows == {}


def test_metrics_since_reads_only_new_rows(store: Store) -> None:
    # The poll is one range scan of the (study_id, seq) index, not a scan of the study's epochs.
    sid = make_study(store, n=1)
    seen: list[str] = []
    store._db.set_trace_callback(seen.append)  # statements as run, with their values bound
    store.metrics_since(sid, (0, 0))
    store._db.set_trace_callback(None)
    [poll] = [sql for sql in seen if "FROM metrics" in sql]
    plan = [row[3] for row in store._db.execute("EXPLAIN QUERY PLAN " + poll).fetchall()]
    assert plan == ["SEARCH metrics USING INDEX metrics_by_study (study_id=? AND rowid>?)"]


def test_weights_codec_round_trip() -> None:
    rng = np.random.default_rng(0)
    layers = [(rng.normal(size=(10, 2)), rng.normal(size=10)),
              (rng.normal(size=(1, 10)).astype(np.float32), rng.normal(size=1))]
    back = decode_weights(encode_weights(layers))
    assert len(back) == 2
    for (w, b), (w2, b2) in zip(layers, back, strict=True):
        assert w2.dtype == np.float32 and w2.shape == w.shape and b2.shape == b.shape
        assert np.allclose(w2, w, atol=1e-6) and np.allclose(b2, b, atol=1e-6)
    assert decode_weights(encode_weights([])) == []


# --- locks -----------------------------------------------------------------------------------


def held_locks(path: Path) -> list[str]:
    """The POSIX locks this process holds on `path` (Linux: /proc/locks)."""
    inode = str(path.stat().st_ino)
    return [line for line in Path("/proc/locks").read_text().splitlines()
            if line.split()[4] == str(os.getpid()) and line.split()[5].endswith(":" + inode)]


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs Linux's /proc/locks")
def test_the_locks_survive_every_open(tmp_path: Path) -> None:
    """SQLite keeps a shared lock on the file while a connection is open; a plain open() and
    close() of the file anywhere in the process would drop it for good (POSIX locks belong to the
    process), and with it the protection of the WAL against other processes' checkpoints."""
    import threading

    import torch

    from engine.run.pool import WorkerPool
    from engine.spec.config import DataConfig, TrialConfig
    from engine.train import Trial, load_splits

    path = tmp_path / "s.db"
    with Store(path) as runner:
        sid = make_study(runner)
        token = runner.acquire_lease(sid, pid=os.getpid(), host=HOST)
        runner.hold(sid, token)
        assert held_locks(path), "SQLite holds a lock while a connection is open"
        with Store(path, create=False) as again:  # the runner's heartbeat connection
            again.heartbeat(sid, token)
        assert held_locks(path)
        seen: list[Any] = []
        thread = threading.Thread(target=lambda: seen.append(Store(path, readonly=True).close()))
        thread.start()
        thread.join()
        assert seen == [None] and held_locks(path)
        data = DataConfig(train_size=100, val_size=50)
        with WorkerPool(2, torch.device("cpu")) as pool:
            pool.train([Trial(TrialConfig(data=data, epochs=1), s) for s in (1, 2)],
                       load_splits(data), compile=False)
        assert held_locks(path), "forked workers neither use nor close the runner's connection"
        runner.record_epoch([EpochRow(ids(runner, sid)[0], 0, 1.0, 1.0, 0.5)])
        assert held_locks(path)
    assert held_locks(path) == []
