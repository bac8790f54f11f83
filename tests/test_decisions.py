"""The decisions' claims, checked on simulated studies whose truth is known: on null problems
(nothing matters) a false "matters" anywhere in a study is rarer than 5%, through every look of
adaptive seeding; real effects are found; "negligible" is reachable; a lucky value is never
claimed best. Simulations are seeded, so the counts are the same on every machine."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from engine.study.decisions import ALPHA, comparisons, critical_value, decide

SCHEDULE = [4, 8, 16, 32, 64]


def study(rng: np.random.Generator, effects: list[list[float]], seeds: int,
          seed_sd: float = 0.03, noise_sd: float = 0.02) -> list[list[dict[int, float]]]:
    """Simulated accuracies: per row, per value, per replicate. A replicate's seed moves every
    configuration alike (`seed_sd`, shared: the common random numbers); each trial adds its own
    noise (`noise_sd`)."""
    shared = rng.normal(0.0, seed_sd, seeds)
    return [[{r: 0.8 + effect + shared[r] + rng.normal(0.0, noise_sd) for r in range(seeds)}
             for effect in row] for row in effects]


def bounded_study(rng: np.random.Generator, k_values: list[int], seeds: int,
                  val_points: int = 100) -> list[list[dict[int, float]]]:
    """A null problem as a validation set sees it: each trial's accuracy is the share of
    `val_points` labels it guesses right at chance (labels independent of the features)."""
    return [[{r: rng.binomial(val_points, 0.5) / val_points for r in range(seeds)}
             for _ in range(k)] for k in k_values]


def decisions_of(rows: list[list[dict[int, float]]], looks: list[int]) -> list[str]:
    m = comparisons([len(r) for r in rows])
    return [decide(row, looks=looks, planned_looks=len(looks), comparisons_in_study=m).decision
            for row in rows]


def test_the_critical_value_is_students_t() -> None:
    for dof, alpha in [(1, 0.05), (3, 0.01), (15, 0.0005), (63, 1e-4)]:
        assert critical_value(dof, alpha) == pytest.approx(stats.t.ppf(1 - alpha / 2, dof))


@pytest.mark.parametrize("kind", ["normal", "bounded"])
def test_null_studies_rarely_call_anything_matters_through_every_look(kind: str) -> None:
    rng = np.random.default_rng(1)
    k_values = [3, 4, 2, 5]  # four rows: 3 + 6 + 1 + 10 = 20 comparisons
    studies = 1000
    false = 0
    for _ in range(studies):
        rows = (study(rng, [[0.0] * k for k in k_values], SCHEDULE[-1]) if kind == "normal"
                else bounded_study(rng, k_values, SCHEDULE[-1]))
        # Every look is taken, as adaptive seeding would: a row decided early stays decided.
        false += "matters" in decisions_of(rows, SCHEDULE)
    assert false / studies <= ALPHA


def test_a_fixed_sample_false_positive_rate_stays_under_alpha_even_for_one_row() -> None:
    rng = np.random.default_rng(2)
    hits = sum(decisions_of(study(rng, [[0.0, 0.0]], 8), [8]) == ["matters"]
               for _ in range(2000))
    assert hits / 2000 <= ALPHA


def test_peeking_without_the_correction_would_inflate_the_error() -> None:
    """Why the looks count: the same null studies, judged at every look at the level of one
    look, call some "matters" far more often than at the corrected level."""
    rng = np.random.default_rng(3)
    naive = corrected = 0
    runs = 1000
    for _ in range(runs):
        row = study(rng, [[0.0, 0.0]], 64)[0]
        naive += decide(row, looks=SCHEDULE, planned_looks=1,
                        comparisons_in_study=1).decision == "matters"
        corrected += decide(row, looks=SCHEDULE, planned_looks=len(SCHEDULE),
                            comparisons_in_study=1).decision == "matters"
    assert corrected < naive and naive / runs > 2 * ALPHA


def test_the_corrected_level_holds_through_the_looks_to_a_tenth_of_a_point() -> None:
    """The union of the looks' rejections, on 200,000 null rows at once (the same intervals
    as `decide` computes, vectorised): under 5%, with a Monte Carlo error of 0.05 points."""
    rng = np.random.default_rng(11)
    d = rng.normal(0.0, 1.0, (200_000, SCHEDULE[-1]))
    level = ALPHA / len(SCHEDULE)
    rejected = np.zeros(len(d), dtype=bool)
    for n in SCHEDULE:
        x = d[:, :n]
        half = critical_value(n - 1, level) * x.std(axis=1, ddof=1) / np.sqrt(n)
        rejected |= np.abs(x.mean(axis=1)) > half
    assert rejected.mean() + 3 * np.sqrt(ALPHA * (1 - ALPHA) / len(d)) <= ALPHA


def test_a_real_effect_is_found_and_its_best_value_claimed() -> None:
    rng = np.random.default_rng(4)
    found = covered = 0
    for _ in range(50):
        rows = study(rng, [[0.0, 0.05, -0.02], [0.0, 0.0]], 64)
        m = comparisons([3, 2])
        d = decide(rows[0], looks=SCHEDULE, planned_looks=5, comparisons_in_study=m)
        assert d.decision == "matters" and d.seeds in SCHEDULE
        found += d.best == 1 and d.best_claimed and d.tied == [1]
        assert d.interval is not None
        covered += d.interval[0] <= 0.07 <= d.interval[1]  # the true effect: 0.05 - -0.02
    assert found == 50 and covered >= 48


def test_strong_effects_are_decided_with_few_seeds() -> None:
    rng = np.random.default_rng(5)
    rows = study(rng, [[0.0, 0.10]], 64, seed_sd=0.03, noise_sd=0.01)
    d = decide(rows[0], looks=SCHEDULE, planned_looks=5, comparisons_in_study=1)
    assert d.decision == "matters" and d.seeds == 4  # the first look already decides it


def test_negligible_is_reachable_when_nothing_matters() -> None:
    rng = np.random.default_rng(6)
    reached = 0
    for _ in range(50):
        rows = study(rng, [[0.0, 0.0, 0.0]], 64, noise_sd=0.01)
        d = decide(rows[0], looks=SCHEDULE, planned_looks=5, comparisons_in_study=3)
        assert d.decision != "matters"
        reached += d.decision == "negligible"
        if d.decision == "negligible":
            assert d.interval is not None and d.interval[1] < 0.02
            assert not d.best_claimed
    assert reached >= 45


def test_tied_best_values_are_not_claimed() -> None:
    rng = np.random.default_rng(7)
    rows = study(rng, [[0.05, 0.05, -0.05]], 64, noise_sd=0.01)
    d = decide(rows[0], looks=SCHEDULE, planned_looks=5, comparisons_in_study=3)
    assert d.decision == "matters"
    assert not d.best_claimed and sorted(d.tied) == [0, 1]


def test_an_undecided_row_says_how_many_seeds_would_decide_it() -> None:
    rng = np.random.default_rng(8)
    row = study(rng, [[0.0, 0.015]], 4, noise_sd=0.02)[0]
    d = decide(row, looks=[4], planned_looks=5, comparisons_in_study=1)
    assert d.decision == "undecided"
    assert d.seeds_needed is not None and d.seeds_needed > 4
    assert d.interval is not None and d.interval[0] == 0.0


def test_a_row_decided_at_an_early_look_keeps_its_decision() -> None:
    rng = np.random.default_rng(9)
    row = study(rng, [[0.0, 0.10]], 64, noise_sd=0.01)[0]
    early = decide(row, looks=[4], planned_looks=5, comparisons_in_study=1)
    later = decide(row, looks=SCHEDULE, planned_looks=5, comparisons_in_study=1)
    # decided at 4 seeds: later seeds do not reopen it, they narrow its interval
    assert later.decision == early.decision == "matters" and later.seeds == early.seeds == 4
    assert early.interval is not None and later.interval is not None
    assert early.interval[0] <= later.interval[0] <= later.interval[1] <= early.interval[1]
