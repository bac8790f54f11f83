"""The race of strategies: the pure part (budget split, curves, aggregate) on known inputs, and
`hp-tui race` on a tiny preset, end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import hp

from engine.spec import Range, StudySpec, TrialConfig
from engine.store import Store
from engine.study import halving, race, strategies

GRID = race.budget_grid(12, points=4)  # 0, 3, 6, 9, 12


def test_budget_grid_ends_at_the_budget() -> None:
    assert GRID == [0.0, 3.0, 6.0, 9.0, 12.0]
    assert race.budget_grid(7)[-1] == 7.0 and len(race.budget_grid(7)) == race.POINTS + 1


def test_curve_is_best_so_far_and_counts_only_found_trials() -> None:
    # (epochs trained, val acc, found): a pruned trial (1 epoch, not found) spends but finds nothing
    trials = [(3, 0.6, True), (1, 0.99, False), (3, 0.5, True), (3, 0.8, True), (3, 0.9, True)]
    assert race.curve(trials, GRID) == [None, 0.6, 0.6, 0.6, 0.8]  # 0.9 ends at 13 > 12


def test_curve_is_non_decreasing_and_flat_after_the_last_trial() -> None:
    trials = [(2, 0.7, True), (2, None, True), (2, 0.65, True)]
    values = race.curve(trials, GRID)
    assert values[0] is None
    known = [v for v in values if v is not None]
    assert known == sorted(known) and values[-1] == 0.7 and len(values) == len(GRID)


def test_aggregate_mean_low_high_and_missing_points() -> None:
    mean, low, high = race.aggregate([[None, 0.5, 0.7], [0.6, 0.7, 0.9]])
    assert mean[0] is None and low[0] is None
    assert mean[1:] == pytest.approx([0.6, 0.8]) and low[1:] == [0.5, 0.7]
    assert high[1:] == [0.7, 0.9]


BASE = TrialConfig().replace(epochs=9, train_size=200)
SPEC = StudySpec(strategy="random", samples=10, seeds=2, vary={
    "lr": Range(0.001, 1.0, log=True), "optimizer": ["sgd", "adam", "rmsprop"],
    "activation": ["relu", "tanh"], "momentum": Range(0.0, 0.9)})


@pytest.mark.parametrize("name", list(race.STRATEGIES))
def test_every_entrant_fits_the_budget_with_one_seed(name: str) -> None:
    budget = race.default_budget(BASE, SPEC)
    assert budget == 90
    e = race.entrant(name, BASE, SPEC, budget, seed=4)
    assert e.spec.seeds == 1 and e.spec.seed == 4
    assert 0 < e.planned_epochs <= budget
    if name in ("random", "tpe"):
        assert e.spec.samples == 10
    if name == "grid":  # 3 x 3 x 2 x 3 points, the first 10 in plan order
        assert e.plan.n_trials == 10 and "first 10 of 54" in e.note
    if name == "halving":
        cost = halving.planned([t.config for t in e.plan.trials], e.spec)[1]
        assert cost is not None and cost.with_halving <= budget
        assert e.plan.n_trials > 10  # it spends less per configuration: more of them


def test_ranges_become_a_few_values() -> None:
    assert race.few_values("lr", Range(0.001, 1.0, log=True)) == [0.001, 0.03162, 1.0]
    assert race.few_values("batch_size", Range(8, 64)) == [8, 36, 64]
    spec, note = race.listed_spec(SPEC)
    assert spec.vary["momentum"] == [0.0, 0.45, 0.9] and "momentum" in note
    assert strategies.count(BASE, _grid(spec)) == 54 * 2


def _grid(spec: StudySpec) -> StudySpec:
    import dataclasses

    return dataclasses.replace(spec, strategy="grid")


def test_bad_input_is_refused() -> None:
    with pytest.raises(race.RaceError, match="unknown strategy bogus"):
        race.parse_strategies("random,bogus")
    assert race.parse_strategies("tpe,random+halving,tpe") == ["tpe", "halving"]
    with pytest.raises(race.RaceError, match="positive"):
        race.check(BASE, SPEC, 0)
    with pytest.raises(race.RaceError, match="varies nothing"):
        race.check(BASE, StudySpec(strategy="random"), 90)


# --- the command ----------------------------------------------------------------------------

TINY = """\
name = "tinyrace"
description = "A race small enough for a test."
[data]
train_size = 100
val_size = 100
test_size = 100
[train]
epochs = 3
[study]
strategy = "random"
samples = 3
seeds = 1
[study.vary]
lr = { min = 0.01, max = 0.5, log = true }
optimizer = ["sgd", "adam"]
"""


def test_race_json_and_the_store(tmp_path: Path) -> None:
    preset = tmp_path / "tinyrace.toml"
    preset.write_text(TINY)
    store = tmp_path / "store.db"
    r = hp("race", str(preset), "--strategies", "random,grid", "--seeds", "2", "--json",
           "--workers", "1", store=store, timeout=120)
    assert r.code == 0, r.err
    data = r.json()
    assert data["budget"] == 9 and len(data["seeds"]) == 2
    assert set(data["strategies"]) == {"random", "grid"}
    for entry in data["strategies"].values():
        assert entry["budget"][-1] == 9 and len(entry["best"]) == len(entry["budget"])
        assert entry["best"][-1] is not None and len(entry["studies"]) == 2
    with Store(store, readonly=True) as s:
        names = {row.name for row in s.studies()}
    assert {"race:tinyrace:random:0", "race:tinyrace:grid:1"} <= names
    assert "grid" in r.err and "ranges as 3 values" in r.err  # what the race changed, said


@pytest.mark.parametrize(("args", "message"), [
    (["--strategies", "random,bogus"], "unknown strategy bogus"),
    (["--budget", "0"], "positive number of trial-epochs"),
])
def test_race_refuses_bad_input_and_writes_nothing(tmp_path: Path, args: list[str],
                                                   message: str) -> None:
    preset = tmp_path / "tinyrace.toml"
    preset.write_text(TINY)
    store = tmp_path / "store.db"
    r = hp("race", str(preset), *args, store=store)
    assert r.code == 3 and message in r.err and "Traceback" not in r.err
    assert not store.exists()


def test_race_refuses_a_preset_that_varies_nothing(tmp_path: Path) -> None:
    preset = tmp_path / "flat.toml"
    preset.write_text('name = "flat"\ndescription = "nothing varied"\n')
    store = tmp_path / "store.db"
    r = hp("race", str(preset), store=store)
    assert r.code == 3 and "varies nothing" in r.err and "Traceback" not in r.err
    assert not store.exists()
