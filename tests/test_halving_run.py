"""Halving studies through the runner and the store: statuses, configurations stopped together,
the same survivors' numbers as without a pruner, a stopped study that resumes to the
uninterrupted result, the report's JSON, the impact table and the vault."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.presets import parse_preset
from engine.run import RunnerOptions
from engine.spec import KEPT_ON_RESUME, TrialStatus
from engine.store import Store
from engine.study import report
from tui import services as actions

HALVING = """\
name = "halving-tiny"
[data]
train_size = 200
val_size = 100
test_size = 100
[train]
epochs = 9
[study]
strategy = "random"
samples = 9
seeds = 2
pruner = "{pruner}"
[study.vary]
lr = {{ min = 0.001, max = 0.5, log = true }}
optimizer = ["sgd", "adam"]
"""


def create(store: Store, pruner: str = "halving") -> int:
    return actions.create_study(store, parse_preset(HALVING.format(pruner=pruner)),
                                device="cpu")


def train(store: Store, study_id: int, stop: Any = None) -> int:
    from engine.run.local import LocalExecutor
    from engine.run.runner import StopFlag, run_study

    return run_study(store, study_id, RunnerOptions(device="cpu"), 1, stop or StopFlag(),
                     executor=LocalExecutor(1))


def facts(store: Store, study_id: int) -> list[tuple]:
    trials = store.trials(study_id)
    metrics = store.metrics(t.id for t in trials)
    return [(t.number, t.seed, t.status, t.epochs_done, t.val_acc, metrics[t.id])
            for t in trials]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int]:
    path = tmp_path_factory.mktemp("halving") / "store.db"
    with Store(path) as store:
        halved, full = create(store), create(store, "none")
        assert train(store, halved) == 0 and train(store, full) == 0
    return path, halved, full


def test_pruned_trials_stop_at_rungs_with_their_configuration(trained) -> None:
    path, halved, _ = trained
    with Store(path) as store:
        trials = store.trials(halved)
    by_config: dict[str, set[tuple[str, int]]] = {}
    for t in trials:
        by_config.setdefault(repr(t.config), set()).add((t.status, t.epochs_done))
    assert all(len(v) == 1 for v in by_config.values())  # the seeds went together
    ends = sorted(next(iter(v)) for v in by_config.values())
    # 9 configurations, rungs after epochs 1 and 3: 6 stop at 1, 2 at 3, 1 trains 9 epochs
    assert ends == [("completed", 9)] + [("pruned", 1)] * 6 + [("pruned", 3)] * 2
    assert TrialStatus.PRUNED in KEPT_ON_RESUME and TrialStatus.PRUNED.is_finished()


def test_survivors_train_as_without_a_pruner(trained) -> None:
    path, halved, full = trained
    with Store(path) as store:
        a, b = facts(store, halved), facts(store, full)
    for with_halving, without in zip(a, b, strict=True):
        number, seed, status, epochs, _, curve = with_halving
        assert (number, seed) == without[:2]
        assert curve == without[5][:epochs]  # bitwise: the same trial, fewer neighbours
        if status == "completed":
            assert with_halving[4] == without[4]


def test_show_json_says_what_halving_did(trained) -> None:
    path, halved, full = trained
    with Store(path) as store:
        data = report.study_dict(store, store.study(halved))
        plain = report.study_dict(store, store.study(full))
        counted = report.trial_results(store.trials(halved))
    assert data["pruner"] == "halving" and data["rungs"] == [1, 3]
    assert data["pruned"] == 16 and data["pruned_configs"] == 8
    assert data["trial_epochs_full"] == 9 * 2 * 9
    assert data["trial_epochs"] == 2 * (6 * 1 + 2 * 3 + 9)
    assert data["trial_epochs_saved"] == data["trial_epochs_full"] - data["trial_epochs"]
    assert [t["epochs"] for t in data["trials"] if t["status"] == "pruned"]
    assert plain["pruner"] == "none" and plain["pruned"] == 0 and plain["rungs"] == []
    # the impact table counts only the configuration trained to the end
    assert [r.status for r in counted] == ["completed", "completed"]


def test_a_stopped_study_resumes_to_the_uninterrupted_result(trained, tmp_path: Path,
                                                             monkeypatch) -> None:
    from engine.run.runner import StopFlag

    path, halved, _ = trained
    stop = StopFlag()
    finish = Store.finish_trials

    def finish_then_stop(self: Store, rows: Any) -> None:
        finish(self, rows)
        if any(r.status == "pruned" and r.epochs_done == 3 for r in rows):
            stop.set("test: stop after the second rung")

    store_path = tmp_path / "store.db"
    with Store(store_path) as store:
        study = create(store)
        monkeypatch.setattr(Store, "finish_trials", finish_then_stop)
        assert train(store, study, stop) != 0
        monkeypatch.setattr(Store, "finish_trials", finish)
        mid = store.trials(study)
        assert sum(t.status == "pruned" for t in mid) == 16  # kept; the survivor is not
        assert any(t.status == "interrupted" for t in mid)
        assert train(store, study) == 0
        resumed = facts(store, study)
    with Store(path) as store:
        assert resumed == facts(store, halved)


def test_the_vault_refuses_a_pruned_trial(trained) -> None:
    from engine.run.vault import VaultRefused, check_can_open

    path, halved, _ = trained
    with Store(path) as store:
        study = store.study(halved)
        pruned = next(t for t in store.trials(halved) if t.status == "pruned")
        with pytest.raises(VaultRefused, match=r"pruned by successive halving after [13] of its 9"):
            check_can_open(store, study, pruned)


def test_the_cost_line_states_the_trial_epochs() -> None:
    cost = actions.cost(parse_preset(HALVING.format(pruner="halving")))
    assert cost.trial_epochs == 2 * (6 * 1 + 2 * 3 + 9) and cost.trial_epochs_full == 162
    assert "halving: 42 of 162 trial-epochs (26%)" in cost.line()
    assert actions.cost(parse_preset(HALVING.format(pruner="none"))).trial_epochs is None


def test_the_cli_states_the_cost_the_rungs_and_the_saving(tmp_path: Path) -> None:
    from tests.cli_helpers import hp

    preset = tmp_path / "halving.toml"
    preset.write_text(HALVING.format(pruner="halving"))
    store = tmp_path / "store.db"
    run = hp("run", str(preset), "--json", "--workers", "1", store=store, timeout=120)
    assert run.code == 0, run.err
    assert "halving: 42 of 162 trial-epochs (26%)" in run.err
    data = run.json()
    assert (data["pruner"], data["rungs"], data["pruned"]) == ("halving", [1, 3], 16)
    shown = hp("show", "1", store=store)
    assert "rungs after epochs 1, 3; 16 trials pruned (8 configurations)" in \
        " ".join(shown.out.split())
    preset.write_text(HALVING.format(pruner="halfway"))
    bad = hp("run", str(preset), store=store)
    assert bad.code != 0 and "study.pruner" in bad.err and "Traceback" not in bad.err


@pytest.mark.slow
def test_the_benchmark_runs_quick() -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, str(root / "benchmarks" / "bench_halving.py"),
                          "--quick"], capture_output=True, text=True, timeout=300, check=True)
    assert "trial-epochs: 42 / 162 = 26%" in out.stdout
