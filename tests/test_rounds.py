"""Adaptive seeding's schedule and rounds (engine.study.rounds): pure functions, no store."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from engine.spec import StudySpec, replicate_seed, seed_schedule
from engine.study import decision, first_round, next_round
from engine.study.rounds import members


def test_schedule_doubles_up_to_the_cap() -> None:
    assert seed_schedule(4, 64) == [4, 8, 16, 32, 64]
    assert seed_schedule(4, 50) == [4, 8, 16, 32, 50]
    assert seed_schedule(3, 3) == [3]
    assert seed_schedule(1, 5) == [1, 2, 4, 5]
    with pytest.raises(ValueError):
        seed_schedule(8, 4)
    with pytest.raises(ValueError):
        seed_schedule(0, 4)


def test_fixed_study_schedule_is_its_seeds() -> None:
    assert StudySpec(seeds=3).schedule == [3]
    assert StudySpec(seeds=3, max_seeds=64).schedule == [3]  # ignored unless adaptive
    assert StudySpec(seeds=4, adaptive=True, max_seeds=16).schedule == [4, 8, 16]


def test_a_row_gets_more_seeds_until_it_is_settled() -> None:
    def row(decision: str, settled: bool) -> SimpleNamespace:
        return SimpleNamespace(param="lr", decision=decision, settled=settled)

    assert decision(row("undecided", False)) == "undecided"
    assert decision(row("matters", False)) == "undecided"  # its best value still tied
    assert decision(row("matters", True)) == "matters"
    assert decision(row("negligible", True)) == "negligible"


# sensitivity: baseline, lr x2, hidden x1
SENS = [{}, {"lr": 0.1}, {"lr": 1.0}, {"hidden": [40]}]


def test_sensitivity_row_stands_on_baseline_and_its_own_configs() -> None:
    assert members("sensitivity", SENS, "lr") == [0, 1, 2]
    assert members("sensitivity", SENS, "hidden") == [0, 3]
    assert members("grid", SENS, "hidden") == [0, 1, 2, 3]
    assert members("random", SENS, "lr") == [0, 1, 2, 3]


def test_next_round_extends_only_undecided_rows() -> None:
    steps = [4, 8, 16]
    r = next_round("sensitivity", SENS, [4, 4, 4, 4],
                   {"lr": "matters", "hidden": "undecided"}, steps)
    assert r is not None
    assert (r.number, r.seeds, r.configs, r.undecided) == (2, 8, [0, 3], ["hidden"])
    assert r.extend == [(0, [4, 5, 6, 7]), (3, [4, 5, 6, 7])]
    assert r.reason == "round 2: 2 configurations still undecided (hidden)"
    # next: lr became undecided again (the baseline moved): its configs catch up to 16
    r3 = next_round("sensitivity", SENS, [8, 4, 4, 8],
                    {"lr": "undecided", "hidden": "undecided"}, steps)
    assert r3 is not None and (r3.number, r3.seeds) == (3, 16)
    assert r3.extend == [(0, list(range(8, 16))), (1, list(range(4, 16))),
                         (2, list(range(4, 16))), (3, list(range(8, 16)))]
    assert r3.reason == "round 3: 4 configurations still undecided (lr, hidden)"


def test_next_round_none_when_decided_or_capped() -> None:
    steps = [4, 8, 16]
    assert next_round("sensitivity", SENS, [4] * 4,
                      {"lr": "matters", "hidden": "negligible"}, steps) is None
    assert next_round("sensitivity", SENS, [16] * 4, {"lr": "undecided"}, steps) is None
    assert next_round("grid", SENS, [4] * 4, {}, steps) is None
    assert next_round("grid", SENS, [4] * 4, {"lr": "undecided"}, [4]) is None  # fixed


def test_grid_and_random_rounds_extend_every_configuration() -> None:
    for strategy in ("grid", "random"):
        r = next_round(strategy, SENS, [4] * 4, {"lr": "matters", "hidden": "undecided"},
                       [4, 8])
        assert r is not None and r.configs == [0, 1, 2, 3] and r.seeds == 8


def test_round_trials_use_the_replicate_seeds() -> None:
    configs = [{"train": {"lr": lr}} for lr in (0.01, 0.1, 1.0, 0.5)]
    r = next_round("sensitivity", SENS, [4] * 4, {"hidden": "undecided"}, [4, 8])
    assert r is not None
    trials = r.trials(configs, study_seed=7)
    assert [(c["train"]["lr"], rep) for c, _, rep in trials] == \
        [(0.01, 4), (0.01, 5), (0.01, 6), (0.01, 7), (0.5, 4), (0.5, 5), (0.5, 6), (0.5, 7)]
    assert [s for _, s, _ in trials] == [replicate_seed(7, rep) for _, _, rep in trials]
    again = next_round("sensitivity", SENS, [4] * 4, {"hidden": "undecided"}, [4, 8])
    assert again == r  # deterministic


def test_first_round() -> None:
    r = first_round(3, 4)
    assert (r.number, r.seeds, r.configs) == (1, 4, [0, 1, 2])
    assert r.reason == "round 1: 3 configurations x 4 seeds to start"


TIED = """\
name = "tied"
[study]
strategy = "sensitivity"
seeds = "auto"
min_seeds = 4
max_seeds = 8
[study.vary]
optimizer = ["adam", "rmsprop"]
"""


def test_a_row_that_matters_with_a_tied_best_gets_another_round(tmp_path: Path) -> None:
    """sgd is clearly worse; adam and rmsprop cannot be told apart: the row matters, and the
    next round extends it to try to name its best, saying so."""
    from engine.presets import parse_preset
    from engine.store import FinishRow, Store
    from engine.study import study_next_round
    from tui import services as actions

    with Store(tmp_path / "s.db") as store:
        sid = actions.create_study(store, parse_preset(TIED), device="cpu")
        ends = []
        for t in store.trials(sid):
            optimizer = t.config["train"]["optimizer"]
            acc = {"sgd": 0.6, "adam": 0.8, "rmsprop": 0.8}[optimizer] + 0.01 * t.replicate
            tie_break = 0.001 * (t.replicate % 2) * (optimizer == "adam")
            ends.append(FinishRow(t.id, "completed", None, None, 0.3, 0.3, acc + tie_break, 2))
        store.finish_trials(ends)
        found = study_next_round(store.study(sid), store.trials(sid))
        assert found is not None and found.seeds == 8 and found.undecided == ["optimizer"]
        assert found.reason == ("round 2: 3 configurations still to settle "
                                "(optimizer: best tied)")
