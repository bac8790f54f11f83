from __future__ import annotations

import math
import random
from typing import Any

import pytest

from engine.spec.config import Range, StudySpec, TrialConfig
from engine.study.analysis import (
    Impact,
    TrialResult,
    best_config,
    best_trial,
    effect_size_category,
    impact,
    interaction,
    score_predictions,
    studentized_range_quantile,
)
from engine.study.strategies import plan

BASE = TrialConfig().flat()  # lr 0.01, hidden [10], activation relu, ...


class Trials:
    """Builds TrialResults: one call per configuration, one accuracy per seed."""

    def __init__(self) -> None:
        self.results: list[TrialResult] = []

    def add(self, accs: list[float | None], status: str = "completed",
            **changes: Any) -> Trials:
        config = {**BASE, **changes}
        for r, acc in enumerate(accs):
            self.results.append(TrialResult(len(self.results) + 1, config, r, status, acc))
        return self


def var(xs: list[float]) -> float:
    m = sum(xs) / len(xs)
    return sum((x - m) ** 2 for x in xs) / (len(xs) - 1)


def approx(x: float) -> Any:
    return pytest.approx(x, abs=1e-12)


# --- sensitivity, by hand -------------------------------------------------------------------------

SENS_VARY: dict[str, Any] = {"lr": [0.001, 0.01, 0.1], "activation": ["tanh"]}


def sensitivity_trials() -> Trials:
    return (Trials()
            .add([0.80, 0.82])  # baseline
            .add([0.70, 0.74], lr=0.001)
            .add([0.90, 0.86], lr=0.1)
            .add([0.81, 0.80], activation="tanh"))


def test_sensitivity_table_by_hand() -> None:
    imp = impact("sensitivity", BASE, SENS_VARY, sensitivity_trials().results)
    assert imp.reading == "one-at-a-time effects around the baseline"
    assert [r.param for r in imp.rows] == ["lr", "activation"]  # by effect
    lr, act = imp.rows

    assert lr.values == [0.001, 0.01, 0.1]
    assert lr.means == [approx(0.72), approx(0.81), approx(0.88)]
    assert lr.stds == [approx(math.sqrt(0.0008)), approx(math.sqrt(0.0002)),
                       approx(math.sqrt(0.0008))]
    assert lr.counts == [2, 2, 2]
    assert lr.best == 0.1
    assert lr.effect == approx(0.16)
    noise = math.sqrt((0.0008 + 0.0002 + 0.0008 + 0.00005) / 4)
    assert lr.noise == approx(noise) and imp.noise == approx(noise)
    # Tukey-Kramer with k = 3 values and dof = 4 configs x (2 - 1) seeds.
    threshold = studentized_range_quantile(3, 4) * noise * math.sqrt((1 / 2 + 1 / 2) / 2)
    assert lr.threshold == approx(threshold)
    assert lr.significant and lr.verdict == "above noise"

    # The baseline counts in every row, as that parameter's baseline value (listed first).
    assert act.values == ["relu", "tanh"]
    assert act.counts == [2, 2]
    assert act.means == [approx(0.81), approx(0.805)]
    assert act.effect == approx(0.005)
    assert act.best == "relu"
    assert not act.significant and act.verdict == "within noise"
    assert imp.baseline_acc == (approx(0.81), approx(math.sqrt(0.0002)))
    assert imp.counted == 8 and imp.left_out == 0


def test_sensitivity_adds_an_unlisted_baseline_value_in_numeric_order() -> None:
    imp = impact("sensitivity", BASE, {"lr": [0.1, 0.001]}, sensitivity_trials().results)
    assert imp.rows[0].values == [0.001, 0.01, 0.1]
    assert imp.rows[0].counts == [2, 2, 2]


def test_order_of_results_does_not_matter() -> None:
    results = sensitivity_trials().results
    expected = impact("sensitivity", BASE, SENS_VARY, results)
    rng = random.Random(0)
    for _ in range(5):
        shuffled = results[:]
        rng.shuffle(shuffled)
        assert impact("sensitivity", BASE, SENS_VARY, shuffled) == expected


def test_one_seed_cannot_be_judged() -> None:
    t = Trials().add([0.80]).add([0.60], lr=0.001).add([0.95], lr=0.1)
    row = impact("sensitivity", BASE, {"lr": [0.001, 0.1]}, t.results).rows[0]
    assert row.effect == approx(0.35)
    assert row.noise is None and row.threshold is None
    assert not row.significant and row.verdict == "no seed repeats"


