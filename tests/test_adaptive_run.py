"""Adaptive studies end to end: the runner's rounds (in process, with decisions chosen by the
test), and a study killed in a later round that resumes to the uninterrupted result."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from engine.presets import parse_preset
from engine.run import RunnerOptions
from engine.spec import replicate_seed
from engine.store import Store
from engine.study import rounds
from tests.cli_helpers import hp, wait_for
from tui import services as actions

AUTO_TINY = """\
name = "auto-tiny"
[data]
train_size = 200
val_size = 100
test_size = 100
[train]
epochs = 2
[study]
strategy = "sensitivity"
seeds = "auto"
min_seeds = 1
max_seeds = 4
[study.vary]
lr = [0.01, 0.1]
hidden = [[10], [5]]
"""


def train(store: Store, study_id: int) -> int:
    from engine.run.local import LocalExecutor
    from engine.run.runner import StopFlag, run_study

    return run_study(store, study_id, RunnerOptions(device="cpu"), 1, StopFlag(),
                     executor=LocalExecutor(1))


def decided(verdicts: dict[str, str]) -> Any:
    return lambda row: verdicts.get(row.param, "undecided")


def test_rounds_extend_only_the_undecided_rows(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rounds, "decision", decided({"hidden": "matters"}))
    with Store(tmp_path / "s.db") as store:
        sid = actions.create_study(store, parse_preset(AUTO_TINY), device="cpu")
        assert len(store.trials(sid)) == 3  # baseline, lr 0.1, hidden [5]: 1 seed each
        assert train(store, sid) == 0
        trials = store.trials(sid)
        made = [r.to_dict() for r in store.rounds(sid)]
    assert [(r["round"], r["seeds"], r["configs"], r["trials"]) for r in made] == [
        (1, 1, [0, 1, 2], 0), (2, 2, [0, 1], 2), (3, 4, [0, 1], 4)]
    assert made[1]["reason"] == "round 2: 2 configurations still undecided (lr)"
    assert [t.number for t in trials] == list(range(1, 10))
    assert all(t.status == "completed" for t in trials)
    lrs = [(t.config["train"]["lr"], t.config["model"]["hidden"], t.replicate) for t in trials]
    assert lrs[3:] == [(0.01, [10], 1), (0.1, [10], 1),
                       (0.01, [10], 2), (0.01, [10], 3), (0.1, [10], 2), (0.1, [10], 3)]
    assert all(t.seed == replicate_seed(0, t.replicate) for t in trials)


def test_every_row_decided_ends_after_the_first_round(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rounds, "decision", decided({"hidden": "matters", "lr": "negligible"}))
    with Store(tmp_path / "s.db") as store:
        sid = actions.create_study(store, parse_preset(AUTO_TINY), device="cpu")
        assert train(store, sid) == 0
        assert len(store.trials(sid)) == 3 and len(store.rounds(sid)) == 1
        assert store.study(sid).status == "completed"


SLOW_AUTO = """\
name = "slow-auto"
[data]
train_size = 400
val_size = 100
test_size = 100
[train]
epochs = 150
[study]
strategy = "sensitivity"
seeds = "auto"
min_seeds = 1
max_seeds = 4
[study.vary]
lr = [0.05]
"""


def _trials(store_path: Path) -> list[tuple]:
    with Store(store_path) as s:
        return [(t.number, t.seed, t.replicate, t.config, t.status, t.val_acc)
                for t in s.trials(1)]


@pytest.mark.slow
def test_killed_in_a_later_round_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    preset = tmp_path / "slow_auto.toml"
    preset.write_text(SLOW_AUTO)
    (tmp_path / "st").mkdir()
    store = tmp_path / "st" / "store.db"
    assert hp("run", str(preset), "--detach", "--workers", "1", store=store).code == 0

    def in_round_3() -> int | None:
        if not store.exists():
            return None
        with Store(store) as s:
            lease = s.lease(1)
            return lease["pid"] if lease and len(s.rounds(1)) >= 3 else None

    pid = int(wait_for(in_round_3, timeout=240, every=0.02))
    os.kill(pid, signal.SIGKILL)
    killed = _trials(store)
    assert len(killed) == 8 and any(t[4] != "completed" for t in killed[4:]), killed
    r = hp("resume", "1", "--json", "--workers", "1", store=store, timeout=300)
    assert r.code == 0, r.err
    resumed = r.json()
    assert resumed["status"] == "completed"
    assert [x["round"] for x in resumed["rounds"]] == [1, 2, 3]
    fresh = tmp_path / "st" / "fresh.db"
    clean = hp("run", str(preset), "--json", "--workers", "1", store=fresh, timeout=300)
    assert clean.code == 0, clean.err
    assert _trials(store) == _trials(fresh)
    assert [(x["round"], x["seeds"], x["configs"], x["reason"]) for x in resumed["rounds"]] == \
        [(x["round"], x["seeds"], x["configs"], x["reason"]) for x in clean.json()["rounds"]]


@pytest.mark.slow
def test_killed_between_two_rounds_resumes_with_the_next_round(tmp_path: Path) -> None:
    """Every trial of round 1 finished, the next round not yet recorded (the runner died in
    between): `resume` goes on with that round rather than saying there is nothing to do."""
    from engine.store import FinishRow

    store_path = tmp_path / "s.db"
    with Store(store_path) as store:
        sid = actions.create_study(store, parse_preset(AUTO_TINY), device="cpu")
        store.finish_trials([FinishRow(t.id, "completed", None, None, 0.3, 0.3,
                                       0.6 + 0.01 * t.number, 2)
                             for t in store.trials(sid)])
    r = hp("resume", str(sid), "--json", "--workers", "1", store=store_path, timeout=300)
    assert r.code == 0, r.err
    assert "nothing to resume" not in r.err and "resuming with round 2" in r.err
    data = r.json()
    assert data["status"] == "completed" and len(data["trials"]) > 3
    assert [x["round"] for x in data["rounds"]][:2] == [1, 2]


def test_cost_gives_the_range_for_auto() -> None:
    cost = actions.cost(parse_preset(AUTO_TINY))
    assert (cost.trials, cost.trials_max) == (3, 12)
    assert cost.seconds_max is not None and cost.seconds_max >= cost.seconds
    assert cost.line().startswith("sensitivity: 3-12 trials, ETA ~") and "seeds auto" in cost.line()
    fixed = actions.cost(parse_preset(AUTO_TINY.replace('seeds = "auto"', "seeds = 2")))
    assert fixed.trials_max is None and fixed.line().startswith("sensitivity: 6 trials, ETA ~")


def test_show_and_the_run_screen_say_which_round_and_why(tmp_path: Path) -> None:
    from tests.app_helpers import SIZE, run, text_of, until
    from tui import render
    from tui.app import HpTuiApp
    from tui.screens.run import RunScreen

    with Store(tmp_path / "s.db") as store:
        sid = actions.create_study(store, parse_preset(AUTO_TINY), device="cpu")
        store.add_round(sid, number=1, seeds=1, configs=[0, 1, 2], reason="round 1: start")
        cfg = store.trials(sid)[0].config
        store.add_round(sid, number=2, seeds=2, configs=[0],
                        trials=[(cfg, replicate_seed(0, 1), 1)],
                        reason="round 2: 1 configuration still undecided (lr)")
        data = report_dict(store, sid)
        assert [r["round"] for r in data["rounds"]] == [1, 2]
        assert render.rounds_lines(data)[-1] == (
            "round 2: 1 configuration still undecided (lr): 2 seeds, +1 trials")

        async def go() -> None:
            app = HpTuiApp(store=store)
            async with app.run_test(size=SIZE) as pilot:
                app.push_screen(RunScreen(sid))
                screen = app.screen
                assert isinstance(screen, RunScreen)
                await until(pilot, lambda: len(screen.trials) == 4
                            and screen.latest_round is not None)
                shown = " ".join(text_of(app, "#run-status").split())
                assert "round 2: 1 configuration still undecided (lr) (2 seeds)" in shown

        run(go())


def report_dict(store: Store, sid: int) -> dict[str, Any]:
    from engine.study import study_report

    return study_report(store, store.study(sid)).to_dict()
