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


def half_width(diffs: list[float], comparisons: int, looks: int = 1) -> float:
    """The paired t interval's half-width at the study's corrected level (an independent
    oracle: scipy.stats rather than the module's own quantile)."""
    from scipy import stats

    n = len(diffs)
    sd = math.sqrt(var(diffs))
    level = 0.05 / (comparisons * looks)
    return float(stats.t.ppf(1 - level / 2, n - 1)) * sd / math.sqrt(n)


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
    # Two seeds cannot tell 3 + 1 = 4 comparisons apart at 0.05 / 4 each: pair by pair (the
    # replicates share seeds), the extreme pair (0.001 vs 0.1: d = -0.20, -0.12) is wide.
    assert lr.threshold == approx(half_width([-0.20, -0.12], comparisons=4))
    assert not lr.significant and lr.decision == "undecided" and lr.verdict == "undecided"
    assert lr.interval is not None and lr.interval[0] == 0.0 and lr.interval[1] > lr.effect
    assert lr.seeds_needed is not None and lr.seeds_needed > 2
    assert not lr.best_claimed and lr.tied == [0.001, 0.01, 0.1]

    # The baseline counts in every row, as that parameter's baseline value (listed first).
    assert act.values == ["relu", "tanh"]
    assert act.counts == [2, 2]
    assert act.means == [approx(0.81), approx(0.805)]
    assert act.effect == approx(0.005)
    assert act.best == "relu"
    assert not act.significant and act.decision == "undecided"
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
    assert row.noise is None and row.threshold is None and row.interval is None
    assert not row.significant and row.verdict == "no seed repeats"
    assert row.decision == "undecided" and row.seeds_needed is None


def test_significance_depends_on_noise() -> None:
    quiet = Trials().add([0.80, 0.81, 0.79]).add([0.85, 0.86, 0.84], lr=0.1)
    loud = Trials().add([0.70, 0.81, 0.89]).add([0.95, 0.76, 0.84], lr=0.1)
    vary = {"lr": [0.1]}
    row_q = impact("sensitivity", BASE, vary, quiet.results).rows[0]
    row_l = impact("sensitivity", BASE, vary, loud.results).rows[0]
    assert row_q.effect == approx(0.05) and row_l.effect == approx(0.05)
    # Paired by seed: the quiet study's differences are all 0.05 (no spread: decided), the
    # loud one's 0.25, -0.05, -0.05 (mean 0.05, but wide).
    assert row_q.significant and row_q.decision == "matters" and row_q.best_claimed
    assert row_q.interval == (approx(0.05), approx(0.05))
    assert not row_l.significant and row_l.decision == "undecided"
    assert row_l.threshold == approx(half_width([0.25, -0.05, -0.05], comparisons=1))


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
    # lr, seed by seed: (0.80 + 0.60) / 2 - (0.70 + 0.90) / 2 = -0.10, then -0.11
    assert lr.threshold == approx(half_width([-0.10, -0.11], comparisons=2))
    assert not lr.significant and not hidden.significant
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
    # One seed per configuration: nothing to pair, so nothing decided.
    assert lr.noise is None and lr.threshold is None
    assert not lr.significant and lr.verdict == "no seed repeats"
    act = rows["activation"]
    assert act.bins is None and act.values == ["relu", "tanh"]
    assert act.counts == [6, 6] and act.effect == approx(0.02)
    assert not act.significant and act.decision == "undecided"


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


def decided_trials() -> Trials:
    """Three seeds; lr shifts every seed's accuracy alike (decided: it matters), activation
    moves it by less than a point either way (decided: negligible)."""
    base = [0.80, 0.82, 0.81]
    return (Trials()
            .add(base)
            .add([a - 0.09 for a in base], lr=0.001)
            .add([a + 0.07 for a in base], lr=0.1)
            .add([a + d for a, d in zip(base, [0.003, -0.004, 0.001], strict=True)],
                 activation="tanh"))


def test_decided_rows() -> None:
    rows = {r.param: r for r in impact("sensitivity", BASE, SENS_VARY,
                                       decided_trials().results).rows}
    lr, act = rows["lr"], rows["activation"]
    assert lr.decision == "matters" and lr.best == 0.1 and lr.best_claimed
    assert lr.interval == (approx(0.16), approx(0.16)) and lr.seeds_needed is None
    assert act.decision == "negligible" and not act.best_claimed
    assert act.interval is not None and act.interval[1] < 0.02
    assert act.interval[1] == approx(abs(sum([0.003, -0.004, 0.001]) / 3)
                                     + half_width([0.003, -0.004, 0.001], comparisons=4))


def test_score_predictions() -> None:
    scores = score_predictions({
        "activation": ("tanh", "small"),
        "lr": (0.1, "large"),
        "batch_size": (32, "medium"),
    }, impact("sensitivity", BASE, SENS_VARY, decided_trials().results))
    assert [s.param for s in scores] == ["lr", "activation", "batch_size"]
    lr, act, bs = scores
    assert lr.best_hit is True and lr.actual_size == "large" and lr.size_hit is True
    assert lr.verdict == "lr: best 0.1 as predicted; effect 16.0 points (large) as predicted"
    assert act.best_hit is None and act.actual_best is None  # negligible: no best value
    assert act.size_hit is True and act.actual_size == "small"
    assert "negligible" in act.verdict
    assert bs.best_hit is None and bs.size_hit is None
    assert bs.verdict == "batch_size: not varied in this study"


def test_undecided_rows_are_not_scored() -> None:
    imp = impact("sensitivity", BASE, SENS_VARY, sensitivity_trials().results)  # two seeds
    lr = score_predictions({"lr": (0.1, "large")}, imp)[0]
    assert lr.best_hit is None and lr.size_hit is None
    assert "not decided yet" in lr.verdict and "not scored" in lr.verdict


def test_score_predictions_partial_and_binned() -> None:
    vary, results = random_trials(seeds=3)
    imp = impact("random", BASE, vary, results)
    scores = {s.param: s for s in score_predictions(
        {"lr": (0.05, "medium"), "activation": (None, "SMALL")}, imp)}
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