def test_significance_depends_on_noise() -> None:
    quiet = Trials().add([0.80, 0.81, 0.79]).add([0.85, 0.86, 0.84], lr=0.1)
    loud = Trials().add([0.70, 0.81, 0.89]).add([0.95, 0.76, 0.84], lr=0.1)
    vary = {"lr": [0.1]}
    row_q = impact("sensitivity", BASE, vary, quiet.results).rows[0]
    row_l = impact("sensitivity", BASE, vary, loud.results).rows[0]
    assert row_q.effect == approx(0.05) and row_l.effect == approx(0.05)
    assert row_q.significant and row_q.verdict == "above noise"
    assert not row_l.significant and row_l.verdict == "within noise"
    # Two values: the test is the two-sample t-test (q / sqrt 2 = t quantile, dof 4: 2.776).
    assert row_q.threshold == approx(
        studentized_range_quantile(2, 4) / math.sqrt(2) * 0.01 * math.sqrt(2 / 3))
    assert studentized_range_quantile(2, 4) / math.sqrt(2) == pytest.approx(2.776, abs=2e-3)


@pytest.mark.parametrize(("k", "dof", "table"), [
    (2, 10**6, 2.772), (3, 10**6, 3.314), (5, 10**6, 3.858), (10, 10**6, 4.474),
    (2, 5, 3.635), (3, 10, 3.877), (5, 10, 4.654), (10, 20, 5.008), (4, 2, 9.798),
])
def test_studentized_range_matches_printed_tables(k: int, dof: int, table: float) -> None:
    assert studentized_range_quantile(k, dof) == pytest.approx(table, abs=0.01)


# --- failures and divergence ---------------------------------------------------------------------


def test_failed_excluded_diverged_count_as_chance() -> None:
    t = (Trials().add([0.80, 0.82])
         .add([None, 0.70], status="diverged", lr=1.0)
         .add([float("nan")], status="diverged", lr=0.1)
         .add([0.99, 0.99], status="failed", lr=0.1)
         .add([0.99], status="interrupted", lr=0.1)
         .add([None], status="running", lr=0.1))
    imp = impact("sensitivity", BASE, {"lr": [0.1, 1.0]}, t.results)
    row = imp.rows[0]
    assert row.values == [0.01, 0.1, 1.0]
    assert row.counts == [2, 1, 2]
    assert row.means == [approx(0.81), approx(0.5), approx(0.6)]
    assert row.diverged == [0, 1, 2]
    assert imp.counted == 5 and imp.left_out == 4


def test_values_without_data_yet() -> None:
    t = Trials().add([0.80, 0.82])
    row = impact("sensitivity", BASE, {"lr": [0.1]}, t.results).rows[0]
    assert row.values == [0.01, 0.1]
    assert row.means == [approx(0.81), None] and row.stds[1] is None and row.counts == [2, 0]
    assert row.best == 0.01 and row.effect == 0.0
    assert row.verdict == "too few values" and not row.significant


def test_ties_pick_the_first_value_in_row_order() -> None:
    t = Trials().add([0.8, 0.8], activation="tanh").add([0.8, 0.8], activation="relu")
    row = impact("grid", BASE, {"activation": ["tanh", "relu"]}, t.results).rows[0]
    assert row.best == "tanh" and row.effect == 0.0


# --- grid ---------------------------------------------------------------------------------------

GRID_VARY: dict[str, Any] = {"hidden": [[10], [20, 20]], "lr": [0.1, 0.01]}


def grid_trials() -> Trials:
    return (Trials()
            .add([0.70, 0.72], hidden=[10], lr=0.1)
            .add([0.80, 0.78], hidden=[10], lr=0.01)
            .add([0.90, 0.92], hidden=[20, 20], lr=0.1)
            .add([0.60, 0.64], hidden=[20, 20], lr=0.01))


