from __future__ import annotations

import hashlib
import math
import statistics
import subprocess
import sys

import pytest

from engine.spec import space
from engine.spec.config import DataConfig, Range, StudySpec, TrialConfig
from engine.study.strategies import (
    STRATEGIES,
    Plan,
    count,
    counts_by_strategy,
    derive_seed,
    get_strategy,
    plan,
    replicate_seed,
    trial_steps,
)

BASE = TrialConfig()  # the notebook: lr 0.01, batch 10, hidden [10], relu, sgd, mse


def spec(strategy: str, vary: dict, seeds: int = 2, samples: int = 5, seed: int = 0) -> StudySpec:
    return StudySpec(strategy=strategy, seeds=seeds, samples=samples, seed=seed, vary=vary)


def test_derive_seed_matches_the_data_module_definition() -> None:
    digest = hashlib.sha256(b"7:replicate:3").digest()
    assert derive_seed(7, "replicate:3") == int.from_bytes(digest[:8], "little") >> 1
    assert 0 <= derive_seed(0, "x") < 2**63
    assert replicate_seed(7, 3) == derive_seed(7, "replicate:3")


def test_modules_do_not_import_torch_or_ui_libraries() -> None:
    code = ("import sys, engine.study.strategies, engine.study.analysis; "
            "bad = [m for m in ('torch', 'textual', 'rich') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_strategy_registry_matches_the_space() -> None:
    assert tuple(STRATEGIES) == space.STRATEGIES
    with pytest.raises(ValueError, match="unknown strategy"):
        get_strategy("bayes")


# --- counts -------------------------------------------------------------------------------------

VARY = {
    "lr": [0.001, 0.01, 0.1, 1.0],  # 0.01 is the baseline: 3 new values
    "batch_size": [10, 32, 32.0, 128],  # 10 is the baseline, 32 listed twice: 2 new values
    "hidden": [[10], [20], (10, 10)],  # [10] is the baseline: 2 new values
    "activation": ["tanh"],  # 1 new value
}


def test_sensitivity_count_follows_the_formula() -> None:
    s = spec("sensitivity", VARY, seeds=3)
    assert count(BASE, s) == 3 * (1 + 3 + 2 + 2 + 1)
    p = plan(BASE, s)
    assert p.n_trials == count(BASE, s)
    assert p.n_configs == 9


def test_grid_count_is_the_product_of_distinct_values() -> None:
    s = spec("grid", VARY, seeds=2)
    assert count(BASE, s) == 2 * 4 * 3 * 3 * 1
    p = plan(BASE, s)
    assert p.n_trials == count(BASE, s)
    assert len({t.config for t in p.trials}) == 4 * 3 * 3


def test_random_and_single_counts() -> None:
    s = spec("random", {"lr": Range(1e-3, 1.0, log=True), "activation": ["relu", "tanh"]},
             seeds=3, samples=7)
    assert count(BASE, s) == 21 == plan(BASE, s).n_trials
    single = spec("single", VARY, seeds=4)
    assert count(BASE, single) == 4 == plan(BASE, single).n_trials
    assert all(t.config == BASE and t.changed == {} for t in plan(BASE, single).trials)


def test_counts_by_strategy_compares_grid_and_sensitivity() -> None:
    counts = counts_by_strategy(BASE, spec("grid", VARY, seeds=3, samples=10))
    assert counts == {"single": 3, "grid": 3 * 36, "sensitivity": 3 * 9, "random": 30}
    with_range = spec("random", {"lr": Range(1e-3, 1.0, log=True)}, seeds=1, samples=10)
    assert counts_by_strategy(BASE, with_range) == {"single": 1, "random": 10}


def test_sensitivity_with_only_the_baseline_value_trains_the_baseline_once() -> None:
    s = spec("sensitivity", {"lr": [0.01], "hidden": [[10]]}, seeds=2)
    assert count(BASE, s) == 2
    assert [t.changed for t in plan(BASE, s).trials] == [{}, {}]


# --- plans ----------------------------------------------------------------------------------------


def test_plans_are_deterministic() -> None:
    for s in (spec("sensitivity", VARY), spec("grid", VARY),
              spec("random", {"lr": Range(1e-4, 1.0, log=True), "epochs": Range(1, 50)},
                   samples=30)):
        assert plan(BASE, s) == plan(BASE, s)
    a = plan(BASE, spec("random", {"lr": Range(1e-4, 1.0, log=True)}, seed=1))
    b = plan(BASE, spec("random", {"lr": Range(1e-4, 1.0, log=True)}, seed=2))
    assert [t.config.lr for t in a.trials] != [t.config.lr for t in b.trials]


def test_every_configuration_shares_the_same_seeds_replicates_interleaved() -> None:
    p = plan(BASE, spec("sensitivity", VARY, seeds=3, seed=5))
    expected = [derive_seed(5, f"replicate:{r}") for r in range(3)]
    assert [t.number for t in p.trials] == list(range(1, p.n_trials + 1))
    for i in range(0, p.n_trials, 3):
        block = p.trials[i:i + 3]
        assert [t.replicate for t in block] == [0, 1, 2]
        assert [t.seed for t in block] == expected
        assert len({t.config for t in block}) == 1
    assert len(set(expected)) == 3


def test_sensitivity_changes_one_parameter_at_a_time_in_listed_order() -> None:
    p = plan(BASE, spec("sensitivity", VARY, seeds=1))
    changed = [t.changed for t in p.trials]
    assert changed == [
        {}, {"lr": 0.001}, {"lr": 0.1}, {"lr": 1.0}, {"batch_size": 32}, {"batch_size": 128},
        {"hidden": [20]}, {"hidden": [10, 10]}, {"activation": "tanh"},
    ]
    assert p.trials[0].config == BASE
    for t in p.trials[1:]:
        (key, value), = t.changed.items()
        assert t.config == BASE.replace(**{key: value})
    assert p.trials[6].config.hidden == (20,)


def test_grid_order_last_parameter_fastest() -> None:
    p = plan(BASE, spec("grid", {"lr": [0.1, 1.0], "activation": ["relu", "tanh"]}, seeds=1))
    assert [(t.config.lr, t.config.activation) for t in p.trials] == [
        (0.1, "relu"), (0.1, "tanh"), (1.0, "relu"), (1.0, "tanh")]
    assert p.trials[0].changed == {"lr": 0.1}  # relu is the baseline's: not a change


def test_trial_steps() -> None:
    cfg = BASE.replace(epochs=3, batch_size=300, train_size=1000)
    assert trial_steps(cfg) == 3 * 4
    p = plan(BASE, spec("single", {}, seeds=2))
    assert p.trial_steps() == 2 * 10 * 400
    assert isinstance(p, Plan)


# --- random -----------------------------------------------------------------------------------


def _random(vary: dict, samples: int = 2000, seed: int = 0, base: TrialConfig = BASE) -> Plan:
    return plan(base, spec("random", vary, seeds=1, samples=samples, seed=seed))


def test_random_draws_stay_in_range_and_are_valid() -> None:
    p = _random({"lr": Range(1e-4, 1.0, log=True), "momentum": Range(0.0, 0.99),
                 "batch_size": Range(1, 1024, log=True), "epochs": Range(1, 4),
                 "hidden": [[5], [10, 10]], "optimizer": ["sgd", "adam", "rmsprop"]})
    for t in p.trials:
        flat = t.config.flat()
        for key in ("lr", "momentum", "batch_size", "epochs", "hidden", "optimizer"):
            _, err = space.check_value(space.VARIABLE[key], flat[key])
            assert err is None, (key, flat[key])
        assert 1e-4 <= t.config.lr <= 1.0
        assert 0.0 <= t.config.momentum <= 0.99
        assert isinstance(t.config.batch_size, int) and 1 <= t.config.batch_size <= 1024
        assert isinstance(t.config.epochs, int) and 1 <= t.config.epochs <= 4
    assert {t.config.epochs for t in p.trials} == {1, 2, 3, 4}
    assert {t.config.optimizer for t in p.trials} == {"sgd", "adam", "rmsprop"}
    assert {t.config.hidden for t in p.trials} == {(5,), (10, 10)}


def test_log_uniform_is_really_log() -> None:
    p = _random({"lr": Range(1e-4, 1.0, log=True), "batch_size": Range(1, 1024, log=True),
                 "momentum": Range(0.0, 0.9)})
    lrs = [t.config.lr for t in p.trials]
    # Log-uniform over 4 decades: median near 1e-2, a quarter of the draws per decade.
    assert 10 ** -2.2 < statistics.median(lrs) < 10 ** -1.8
    assert 0.2 < sum(lr < 1e-3 for lr in lrs) / len(lrs) < 0.3
    assert 24 <= statistics.median(t.config.batch_size for t in p.trials) <= 42
    assert 0.4 < statistics.median(t.config.momentum for t in p.trials) < 0.5  # linear


def test_linear_integer_range_gives_end_points_a_full_share() -> None:
    epochs = [t.config.epochs for t in _random({"epochs": Range(1, 4)}, samples=4000).trials]
    for e in (1, 2, 3, 4):
        assert 0.22 < epochs.count(e) / len(epochs) < 0.28


def test_random_draws_are_prefix_stable_and_independent_per_parameter() -> None:
    small = _random({"lr": Range(1e-4, 1.0, log=True)}, samples=10)
    big = _random({"lr": Range(1e-4, 1.0, log=True), "activation": ["relu", "tanh"]},
                  samples=20)
    assert [t.config.lr for t in small.trials] == [t.config.lr for t in big.trials[:10]]


def test_random_clamps_batch_size_to_the_training_set() -> None:
    base = BASE.replace(train_size=50)
    p = _random({"batch_size": Range(8, 512, log=True)}, samples=200, base=base)
    assert max(t.config.batch_size for t in p.trials) == 50
    assert all(t.config.batch_size <= 50 for t in p.trials)


def test_random_keeps_unvaried_parameters_and_reports_changes() -> None:
    p = _random({"lr": Range(0.5, 1.0)}, samples=5)
    for t in p.trials:
        assert t.config.replace(lr=0.01) == BASE
        assert t.changed == {"lr": t.config.lr}


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("strategy", "vary", "message"), [
    ("grid", {"learning_rate": [0.1]}, "not a parameter that can be varied"),
    ("grid", {"seeds": [1, 2]}, "not a parameter that can be varied"),
    ("sensitivity", {"lr": [0.0]}, "out of range"),
    ("sensitivity", {"activation": ["relux"]}, "did you mean 'relu'"),
    ("grid", {"lr": Range(0.001, 0.1)}, "only works with the random strategy"),
    ("grid", {"lr": []}, "non-empty list"),
    ("random", {"lr": Range(0.0, 1.0, log=True)}, "log range needs min > 0"),
    ("random", {"lr": Range(0.0, 1.0)}, "out of range"),
    ("random", {"momentum": Range(0.0, 1.0)}, "out of range"),
    ("random", {"lr": Range(1.0, 0.1)}, "empty range"),
    ("random", {"activation": Range(1, 2)}, "needs a numeric parameter"),
])
def test_bad_vary_tables_are_refused(strategy: str, vary: dict, message: str) -> None:
    s = spec(strategy, vary)
    with pytest.raises(ValueError, match=message):
        count(BASE, s)
    with pytest.raises(ValueError, match=message):
        plan(BASE, s)


def test_data_parameters_can_be_varied() -> None:
    p = plan(BASE, spec("grid", {"noise": [0.1, 0.2], "dataset": ["moons"]}, seeds=1))
    assert [t.config.data for t in p.trials] == [
        DataConfig(dataset="moons", noise=0.1), DataConfig(dataset="moons", noise=0.2)]
    assert math.isclose(p.trials[0].changed["noise"], 0.1)
