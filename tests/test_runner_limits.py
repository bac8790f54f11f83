"""What keeps a runner within its machine and its views honest: a study that cannot fit memory is
refused before anything starts (engine.run.memory), SIGTERM stops a runner within a second or two,
and a runner killed outright shows as interrupted in every view."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from textual.widgets import DataTable

from engine.presets import parse_preset
from engine.run import memory
from engine.spec import pid_alive
from engine.spec.config import TrialConfig
from engine.store import Store
from tests.app_helpers import SIZE, column, run, until
from tests.cli_helpers import ROOT, hp, wait_for
from tui import services as actions
from tui.app import HpTuiApp
from tui.screens.form import FormScreen
from tui.screens.presets import PresetsScreen

# ~4.7 TB: every trial's final weights alone (10,000 trials of 117 M parameters) are 4.7 TB.
HUGE = """\
name = "huge"
description = "Far beyond any machine's memory: refused before anything is allocated."
[data]
train_size = 10000000
[model]
hidden = [4096, 4096, 4096, 4096, 4096, 4096, 4096, 4096]
[study]
strategy = "grid"
seeds = 1000
[study.vary]
lr = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]
"""

# Two trials whose one epoch takes ~4 s, nearly all of it validating a wide network on many
# points (where a stop used to wait for the whole validation); ~300 MB.
SLOW_EPOCH = """\
name = "slow-epoch"
description = "one long epoch"
[data]
train_size = 1000
val_size = 150000
[model]
hidden = [512]
[train]
batch_size = 100
epochs = 1
[study]
strategy = "single"
seeds = 2
"""


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    (tmp_path / "st").mkdir()
    return tmp_path / "st" / "store.db"


def _preset(tmp_path: Path, text: str, name: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


# --- the memory estimate -----------------------------------------------------------------------


def test_the_estimate_uses_the_trainers_own_constants() -> None:
    from engine.run import pool as parallel
    from engine.train import data, population

    assert (memory.LANES, memory.WIDE_QUANTUM, memory.NARROW_MAX, memory.SHALLOW_NARROW_MAX,
            memory.POP_STATE_BYTES, memory.EPOCH_DATA_BYTES) == (
        population.LANES, population.WIDE_QUANTUM, population.NARROW_MAX,
        population.SHALLOW_NARROW_MAX, population.POP_STATE_BYTES, population.EPOCH_DATA_BYTES)
    assert memory.SPLIT_MIN_TRIALS == parallel.SPLIT_MIN_TRIALS
    assert data._synthetic_splits.cache_info().maxsize == memory.DATA_CACHE


MEASURE = """
import json, resource, sys
from engine.spec.config import TrialConfig
from engine.train import Trial, load_splits, train_population

