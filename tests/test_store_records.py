"""The store's records beside studies and trials: leases, the vault, predictions, past runs,
validation points, and one connection shared by threads."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from engine.spec import pid_alive
from engine.store import (
    EpochRow,
    LeaseBusy,
    LeaseLost,
    NoSuchStudy,
    Store,
    StoreError,
    VaultUsed,
)
from tests.store_helpers import HOST, ids, make_study

# ----------------------------------------------------------------------------------- leases

def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # reaped: the pid names no process now
    return proc.pid


def test_lease_busy_for_a_live_holder(store: Store) -> None:
    sid = make_study(store)
    assert store.lease(sid) is None
    token = store.acquire_lease(sid, pid=os.getpid(), host=HOST)
    holder = store.lease(sid)
    assert holder is not None and holder["alive"] and holder["pid"] == os.getpid()
    assert "token" not in holder
    with pytest.raises(LeaseBusy) as err:
        store.acquire_lease(sid, pid=12345, host="elsewhere")
    assert err.value.holder["pid"] == os.getpid() and err.value.holder["host"] == HOST
    assert f"pid {os.getpid()} on {HOST} since" in str(err.value)
    store.heartbeat(sid, token)
    store.release_lease(sid, token)
    assert store.lease(sid) is None


def test_lease_of_a_dead_pid_is_taken_over(store: Store) -> None:
    import socket

    sid = make_study(store)
    old = store.acquire_lease(sid, pid=dead_pid(), host=socket.gethostname())
    assert store.lease(sid)["alive"] is False  # type: ignore[index]
    new = store.acquire_lease(sid, pid=os.getpid(), host=socket.gethostname())
    assert new != old and store.lease(sid)["pid"] == os.getpid()  # type: ignore[index]
    with pytest.raises(LeaseLost, match="taken over"):  # the old runner learns and stops
        store.heartbeat(sid, old)
    store.release_lease(sid, old)  # a stale token releases nothing
    assert store.lease(sid) is not None


def test_lease_with_a_stale_heartbeat_is_taken_over(store: Store) -> None:
    sid = make_study(store)
    store.acquire_lease(sid, pid=os.getpid(), host="another-host")  # pid not checkable there
    with pytest.raises(LeaseBusy):
        store.acquire_lease(sid, pid=1, host=HOST)
    time.sleep(0.05)
    store.acquire_lease(sid, pid=1, host=HOST, stale_after=0.01)
    assert store.lease(sid)["host"] == HOST  # type: ignore[index]


def test_zombie_process_counts_as_dead() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.time() + 10
    while time.time() < deadline:  # exited but not reaped: a zombie that kill(0) still finds
        stat = Path(f"/proc/{proc.pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            break
        time.sleep(0.01)
    assert not pid_alive(proc.pid)
    proc.wait()
    assert not pid_alive(proc.pid) and pid_alive(os.getpid())


def test_lease_needs_an_existing_study(store: Store) -> None:
    with pytest.raises(NoSuchStudy):
        store.acquire_lease(3, pid=os.getpid(), host=HOST)


# ---------------------------------------------------------- vault, predictions, throughput

def test_vault_opens_once(store: Store) -> None:
    sid = make_study(store)
    assert store.vault(sid) is None
    rec = store.record_vault(sid, trial_id=ids(store, sid)[1], trial_number=2,
                             config={"train": {"lr": 0.2}}, test_acc=0.875, test_loss=0.3,
                             val_acc=0.9)
    assert rec["trial_number"] == 2 and rec["test_acc"] == 0.875 and rec["created"]
    assert store.vault(sid) == rec
    with pytest.raises(VaultUsed) as err:
        store.record_vault(sid, trial_id=ids(store, sid)[0], trial_number=1, config={},
                           test_acc=0.99, test_loss=0.1, val_acc=0.5)
    assert err.value.record == rec and "87.50%" in str(err.value)
    assert store.vault(sid) == rec  # the first record stands


def test_predictions_replace(store: Store) -> None:
    sid = make_study(store)
    assert store.predictions(sid) == {}
    store.set_predictions(sid, {"lr": (0.1, "large"), "hidden": ([10, 10], "small")})
    assert store.predictions(sid) == {"hidden": ([10, 10], "small"), "lr": (0.1, "large")}
    store.set_predictions(sid, {"lr": (1.0, "medium")})
    assert store.predictions(sid) == {"lr": (1.0, "medium")}
    with pytest.raises(StoreError, match="effect size 'huge'"):
        store.set_predictions(sid, {"lr": (1.0, "huge")})
    assert store.predictions(sid) == {"lr": (1.0, "medium")}


def test_throughput_from_recent_runs(store: Store) -> None:
    sid = make_study(store)
    assert store.throughput("cpu") is None
    store.record_run(sid, trials=4, trial_steps=1000, seconds=2.0, device="cpu")
    store.record_run(sid, trials=4, trial_steps=3000, seconds=2.0, device="cpu")
    store.record_run(sid, trials=4, trial_steps=10, seconds=10.0, device="cuda:0")
    assert store.throughput("cpu") == pytest.approx(1000.0)
    assert store.throughput("cuda:0") == pytest.approx(1.0)
    assert store.throughput("mps") is None


def test_store_is_shared_across_threads(store: Store) -> None:
    import threading

    sid = make_study(store, n=1)
    [a] = ids(store, sid)
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for e in range(50):
                store.record_epoch([EpochRow(a, e, 1.0, 1.0, 0.5)])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=write)
    thread.start()
    for _ in range(50):
        store.trials(sid)
    thread.join()
    assert errors == [] and len(store.metrics([a])[a]) == 50


def test_validation_points_round_trip_per_data_section(tmp_path: Path) -> None:
    with Store(tmp_path / "p.db") as store:
        study = store.create_study(name=None, preset_name="p", preset_path=None, preset_text="",
                                   strategy="single", seed=0, baseline={}, spec={}, device="cpu",
                                   trials=[({"data": {"noise": 0.1}}, 1, 0)])
        x = np.arange(6, dtype=np.float32).reshape(3, 2)
        y = np.array([0, 1, 1], dtype=np.float32)
        store.save_points(study, {"noise": 0.1, "seed": 0}, x, y)
        got = store.points(study, {"seed": 0, "noise": 0.1})  # key order does not matter
        assert got is not None
        assert np.array_equal(got[0], x) and np.array_equal(got[1], y)
        assert store.points(study, {"noise": 0.2, "seed": 0}) is None
