"""The store under faults, as users cause them: several studies at once on one store, readers
polling all along, runners killed (SIGKILL) and paused (SIGSTOP, then SIGCONT after another runner
took the study over) at random moments. After each: SQLite's integrity_check passes, every study
completes, and every trial's numbers (each epoch's metrics and the final weights) equal those of
an uninterrupted run of the same preset; no epoch is stored twice.

Each scenario is repeated five times with a different random moment (seeded, so a failure can be
rerun). The lease is shortened to 3 s (`HP_TUI_LEASE_SECONDS`) so that a paused runner is judged
dead quickly.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.run.launcher import log_path
from engine.spec import pid_alive
from engine.store import Store
from tests.cli_helpers import ROOT, env_for, wait_for

pytestmark = pytest.mark.slow

LEASE_SECONDS = 3.0
REPEATS = range(5)

# Four data groups (so several populations and hundreds of transactions), ~2 s of training.
PRESET = """\
name = "stress"
[data]
train_size = 300
val_size = 100
test_size = 100
[train]
epochs = 40
[study]
strategy = "sensitivity"
seeds = 2
[study.vary]
noise = [0.1, 0.2, 0.3]
lr = [0.05]
"""
TRIALS, EPOCHS = 10, 40

# Polls every study of the store until the stop file appears, as viewers do: the app (read-only,
# incremental metrics) and `hp-tui studies` / `show` run again and again, each opening the store
# for writing and closing it (the last connection to close checkpoints the WAL, which is how a
# process that lost its locks gets its writes destroyed). Any error fails the process.
READER = """
import sys, time
from pathlib import Path
from engine.store import Store
path, stop = sys.argv[1], Path(sys.argv[2])
cursors, polls = {}, 0
while not stop.exists():
    with Store(path, readonly=polls % 2 == 0, create=False) as store:
        for study in store.studies():
            store.trials(study.id)
            cursors[study.id] = store.metrics_since(study.id, cursors.get(study.id)).cursor
            store.lease(study.id)
    polls += 1
    time.sleep(0.1)
