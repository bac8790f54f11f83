"""tpe studies trained: the runner adds batches until the budget, the same seed reaches the
same trials, and a study killed mid-batch or between batches resumes to the uninterrupted
result."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from engine.presets import parse_preset
from engine.run import RunnerOptions
from engine.spec import replicate_seed
from engine.store import FinishRow, Store
from tests.cli_helpers import hp, wait_for
from tests.test_tpe import TPE
from tui import services as actions

pytest.importorskip("optuna")


def train(store: Store, study_id: int) -> int:
    from engine.run.local import LocalExecutor
    from engine.run.runner import StopFlag, run_study

    return run_study(store, study_id, RunnerOptions(device="cpu"), 1, StopFlag(),
                     executor=LocalExecutor(1))


def _trials(store: Store, sid: int) -> list[tuple]:
    return [(t.number, t.seed, t.replicate, json.dumps(t.config, sort_keys=True), t.status,
             t.val_acc) for t in store.trials(sid)]


def test_the_runner_adds_batches_until_the_budget(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        sid = actions.create_study(store, parse_preset(TPE), device="cpu")
        assert len(store.trials(sid)) == 4  # batch 1: 2 configurations x 2 seeds
        assert train(store, sid) == 0
        trials = store.trials(sid)
        made = [r.to_dict() for r in store.rounds(sid)]
        assert store.study(sid).status == "completed"
        again = store  # the same preset and seed in a second study: the same trials
        sid2 = actions.create_study(again, parse_preset(TPE), device="cpu")
        assert train(again, sid2) == 0
        assert [t[1:] for t in _trials(again, sid2)] == [t[1:] for t in _trials(store, sid)]
    assert [(r["round"], r["seeds"], r["configs"], r["trials"]) for r in made] == [
        (1, 2, [0, 1], 0), (2, 2, [2, 3], 4), (3, 2, [4, 5], 4)]
    assert made[0]["reason"].startswith("batch 1 of 3: 2 configurations at random")
    assert made[2]["reason"].startswith("batch 3 of 3: 2 configurations asked of tpe after 4 "
                                        "trained (best ")
    assert [t.number for t in trials] == list(range(1, 13))
    assert all(t.status == "completed" for t in trials)
    assert all(t.seed == replicate_seed(0, t.replicate) for t in trials)
    configs = {json.dumps(t.config, sort_keys=True) for t in trials}
    assert len(configs) == 6  # samples distinct configurations, each with both seeds


def test_killed_between_two_batches_resumes_with_the_next_batch(tmp_path: Path) -> None:
    """Every trial of batch 1 finished, batch 2 not yet asked (the runner died in between):
    resuming asks it, as an uninterrupted runner would have."""
    with Store(tmp_path / "s.db") as store:
        sid = actions.create_study(store, parse_preset(TPE), device="cpu")
        store.finish_trials([FinishRow(t.id, "completed", None, None, 0.3, 0.3,
                                       0.6 + 0.01 * t.number, 2) for t in store.trials(sid)])
        assert train(store, sid) == 0
        assert len(store.trials(sid)) == 12 and len(store.rounds(sid)) == 3


SLOW_TPE = TPE.replace("train_size = 200", "train_size = 400").replace(
    "epochs = 2", "epochs = 150").replace("seeds = 2", "seeds = 1")


@pytest.mark.slow
def test_killed_in_a_later_batch_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    preset = tmp_path / "slow_tpe.toml"
    preset.write_text(SLOW_TPE)
    (tmp_path / "st").mkdir()
    store = tmp_path / "st" / "store.db"
    assert hp("run", str(preset), "--detach", "--workers", "1", store=store).code == 0

    def in_batch_2() -> int | None:
        if not store.exists():
            return None
        with Store(store) as s:
            lease = s.lease(1)
            return lease["pid"] if lease and len(s.rounds(1)) >= 2 else None

    pid = int(wait_for(in_batch_2, timeout=240, every=0.02))
    os.kill(pid, signal.SIGKILL)
    with Store(store) as s:
        killed = _trials(s, 1)
    assert len(killed) >= 4 and any(t[4] != "completed" for t in killed), killed
    r = hp("resume", "1", "--json", "--workers", "1", store=store, timeout=300)
    assert r.code == 0, r.err
    resumed = r.json()
    assert resumed["status"] == "completed" and [x["round"] for x in resumed["rounds"]] == [1, 2, 3]
    fresh = tmp_path / "st" / "fresh.db"
    clean = hp("run", str(preset), "--json", "--workers", "1", store=fresh, timeout=300)
    assert clean.code == 0, clean.err
    with Store(store) as a, Store(fresh) as b:
        assert _trials(a, 1) == _trials(b, 1)
    assert [(x["round"], x["configs"], x["reason"]) for x in resumed["rounds"]] == \
        [(x["round"], x["configs"], x["reason"]) for x in clean.json()["rounds"]]
    assert {"rounds", "trials", "impact", "strategy"} <= set(resumed)


@pytest.mark.slow
def test_benchmark_smoke() -> None:
    """benchmarks/bench_tpe.py --quick runs both strategies and prints the ratio."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, str(root / "benchmarks" / "bench_tpe.py"), "--quick"],
                         capture_output=True, text=True, timeout=240, cwd=root)
    assert out.returncode == 0, out.stderr
    assert "mean best validation accuracy" in out.stdout and "ratio (tpe / random)" in out.stdout
