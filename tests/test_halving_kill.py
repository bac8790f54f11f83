"""Successive halving survives a SIGKILL: a runner killed after a rung, resumed, ends with the
same pruned and completed trials, the same numbers, as a study never interrupted."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from engine.store import Store
from tests.cli_helpers import hp, wait_for

PRESET = """\
name = "halving-kill"
description = "Halving with rungs early and a long tail, so that a kill lands after a rung."
[data]
train_size = 400
val_size = 100
test_size = 100
[train]
epochs = 162
[study]
strategy = "random"
samples = 9
seeds = 2
pruner = "halving"
[study.vary]
lr = { min = 0.001, max = 0.5, log = true }
"""


def _trials(store: Path) -> dict[int, tuple]:
    with Store(store) as s:
        return {t.number: (t.status, t.epochs_done, t.val_acc) for t in s.trials(1)}


def _runner_pid(store: Path) -> int:
    def holder() -> int | None:
        if not store.exists():
            return None
        with Store(store) as s:
            lease = s.lease(1)
            return lease["pid"] if lease else None

    return int(wait_for(holder, timeout=60))


@pytest.mark.slow
def test_a_halving_study_killed_after_a_rung_resumes_to_the_uninterrupted_result(
        tmp_path: Path) -> None:
    preset = tmp_path / "halving-kill.toml"
    preset.write_text(PRESET)
    store = tmp_path / "st" / "store.db"
    store.parent.mkdir()
    assert hp("run", str(preset), "--detach", "--workers", "1", store=store).code == 0
    pid = _runner_pid(store)
    wait_for(lambda: any(s == "pruned" for s, _, _ in _trials(store).values()), timeout=120)
    os.kill(pid, signal.SIGKILL)
    before = _trials(store)
    assert any(s == "running" for s, _, _ in before.values()), "the kill should land mid-study"
    pruned_before = {n: v for n, v in before.items() if v[0] == "pruned"}
    r = hp("resume", "1", "--json", "--workers", "1", store=store, timeout=300)
    assert r.code == 0, r.err
    after = _trials(store)
    for number, values in pruned_before.items():
        assert after[number] == values, f"pruned trial {number} changed after resume"
    fresh = tmp_path / "fresh.db"
    assert hp("run", str(preset), "--json", "--workers", "1", store=fresh).code == 0
    assert _trials(fresh) == after  # statuses, epochs trained and accuracies: all the same
    statuses = [s for s, _, _ in after.values()]
    assert "completed" in statuses and "pruned" in statuses and "running" not in statuses