print(polls)
"""


def lease_env(store: Path) -> dict[str, str]:
    env = env_for(store)
    env["HP_TUI_LEASE_SECONDS"] = str(LEASE_SECONDS)
    return env


def run(*args: str, store: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tui.cli", *args], cwd=store.parent,
                          env=lease_env(store), capture_output=True, text=True, timeout=300)


def launch(store: Path, preset: Path, name: str) -> int:
    out = run("run", str(preset), "--name", name, "--detach", store=store)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.strip())


def snapshot(store: Path, study: int) -> dict[int, Any]:
    """Trial number -> (status, epochs in order with their metrics, final weights)."""
    with Store(store, readonly=True) as s:
        trials = s.trials(study)
        metrics = s.metrics([t.id for t in trials])
        return {t.number: (t.status, metrics[t.id], s.weights(t.id)) for t in trials}


def assert_same_numbers(got: dict[int, Any], expected: dict[int, Any]) -> None:
    assert sorted(got) == sorted(expected) and len(got) == TRIALS
    for number, (status, epochs, weights) in got.items():
        want_status, want_epochs, want_weights = expected[number]
        assert status == want_status == "completed", number
        assert [e[0] for e in epochs] == list(range(EPOCHS)), f"trial {number}: epochs {epochs}"
        assert epochs == want_epochs, f"trial {number}: metrics differ"
        assert weights is not None and len(weights) == len(want_weights)
        for (w, b), (ww, wb) in zip(weights, want_weights, strict=True):
            assert np.array_equal(w, ww) and np.array_equal(b, wb), f"trial {number}: weights"


def assert_intact(store: Path) -> None:
    db = sqlite3.connect(f"{store.as_uri()}?mode=ro", uri=True)
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        db.close()


def settled(store: Path, studies: list[int]) -> bool:
    with Store(store, readonly=True) as s:
        return all(s.study(i).status in ("completed", "failed") and s.lease(i) is None
                   for i in studies)


def epochs_stored(store: Path, study: int) -> int:
    with Store(store, readonly=True) as s:
        return sum(t.epochs_done for t in s.trials(study))


def runner_pid(store: Path, study: int) -> int | None:
    with Store(store, readonly=True) as s:
        lease = s.lease(study)
    return lease["pid"] if lease else None


@pytest.fixture(scope="module")
def preset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("preset") / "stress.toml"
    path.write_text(PRESET)
    return path


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory, preset: Path) -> dict[int, Any]:
    store = tmp_path_factory.mktemp("reference") / "store.db"
    out = run("run", str(preset), store=store)
    assert out.returncode == 0, out.stderr
    return snapshot(store, 1)


@pytest.fixture
def reader(tmp_path: Path):
    """A viewer polling the store for the whole test; it must never fail."""
    store, stop = tmp_path / "store.db", tmp_path / "stop-reader"
    Store(store).close()  # an empty store, as the app leaves it on its first start
    proc = subprocess.Popen([sys.executable, "-c", READER, str(store), str(stop)],
                            cwd=ROOT, env=lease_env(store), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    yield store
    stop.touch()
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert int(out) > 0


@pytest.mark.parametrize("rep", REPEATS)
@pytest.mark.parametrize("at_once", [2, 3])
def test_studies_at_once_on_one_store(reader: Path, preset: Path, uninterrupted, at_once: int,
                                      rep: int) -> None:
    store = reader
    rng = random.Random(rep)
    studies = []
    for k in range(at_once):
        studies.append(launch(store, preset, f"s{k}"))
        time.sleep(rng.uniform(0.0, 1.5))
    wait_for(lambda: settled(store, studies), timeout=240, every=0.2)
    assert_intact(store)
    for study in studies:
        assert_same_numbers(snapshot(store, study), uninterrupted)


@pytest.mark.parametrize("rep", REPEATS)
def test_sigkill_at_a_random_moment_then_resume(reader: Path, preset: Path, uninterrupted,
                                                rep: int) -> None:
    store = reader
    rng = random.Random(100 + rep)
    other = launch(store, preset, "bystander")  # a second study shares the store meanwhile
    study = launch(store, preset, "victim")
    moment = rng.randint(1, TRIALS * EPOCHS * 3 // 4)
    wait_for(lambda: epochs_stored(store, study) >= moment, timeout=120, every=0.02)
    pid = runner_pid(store, study)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid), timeout=10)
    out = run("resume", str(study), store=store)
    assert out.returncode == 0, out.stderr
    wait_for(lambda: settled(store, [study, other]), timeout=240, every=0.2)
    assert_intact(store)
    assert_same_numbers(snapshot(store, study), uninterrupted)
    assert_same_numbers(snapshot(store, other), uninterrupted)


@pytest.mark.parametrize("rep", REPEATS)
def test_paused_runner_wakes_after_a_takeover_and_writes_nothing(
        reader: Path, preset: Path, uninterrupted, rep: int) -> None:
    store = reader
    rng = random.Random(200 + rep)
    study = launch(store, preset, "paused")
    moment = rng.randint(1, TRIALS * EPOCHS // 2)
    wait_for(lambda: epochs_stored(store, study) >= moment, timeout=120, every=0.02)
    old = runner_pid(store, study)
    assert old is not None
    os.kill(old, signal.SIGSTOP)
    try:
        time.sleep(LEASE_SECONDS + 0.5)
        out = run("resume", str(study), "--detach", store=store)
        # A runner paused inside a write transaction holds the store's write lock; nothing can
        # take over until it wakes (the store stays intact either way).
        took_over = out.returncode == 0
        if took_over:
            wait_for(lambda: runner_pid(store, study) not in (None, old), timeout=60)
            wait_for(lambda: epochs_stored(store, study) >= 1, timeout=60, every=0.02)
            time.sleep(rng.uniform(0.0, 1.0))  # wake it while the new runner trains
    finally:
        os.kill(old, signal.SIGCONT)
    wait_for(lambda: not pid_alive(old), timeout=60)
    if not took_over:  # then the old runner finished the study itself
        assert "locked" in out.stderr, out.stderr
    wait_for(lambda: settled(store, [study]), timeout=240, every=0.2)
    assert_intact(store)
    assert_same_numbers(snapshot(store, study), uninterrupted)
    if took_over:
        log = log_path(store, study).read_text()
        assert "no longer holds study" in log or "lost the study's lease" in log, log[-2000:]


def test_a_pause_is_left_out_of_the_timing_that_calibrates_the_eta(tmp_path: Path,
                                                                   preset: Path) -> None:
    """A runner paused for a while (but not past its lease) finishes the study; the run time it
    records for later ETAs leaves the pause out."""
    store = tmp_path / "store.db"
    env = lease_env(store)
    env["HP_TUI_LEASE_SECONDS"] = "30"  # heartbeat every 5 s: a 7 s pause spans one
    long = tmp_path / "long.toml"
    long.write_text(PRESET.replace("epochs = 40", "epochs = 400"))
    out = subprocess.run([sys.executable, "-m", "tui.cli", "run", str(long), "--detach"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    wait_for(lambda: epochs_stored(store, 1) >= 1, timeout=60, every=0.02)
    started = time.monotonic()
    pid = runner_pid(store, 1)
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    time.sleep(7.0)
    os.kill(pid, signal.SIGCONT)
    wait_for(lambda: settled(store, [1]), timeout=240, every=0.2)
    wall = time.monotonic() - started
    with Store(store, readonly=True) as s:
        [recorded] = s.runs()
    assert recorded["seconds"] < wall - 4.0, (recorded, wall)
    assert "paused for" in log_path(store, 1).read_text()
