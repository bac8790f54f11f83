"""Persistent worker processes: in-process numbers, streamed epochs, no hangs, no orphans."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from engine.run.pool import WorkerCrashed, WorkerPool, train_parallel
from engine.spec.config import DataConfig, TrialConfig
from engine.train import Stopped, Trial, load_splits, train_population

pytestmark = pytest.mark.numerics

DATA = DataConfig(train_size=200, val_size=100)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def splits():
    return load_splits(DATA)


def trials(n: int, epochs: int = 2) -> list[Trial]:
    widths = ((10,), (4,), (6, 3), (40,))
    return [Trial(TrialConfig(data=DATA, hidden=widths[k % 4], lr=0.05, epochs=epochs), k)
            for k in range(n)]


@pytest.fixture(scope="module")
def pool():
    with WorkerPool(2) as p:
        yield p


def test_pool_equals_in_process(splits, pool):
    ts = trials(9)
    calls: list[list[tuple[int, object, str]]] = []
    parallel = pool.train(ts, splits, on_epoch=calls.append, compile=False)
    local = train_population(ts, splits, compile=False)
    for a, b in zip(parallel, local, strict=True):
        assert a.status == b.status == "completed"
        assert a.history == b.history
        for (wa, ba), (wb, bb) in zip(a.weights, b.weights, strict=True):
            assert torch.equal(wa, wb) and torch.equal(ba, bb)
    # every trial reported in every epoch, in this process, with indices into `ts`
    seen = sorted((i, s) for call in calls for i, _, s in call)
    assert seen == sorted([(i, "running") for i in range(9)] + [(i, "completed") for i in range(9)])


def test_pool_is_reusable_and_splits_work(splits, pool):
    assert pool.workers == 2
    assert len(pool.train(trials(1), splits, compile=False)) == 1  # one worker idle
    assert len(pool.train(trials(4), splits, "cpu", compile=False)) == 4


def test_train_parallel_one_shot(splits):
    out = train_parallel(trials(3), splits, workers=2, compile=False)
    assert [o.status for o in out] == ["completed"] * 3


def test_spawned_workers(splits):
    """The start method used for GPUs (CUDA cannot be forked), tried on the CPU."""
    with WorkerPool(2, start_method="spawn") as p:
        out = p.train(trials(3), splits, compile=False)
    local = train_population(trials(3), splits, compile=False)
    assert [o.history for o in out] == [o.history for o in local]


def test_stop_raises_stopped(splits):
    with WorkerPool(2) as p:
        started = time.monotonic()
        with pytest.raises(Stopped):
            # 500 epochs: several seconds of training, so that the stop lands mid-way
            p.train(trials(6, epochs=500), splits, should_stop=lambda: time.monotonic() > started
                    + 0.3, compile=False)
        assert time.monotonic() - started < 5
        # the pool still works after a stop
        assert len(p.train(trials(2), splits, compile=False)) == 2


def test_worker_exception_surfaces(splits):
    bad = [Trial(TrialConfig(data=DATA, activation="bogus", epochs=1), 0), *trials(1)]
    with WorkerPool(2) as p, pytest.raises(WorkerCrashed, match="unknown activation"):
        p.train(bad, splits, compile=False)


def test_killed_worker_surfaces_not_hangs(splits):
    with WorkerPool(2) as p:
        pids = [proc.pid for proc in p._procs]

        def kill_one(_report: object) -> None:
            with_pid = pids[0]
            if with_pid is not None:
                os.kill(with_pid, signal.SIGKILL)

        started = time.monotonic()
        with pytest.raises(WorkerCrashed, match="died"):
            p.train(trials(6, epochs=200), splits, on_epoch=kill_one, compile=False)
        assert time.monotonic() - started < 30
        with pytest.raises(WorkerCrashed, match="broken"):
            p.train(trials(2), splits, compile=False)


def test_workers_die_with_the_parent(tmp_path):
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from engine.run.pool import WorkerPool
        pool = WorkerPool(2)
        print(" ".join(str(p.pid) for p in pool._procs), flush=True)
        time.sleep(60)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    pids = [int(p) for p in parent.stdout.readline().split()]
    assert len(pids) == 2 and all(_alive(p) for p in pids)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in pids)


def _alive(pid: int) -> bool:
    """Running (a zombie that the init process has not reaped yet counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
