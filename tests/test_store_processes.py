"""The store under several real processes: a writer and polling readers never see "database is
locked"; a writer killed mid-study (SIGKILL, or exiting inside a transaction) leaves every committed
epoch readable and no part of an uncommitted one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engine.store import Store

ROOT = Path(__file__).resolve().parents[1]
TRIALS = 32

# Writes epochs of all trials, one transaction each, printing each epoch once committed. Stops
# after `epochs` epochs (marking the study completed), or exits inside epoch `die_at`'s transaction.
WRITER = """
import os, sys, time
from engine.store import EpochRow, Store
path, study, epochs, die_at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
pause = float(sys.argv[5])
with Store(path, create=False) as store:
    ids = [t.id for t in store.trials(study)]
    store.start_trials(ids, device="cpu", torch_version="test")
    store.set_study_status(study, "running")
    for epoch in range(epochs):
        if epoch == die_at:  # die after the rows are written, before COMMIT
            store._put_weights = lambda db, pairs: os._exit(9)
        store.record_epoch([EpochRow(i, epoch, 1.0 / (epoch + 1), 2.0 / (epoch + 1), 0.5,
                                     weights=b"w" * 64) for i in ids])
        print(epoch, flush=True)
        time.sleep(pause)
    store.set_study_status(study, "completed")
"""

# Polls like the UI until the study completes; checks each trial's epochs arrive once, in order.
READER = """
import json, sys, time
from engine.store import Store
path, study, reopen = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "reopen"
seen, polls, fresh, cursor = {}, 0, 0, None
store = Store(path, readonly=True)
deadline = time.time() + 60
while time.time() < deadline:
    if reopen:  # like `hp-tui show` run again and again, opening a writable store each time
        store.close()
        store = Store(path, create=False)
    status = store.study(study).status
    store.trials(study)
    delta = store.metrics_since(study, cursor)
    cursor = delta.cursor
    assert not delta.full or polls == 0, "unexpected full refresh"
    for trial, rows in delta.rows.items():
        for epoch, *_ in rows:
            assert epoch == len(seen.setdefault(trial, [])), (trial, epoch, seen[trial][-3:])
            seen[trial].append(epoch)
    polls += 1
    fresh += bool(delta.rows)
    if status == "completed":
        break
    time.sleep(0.005)
store.close()
print(json.dumps({"polls": polls, "fresh": fresh, "epochs": {k: len(v) for k, v in seen.items()}}))
"""


def spawn(script: str, *args: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def new_study(path: Path) -> int:
    with Store(path) as store:
        return store.create_study(
            name=None, preset_name="p", preset_path=None, preset_text="", strategy="single",
            seed=0, baseline={}, spec={}, device="cpu",
            trials=[({"lr": 0.1}, i, i) for i in range(TRIALS)])


def committed_epochs(path: Path, study: int) -> int:
    """How many whole epochs the store holds, after checking no epoch is partial."""
    with Store(path, create=False) as store:
        assert store._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        trials = store.trials(study)
        metrics = store.metrics([t.id for t in trials])
        counts = {len(rows) for rows in metrics.values()}
        assert len(counts) == 1, f"a partial epoch: trials hold {sorted(counts)} epochs"
        [count] = counts
        for t in trials:
            assert [m[0] for m in metrics[t.id]] == list(range(count))
            assert t.epochs_done == count
        weights = store._db.execute("SELECT count(*) FROM weights").fetchone()[0]
        assert weights == (TRIALS if count else 0)  # written in the epochs' transactions
        return count


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_writer_and_polling_readers_never_see_a_locked_store(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    study = new_study(path)
    readers = [spawn(READER, path, study, "keep"), spawn(READER, path, study, "reopen")]
    writer = spawn(WRITER, path, study, 400, -1, 0.004)  # about 2 s of epochs
    out, err = writer.communicate(timeout=90)
    assert writer.returncode == 0, err
    assert out.split() == [str(e) for e in range(400)]
    for reader in readers:
        r_out, r_err = reader.communicate(timeout=90)
        assert reader.returncode == 0, r_err
        assert "locked" not in r_err
        report = json.loads(r_out)
        assert report["fresh"] >= 3, report  # it saw the study progress, poll after poll
        assert report["epochs"] == {str(i): 400 for i in range(1, TRIALS + 1)}
    assert committed_epochs(path, study) == 400


@pytest.mark.timeout(120)
def test_sigkill_keeps_every_committed_epoch(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    study = new_study(path)
    writer = spawn(WRITER, path, study, 100_000, -1, 0)
    assert writer.stdout is not None
    printed = -1
    for line in writer.stdout:  # each printed epoch is committed
        printed = int(line)
        if printed >= 30:
            break
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    assert printed >= 30, writer.stderr.read() if writer.stderr else ""
    assert committed_epochs(path, study) >= printed + 1
    with Store(path, create=False) as store:  # the dead writer left zombies: resume resets them
        assert store.study(study).status == "running"
        assert len(store.reset_unfinished(study)) == TRIALS
        assert committed_epochs(path, study) == 0


@pytest.mark.timeout(120)
def test_exit_inside_a_transaction_leaves_no_trace_of_it(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    study = new_study(path)
    writer = spawn(WRITER, path, study, 100, 7, 0)
    out, err = writer.communicate(timeout=90)
    assert writer.returncode == 9, err
    assert out.split() == [str(e) for e in range(7)]
    assert committed_epochs(path, study) == 7  # epoch 7 was written but never committed
    with Store(path, create=False) as store:
        assert all(t.epochs_done == 7 and t.status == "running" for t in store.trials(study))