def test_grid_marginals() -> None:
    imp = impact("grid", BASE, GRID_VARY, grid_trials().results)
    assert imp.reading == "marginal averages over the other parameters"
    rows = {r.param: r for r in imp.rows}
    hidden = rows["hidden"]
    assert hidden.values == [[10], [20, 20]]  # lists in, lists out
    assert hidden.means == [approx(0.75), approx(0.765)]
    assert hidden.stds[0] == approx(math.sqrt(var([0.70, 0.72, 0.80, 0.78])))
    assert hidden.counts == [4, 4]
    assert hidden.best == [20, 20]
    lr = rows["lr"]
    assert lr.values == [0.01, 0.1]  # numbers ascending
    assert lr.means == [approx(0.705), approx(0.81)]
    assert lr.best == 0.1
    assert [r.param for r in imp.rows] == ["lr", "hidden"]
    noise = math.sqrt((0.0002 + 0.0002 + 0.0002 + 0.0008) / 4)
    assert lr.noise == approx(noise)
    assert lr.threshold == approx(studentized_range_quantile(2, 4) * noise * math.sqrt(1 / 4))
    assert lr.significant and not hidden.significant
    assert imp.baseline_acc == (approx(0.79), approx(math.sqrt(0.0002)))


def test_interaction_matrix() -> None:
    results = grid_trials().results[:-1]  # the last cell has one seed
    inter = interaction(GRID_VARY, results)
    assert inter is not None
    assert (inter.row_param, inter.col_param) == ("hidden", "lr")
    assert inter.row_values == [[10], [20, 20]] and inter.col_values == [0.01, 0.1]
    assert inter.means == [[approx(0.79), approx(0.71)], [approx(0.60), approx(0.91)]]
    assert inter.counts == [[2, 2], [1, 2]]
    assert interaction({"lr": [0.1]}, results) is None
    assert interaction({**GRID_VARY, "activation": ["tanh"]}, results) is None
    assert interaction({"lr": Range(0.01, 0.1), "hidden": [[10]]}, results) is None


def test_interaction_reports_missing_cells_as_none() -> None:
    inter = interaction(GRID_VARY, grid_trials().results[:2])
    assert inter is not None
    assert inter.means == [[None, approx(0.71)], [None, None]]
    assert inter.counts == [[0, 2], [0, 0]]


# --- random -------------------------------------------------------------------------------------


def random_trials(seeds: int = 1) -> tuple[dict[str, Any], list[TrialResult]]:
    """12 sampled lrs; accuracy rises with lr; activation alternates and does nothing."""
    lrs = [0.0002, 0.0004, 0.0008, 0.001, 0.002, 0.004, 0.008, 0.01, 0.02, 0.04, 0.08, 0.1]
    t = Trials()
    for i, lr in enumerate(lrs):
        acc = 0.6 + 0.02 * i
        t.add([acc + 0.001 * r for r in range(seeds)], lr=lr,
              activation="tanh" if i % 2 else "relu")
    return {"lr": {"min": 1e-4, "max": 0.1, "log": True}, "activation": ["relu", "tanh"]}, t.results


def test_random_quantile_bins() -> None:
    vary, results = random_trials()
    imp = impact("random", BASE, vary, results)
    assert imp.reading == "marginal averages over quantile bins"
    rows = {r.param: r for r in imp.rows}
    lr = rows["lr"]
    assert lr.bins == [(0.0002, 0.0008), (0.001, 0.004), (0.008, 0.02), (0.04, 0.1)]
    assert lr.values == ["0.0002–0.0008", "0.001–0.004", "0.008–0.02", "0.04–0.1"]
    assert lr.counts == [3, 3, 3, 3]
    assert lr.means == [approx(0.62), approx(0.68), approx(0.74), approx(0.80)]
    assert lr.best == "0.04–0.1"
    assert lr.effect == approx(0.18)
    # One seed: judged against the spread of configurations within each bin (std 0.02, dof 8).
    assert lr.noise is None
    assert lr.threshold == approx(studentized_range_quantile(4, 8) * 0.02 * math.sqrt(1 / 3))
    assert lr.significant
    act = rows["activation"]
    assert act.bins is None and act.values == ["relu", "tanh"]
    assert act.counts == [6, 6] and act.effect == approx(0.02)
    assert not act.significant and act.verdict == "within noise"


def test_random_bins_keep_equal_values_together_and_shrink_with_few_samples() -> None:
    t = Trials()
    for i, bs in enumerate([8, 8, 8, 8, 16, 32, 64, 128]):
        t.add([0.5 + 0.01 * i], batch_size=bs, epochs=i + 1)  # 8 distinct samples
    vary = {"batch_size": Range(8, 128, log=True)}
    row = impact("random", BASE, vary, t.results).rows[0]
    assert row.bins == [(8, 8), (16, 128)]  # 8 samples: 2 bins; the four 8s stay together
    assert row.values == ["8", "16–128"]
    few = impact("random", BASE, vary, t.results[:5]).rows[0]
    assert few.bins is None and few.values == [8, 16]  # too few samples to bin


