"""The ray executor in-process, against a private 2-CPU Ray instance: the same numbers as the local
executor, a killed task rerun without duplicate epochs, cancellation that ends the tasks."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")

from engine.run.executors import ExecutorError
from engine.run.local import LocalExecutor
from engine.run.ray_cluster import MAX_ATTEMPTS, PopulationsFailed, RayExecutor
from engine.spec.config import DataConfig, TrialConfig
from engine.train import Stopped, Trial, load_splits
from tests.proc_helpers import population_pids
from tests.ray_helpers import CPU, Recorder, assert_same, run

DATA = DataConfig(train_size=200, val_size=100)
pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def executor():
    ex = RayExecutor("local", cpus=2)
    yield ex
    ex.close()
    assert not ray.is_initialized()


@pytest.fixture(scope="module")
def splits():
    return load_splits(DATA)


def mixed_trials(epochs: int = 3) -> list[Trial]:
    """Several populations: two depths, two batch sizes, two optimizers, two seeds each."""
    shapes = [dict(hidden=(10,)), dict(hidden=(8, 4)), dict(hidden=(10,), batch_size=64),
              dict(hidden=(10,), optimizer="adam", lr=0.01)]
    return [Trial(TrialConfig(data=DATA, epochs=epochs, **shape), seed)  # type: ignore[arg-type]
            for shape in shapes for seed in (1, 2)]


def test_results_equal_the_local_executor(executor, splits):
    trials = mixed_trials()
    local = LocalExecutor(2)
    try:
        expected = run(local, trials, splits)
    finally:
        local.close()
    assert_same(run(executor, trials, splits), expected, len(trials))


def test_device_is_the_clusters(executor):
    assert executor.resolve_device("auto") == CPU
    assert executor.resolve_device("cpu") == CPU
    with pytest.raises(ExecutorError, match="has no GPU"):
        executor.resolve_device("cuda")
    with pytest.raises(ExecutorError, match="use --device cuda"):
        executor.resolve_device("cuda:1")
    assert executor.label(CPU) == "ray:cpu"
    assert "2 CPUs" in executor.describe()


def test_killed_task_is_rerun_and_trials_keep_one_history(executor, splits, caplog):
    # one long population (killed as soon as it reports) and one short one
    trials = [Trial(TrialConfig(data=DataConfig(train_size=200, val_size=100), epochs=150,
                                batch_size=8), seed) for seed in (1, 2)]
    trials += [Trial(TrialConfig(data=DATA, hidden=(6, 3), epochs=3), 3)]
    expected = run(LocalExecutor(1), trials, splits)
    killed: list[int] = []
    rec = Recorder()

    def on_epoch(report: list[tuple[int, Any, str]]) -> None:
        rec.on_epoch(report)
        if not killed and any(i == 0 for i, _, _ in report):
            victims = population_pids()
            assert victims, "no Ray worker is running a population"
            for pid in victims:
                os.kill(pid, signal.SIGKILL)  # as the OOM killer or a dying node would
            killed.extend(victims)

    with caplog.at_level(logging.WARNING, logger="hp-tui.ray"):
        executor.train(trials, splits, CPU, on_epoch, lambda: False, rec.on_done)
    assert killed
    assert "rerunning it, attempt 2" in caplog.text
    # every epoch once, numbers as if nothing had happened
    assert_same(rec, expected, len(trials))


def test_stop_cancels_the_tasks(executor, splits):
    trials = [Trial(TrialConfig(data=DATA, epochs=2000, batch_size=8), seed) for seed in (1, 2)]
    seen: list[int] = []
    rec = Recorder()

    def on_epoch(report: list[tuple[int, Any, str]]) -> None:
        rec.on_epoch(report)
        if not seen:
            seen.extend(population_pids())

    with pytest.raises(Stopped):
        executor.train(trials, splits, CPU, on_epoch, lambda: bool(seen), rec.on_done)
    assert seen and not rec.outcomes
    deadline = time.monotonic() + 20
    while any(pid in population_pids() for pid in seen) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(pid in population_pids() for pid in seen), "a cancelled task still runs"


def test_a_raising_trainer_is_not_rerun(executor, splits, caplog):
    broken = splits.__class__(train=splits.train, val=None)  # the trainer fails on validation
    trials = mixed_trials(epochs=1)[:2]
    with caplog.at_level(logging.WARNING, logger="hp-tui.ray"), \
            pytest.raises(PopulationsFailed, match="raised"):
        run(executor, trials, broken)
    assert "rerunning" not in caplog.text
    assert MAX_ATTEMPTS > 1


def test_benchmark_smoke():
    """benchmarks/bench_ray.py --quick runs, and finds both executors' numbers identical."""
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, str(root / "benchmarks" / "bench_ray.py"), "--quick"],
                         capture_output=True, text=True, timeout=240, cwd=root)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "identical results on both executors: yes" in out.stdout
    assert "ms/p" in out.stdout