config, n = TrialConfig.from_dict(json.loads(sys.argv[1])), int(sys.argv[2])
splits = load_splits(config.data)
train_population([Trial(config, seed) for seed in range(n)], splits, compile=False)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"peak": peak}))
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads /proc")
@pytest.mark.parametrize(("sections", "trials"), [
    # wide, Adam: parameters, gradients and optimizer state dominate (~180 MB)
    ({"data": {"train_size": 2000, "val_size": 200}, "model": {"hidden": [256, 256]},
      "train": {"optimizer": "adam", "batch_size": 200, "epochs": 1}}, 32),
    # narrow, many points: the per-epoch shuffles and gathered batches dominate (~360 MB)
    ({"data": {"train_size": 200000, "val_size": 200}, "model": {"hidden": [8]},
      "train": {"batch_size": 2000, "epochs": 1}}, 64),
], ids=["wide-adam", "narrow-shuffles"])
def test_the_estimate_is_within_2x_of_a_measured_peak(sections: dict, trials: int) -> None:
    proc = subprocess.run([sys.executable, "-c", MEASURE, json.dumps(sections), str(trials)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    measured = json.loads(proc.stdout)
    est = memory.estimate([TrialConfig.from_dict(sections)] * trials, workers=1)
    # The whole peak, not peak minus the start: what the libraries load lazily while training
    # (MKL's kernels for this CPU, a few hundred MB on some) differs from machine to machine.
    assert 0.5 <= measured["peak"] / est.total <= 2.0, (measured, est)


def test_available_memory_reads_meminfo_and_the_cgroup_limit(tmp_path: Path) -> None:
    meminfo, root, own = tmp_path / "meminfo", tmp_path / "cgroup", tmp_path / "self-cgroup"
    meminfo.write_text("MemTotal:       24000000 kB\nMemAvailable:   8000000 kB\n")
    assert memory.available_bytes(meminfo, root, own) == 8000000 * 1024
    # cgroup v2: the container's limit leaves 2 GB
    own.write_text("0::/box\n")
    (root / "box").mkdir(parents=True)
    (root / "box" / "memory.max").write_text("max\n")  # no limit
    (root / "box" / "memory.current").write_text("100\n")
    assert memory.available_bytes(meminfo, root, own) == 8000000 * 1024
    (root / "box" / "memory.max").write_text(f"{3 << 30}\n")
    (root / "box" / "memory.current").write_text(f"{1 << 30}\n")
    assert memory.available_bytes(meminfo, root, own) == 2 << 30
    # cgroup v1, whose "no limit" is a huge number
    own.write_text("4:memory:/v1box\n")
    (root / "memory" / "v1box").mkdir(parents=True)
    (root / "memory" / "v1box" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    (root / "memory" / "v1box" / "memory.usage_in_bytes").write_text("5\n")
    assert memory.available_bytes(meminfo, root, own) == 8000000 * 1024
    (root / "memory" / "v1box" / "memory.limit_in_bytes").write_text(f"{1 << 30}\n")
    assert memory.available_bytes(meminfo, root, own) == (1 << 30) - 5
    absent = tmp_path / "absent"
    assert memory.available_bytes(absent, absent, absent) is None


def test_the_refusal_compares_the_estimate_with_what_is_available() -> None:
    config = TrialConfig(hidden=(4096,) * 8)
    assert memory.refusal([config] * 64, 2, available=1 << 30) is not None
    assert memory.refusal([TrialConfig()] * 4, 2, available=1 << 30) is None


def test_run_refuses_a_study_that_cannot_fit_before_writing_it(store_path: Path,
                                                               tmp_path: Path) -> None:
    preset = _preset(tmp_path, HUGE, "huge")
    started = time.monotonic()
    r = hp("run", str(preset), "--workers", "2", store=store_path, timeout=60)
    assert r.code == 3, r.err
    assert "memory" in r.err and "TB" in r.err and "--ignore-memory" in r.err
    assert time.monotonic() - started < 30  # refused from the plan, nothing allocated
    assert hp("studies", "--json", store=store_path).json() == []
    assert not (store_path.parent / "logs" / store_path.name / "study-1.log").exists()
    # --ignore-memory skips the check: this run gets past it and is refused later, for its name
    # (a number), so the huge study is never started
    past = hp("run", str(preset), "--workers", "2", "--ignore-memory", "--name", "42",
              store=store_path, timeout=60)
    assert past.code == 3 and "plain numbers" in past.err and "memory" not in past.err


def test_resume_refuses_a_study_that_cannot_fit(store_path: Path, tmp_path: Path) -> None:
    path = _preset(tmp_path, HUGE, "huge")
    with Store(store_path) as s:
        study_id = actions.create_study(s, parse_preset(HUGE, str(path)))
    r = hp("resume", str(study_id), store=store_path, timeout=60)
    assert r.code == 3 and "--ignore-memory" in r.err, r.err
    with Store(store_path) as s:
        assert s.lease(study_id) is None and s.study(study_id).status == "pending"


def test_the_app_refuses_to_launch_a_study_that_cannot_fit(tmp_path: Path) -> None:
    path = _preset(tmp_path, HUGE, "huge")
    preset = parse_preset(HUGE, str(path))

    async def go() -> list[str]:
        with Store(tmp_path / "s.db") as store:
            app = HpTuiApp(store=store)
            async with app.run_test(size=SIZE) as pilot:
                app.push_screen(FormScreen(preset))
                await pilot.pause()
                await pilot.press("ctrl+l")
                await until(pilot, lambda: any("memory" in n.message
                                               for n in app._notifications))
                assert isinstance(app.screen, FormScreen)  # still on the form
                assert store.studies() == []
                return [n.message for n in app._notifications]

    shown = run(go())
    assert any("not launched" in m and "TB" in m for m in shown), shown


# --- stopping a runner -------------------------------------------------------------------------


def test_a_worker_deaf_to_a_stop_is_killed_and_the_pool_starts_fresh_ones(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker inside something with no stop check (an Inductor compile) must not hold a stop
    up: the pool kills it within STOP_GRACE_S and trains the next call on new workers."""
    from engine.run import pool as parallel
    from engine.spec.config import DataConfig
    from engine.train import Stopped, Trial, load_splits

    real = parallel.train_population

    def deaf_for_seven_epochs(trials: list, splits: object, **kwargs: object) -> object:
        if trials[0].config.epochs == 7:
            time.sleep(60)  # never looks at should_stop
        return real(trials, splits, **kwargs)

    monkeypatch.setattr(parallel, "train_population", deaf_for_seven_epochs)  # forked workers
    data = DataConfig(train_size=100, val_size=50)
    splits = load_splits(data)
    deaf = [Trial(TrialConfig(data=data, hidden=(4,), epochs=7), k) for k in range(2)]
    with parallel.WorkerPool(2) as pool:
        first = pool._procs[:]
        started = time.monotonic()
        with pytest.raises(Stopped):
            pool.train(deaf, splits, should_stop=lambda: time.monotonic() > started + 0.2,
                       compile=False)
        assert time.monotonic() - started < 0.2 + parallel.STOP_GRACE_S + 1.5
        assert not any(p.is_alive() for p in first)
        fresh = [Trial(TrialConfig(data=data, hidden=(4,), epochs=1), k) for k in range(2)]
        outcomes = pool.train(fresh, splits, compile=False)
        assert [o.status for o in outcomes] == ["completed", "completed"]
        assert not set(pool._procs) & set(first)


def _start_slow(store_path: Path, tmp_path: Path, workers: int) -> int:
    """Start the slow-epoch study detached; return its runner's pid once it trains."""
    preset = _preset(tmp_path, SLOW_EPOCH, "slow")
    r = hp("run", str(preset), "--detach", "--workers", str(workers), store=store_path)
    assert r.code == 0, r.err

    def training() -> int | None:
        with Store(store_path, readonly=True) as s:
            lease = s.lease(1)
            running = [t for t in s.trials(1) if t.status == "running"]
        return int(lease["pid"]) if lease and lease["alive"] and running else None

    pid = wait_for(training, timeout=60)
    time.sleep(0.5)  # into the epoch's validation (in a forked worker too)
    return pid


def _kill_if_alive(pid: int) -> None:
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2], ids=["in-process", "worker-pool"])
def test_sigterm_stops_a_training_runner_within_seconds(store_path: Path, tmp_path: Path,
                                                        workers: int) -> None:
    pid = _start_slow(store_path, tmp_path, workers)
    try:
        os.kill(pid, signal.SIGTERM)
        sent = time.monotonic()
        wait_for(lambda: not pid_alive(pid), timeout=30)
        assert time.monotonic() - sent < 3.0
    finally:
        _kill_if_alive(pid)
    shown = hp("show", "1", "--json", store=store_path).json()
    assert shown["status"] == "interrupted" and shown["runner"] is None
    assert {t["status"] for t in shown["trials"]} == {"interrupted"}
    with Store(store_path, readonly=True) as s:
        assert s.lease(1) is None, "the runner released its lease"
    done = hp("resume", "1", "--json", "--workers", str(workers), store=store_path, timeout=120)
    assert done.code == 0, done.err
    data = done.json()
    assert data["status"] == "completed"
    assert [t["status"] for t in data["trials"]] == ["completed", "completed"]


@pytest.mark.slow
def test_a_killed_runner_shows_as_interrupted_in_every_view(store_path: Path,
                                                           tmp_path: Path) -> None:
    pid = _start_slow(store_path, tmp_path, 1)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid), timeout=10)
    with Store(store_path, readonly=True) as s:
        assert s.study(1).status == "running"  # what the runner left: it never wrote its end
    [listed] = hp("studies", "--json", store=store_path).json()
    assert (listed["status"], listed["runner"]) == ("interrupted", "gone")
    table = hp("studies", store=store_path).out  # the status column may wrap
    assert "interrupted" in table and "runner" in table and "gone)" in table
    shown = hp("show", "1", "--json", store=store_path).json()
    assert (shown["status"], shown["runner"]) == ("interrupted", "gone")
    assert "interrupted (runner gone)" in hp("show", "1", store=store_path).out

    async def go() -> str:
        with Store(store_path) as store:
            app = HpTuiApp(store=store)
            async with app.run_test(size=SIZE) as pilot:
                assert isinstance(app.screen, PresetsScreen)
                studies = app.screen.query_one("#studies", DataTable)
                await until(pilot, lambda: studies.row_count == 1)
                return column(studies, 3)[0]

    assert "interrupted" in run(go())