def test_random_with_seeds_is_order_independent() -> None:
    vary, results = random_trials(seeds=3)
    expected = impact("random", BASE, vary, results)
    shuffled = results[::-1]
    assert impact("random", BASE, vary, shuffled) == expected
    assert expected.rows[0].noise == approx(0.001)


# --- predictions, best config ------------------------------------------------------------------


def test_effect_size_categories() -> None:
    assert effect_size_category(0.0) == "small"
    assert effect_size_category(0.0199) == "small"
    assert effect_size_category(0.02) == "medium"
    assert effect_size_category(0.0999) == "medium"
    assert effect_size_category(0.10) == "large"


def test_score_predictions() -> None:
    imp = impact("sensitivity", BASE, SENS_VARY, sensitivity_trials().results)
    scores = score_predictions({
        "activation": ("tanh", "small"),
        "lr": (0.1, "large"),
        "batch_size": (32, "medium"),
    }, imp)
    assert [s.param for s in scores] == ["lr", "activation", "batch_size"]
    lr, act, bs = scores
    assert lr.best_hit is True and lr.actual_size == "large" and lr.size_hit is True
    assert lr.verdict == "lr: best 0.1 as predicted; effect 16.0 points (large) as predicted"
    assert act.best_hit is False and act.actual_best == "relu"
    assert act.size_hit is True and act.actual_size == "small"
    assert "may be luck" in act.verdict
    assert bs.best_hit is None and bs.size_hit is None
    assert bs.verdict == "batch_size: not varied in this study"


def test_score_predictions_partial_and_binned() -> None:
    vary, results = random_trials()
    imp = impact("random", BASE, vary, results)
    scores = {s.param: s for s in score_predictions(
        {"lr": (0.05, "medium"), "activation": (None, "MEDIUM")}, imp)}
    assert scores["lr"].best_hit is True  # 0.05 lies in the best bin 0.04–0.1
    assert scores["lr"].size_hit is False and scores["lr"].actual_size == "large"
    assert scores["activation"].best_hit is None
    assert scores["activation"].size_hit is True


def test_best_config_and_trial() -> None:
    results = grid_trials().results
    best = best_config(results)
    assert best is not None
    config, mean, std, n = best
    assert config["hidden"] == [20, 20] and config["lr"] == 0.1
    assert mean == approx(0.91) and std == approx(math.sqrt(0.0002)) and n == 2
    assert best_trial(results) == 6  # the 0.92 seed of that configuration
    assert best_config([]) is None and best_trial([]) is None


def test_best_config_ties_prefer_more_seeds_then_earlier_trials() -> None:
    t = Trials().add([0.9], lr=0.1).add([0.9, 0.9], lr=1.0).add([0.9, 0.9], lr=0.5)
    best = best_config(t.results)
    assert best is not None and best.config["lr"] == 1.0


def test_single_has_no_rows() -> None:
    imp = impact("single", BASE, {}, Trials().add([0.8, 0.9]).results)
    assert isinstance(imp, Impact) and imp.rows == []
    assert imp.baseline_acc is not None and imp.baseline_acc[0] == approx(0.85)
    assert imp.to_dict()["reading"] == "a single configuration: nothing was varied"


# --- with the planner ---------------------------------------------------------------------------


def test_impact_of_a_planned_sensitivity_study() -> None:
    base = TrialConfig()
    vary = {"lr": [0.001, 0.01, 0.1], "hidden": [[20], [10, 10]], "optimizer": ["adam"]}
    p = plan(base, StudySpec("sensitivity", seeds=2, vary=vary))
    results = [TrialResult(t.number, t.config.flat(), t.replicate, "completed",
                           0.8 + 0.01 * t.replicate + (0.1 if t.changed.get("lr") == 0.1 else 0))
               for t in p.trials]
    imp = impact("sensitivity", base.flat(), vary, results)
    rows = {r.param: r for r in imp.rows}
    assert rows["lr"].counts == [2, 2, 2]
    assert rows["hidden"].values == [[10], [20], [10, 10]]
    assert rows["hidden"].counts == [2, 2, 2]
    assert rows["optimizer"].values == ["sgd", "adam"]
    assert imp.rows[0].param == "lr" and imp.rows[0].best == 0.1
    assert imp.rows[0].significant
    assert rows["hidden"].effect == approx(0.0) and not rows["hidden"].significant
    assert imp.to_dict()["rows"][0]["param"] == "lr"
