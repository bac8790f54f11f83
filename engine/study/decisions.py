"""Deciding an impact row: "matters", "negligible" or "undecided", with an interval for its effect.

A row compares the values of one parameter. Configurations share their seeds (replicate r of
every configuration trains with the same seed), so two values are compared replicate by
replicate: d_r = accuracy(value a, replicate r) - accuracy(value b, replicate r). Each pair of
values gets a two-sided t interval for the mean of d at level alpha / (looks x comparisons): a
Bonferroni correction over every pair of every row of the study and over every look adaptive
seeding may take. So the chance that anything in the study is called "matters" while nothing
matters is at most alpha, however many rows and rounds. The method, what it guarantees and what it
assumes: docs/impact.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

ALPHA = 0.05  # chance of any false "matters" in a study
NEGLIGIBLE = 0.02  # the smallest effect worth caring about: 2 points of accuracy

# One value's accuracy per replicate (the mean over its configurations at that replicate).
Series = Mapping[int, float]


@dataclass(frozen=True)
class PairInterval:
    a: int  # value indices, a < b
    b: int
    n: int  # replicates both values have
    mean: float  # mean of accuracy(a) - accuracy(b)
    sd: float
    half: float  # half-width of the interval; inf below two replicates

    @property
    def significant(self) -> bool:
        return abs(self.mean) > self.half


@dataclass(frozen=True)
class Decision:
    decision: str  # "matters" | "negligible" | "undecided"
    interval: tuple[float, float] | None  # for the effect (the largest difference of means)
    seeds_needed: int | None  # for an undecided row: seeds per configuration likely to decide
    best: int | None  # index of the value with the highest mean
    best_claimed: bool  # whether it beats every other value, within the error control
    tied: list[int]  # indices that cannot be told apart from the best (the best included)
    seeds: int | None  # the look (seeds per configuration) the decision was taken at
    threshold: float | None  # the half-width that the extreme pair's difference had to beat


@lru_cache(maxsize=4096)
def critical_value(dof: int, alpha: float) -> float:
    """The two-sided t quantile: |t| beyond it has probability `alpha` under no difference."""
    from scipy.special import stdtrit  # scipy only when a table is computed (0.4 s import)

    return float(stdtrit(dof, 1 - alpha / 2))


def comparisons(value_counts: Sequence[int]) -> int:
    """Pairwise comparisons in a study whose rows have these numbers of values."""
    return sum(k * (k - 1) // 2 for k in value_counts)


def pair_interval(a: int, b: int, xa: Series, xb: Series, alpha: float,
                  below: int | None = None) -> PairInterval:
    """The interval for mean(a - b) over the replicates both have (those < `below`)."""
    common = sorted(r for r in xa if r in xb and (below is None or r < below))
    d = [xa[r] - xb[r] for r in common]
    n = len(d)
    mean = math.fsum(d) / n if n else 0.0
    if n < 2:
        return PairInterval(a, b, n, mean, 0.0, math.inf)
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in d) / (n - 1))
    return PairInterval(a, b, n, mean, sd, critical_value(n - 1, alpha) * sd / math.sqrt(n))


def decide(series: Sequence[Series], *, looks: Sequence[int], planned_looks: int,
           comparisons_in_study: int, alpha: float = ALPHA,
           negligible: float = NEGLIGIBLE) -> Decision:
    """Decide a row from the looks it had: `looks` are the seeds per configuration at each round
    the study completed (ascending). Each pair's intervals from every look are intersected (all
    looks are covered at once, so their intersection is too): once an interval excludes zero it
    always will, and a row once decided stays decided. With no look yet, the row is undecided
    and its interval is that of all the data so far.

    `planned_looks` is how many looks the study may take in all (every round of its seed
    schedule), and `comparisons_in_study` the pairs over all its rows: the level of each
    interval is alpha / (planned_looks x comparisons_in_study)."""
    level = alpha / (max(planned_looks, 1) * max(comparisons_in_study, 1))
    k = len(series)
    if not looks:
        current = [pair_interval(a, b, series[a], series[b], level)
                   for a in range(k) for b in range(a + 1, k)]
        return _described("undecided", [_bounds(p) for p in current], current, series, level,
                          negligible, None, None)
    bounds: dict[tuple[int, int], tuple[float, float]] = {}
    decided: tuple[str, int] | None = None
    pairs: list[PairInterval] = []
    for n in looks:
        pairs = [pair_interval(a, b, series[a], series[b], level, below=n)
                 for a in range(k) for b in range(a + 1, k)]
        for p in pairs:
            lo, hi = _bounds(p)
            before = bounds.get((p.a, p.b))
            if before is not None and max(lo, before[0]) <= min(hi, before[1]):
                lo, hi = max(lo, before[0]), min(hi, before[1])
            bounds[(p.a, p.b)] = (lo, hi)
        if decided is None:
            now = _decision(list(bounds.values()), negligible)
            if now != "undecided":
                decided = (now, n)
    decision, at = decided if decided is not None else ("undecided", None)
    return _described(decision, [bounds[(p.a, p.b)] for p in pairs], pairs, series, level,
                      negligible, at, looks[-1])


def _bounds(p: PairInterval) -> tuple[float, float]:
    return (p.mean - p.half, p.mean + p.half)


def _decision(bounds: list[tuple[float, float]], negligible: float) -> str:
    if not bounds or any(not math.isfinite(hi - lo) for lo, hi in bounds):
        return "undecided"
    if any(lo > 0 or hi < 0 for lo, hi in bounds):
        return "matters"
    if all(-negligible < lo and hi < negligible for lo, hi in bounds):
        return "negligible"
    return "undecided"


def _described(decision: str, bounds: list[tuple[float, float]], pairs: list[PairInterval],
               series: Sequence[Series], level: float, negligible: float, seeds: int | None,
               last_look: int | None) -> Decision:
    """The decision with the effect's interval and the best value, from the data of the last
    look (all the data when there was none)."""
    shown = [{r: x for r, x in s.items() if last_look is None or r < last_look} for s in series]
    means = {i: math.fsum(s.values()) / len(s) for i, s in enumerate(shown) if s}
    best = max(means, key=lambda i: (means[i], -i)) if means else None
    if not pairs or any(p.n < 2 for p in pairs):
        return Decision(decision, None, None, best, False, [best] if best is not None else [],
                        seeds, None)
    # |mean(a) - mean(b)| lies in [distance of the interval from 0, its farthest end]
    low = max(max(0.0, lo, -hi) for lo, hi in bounds)
    high = max(max(abs(lo), abs(hi)) for lo, hi in bounds)
    tied = [best] if best is not None else []
    for p, (lo, hi) in zip(pairs, bounds, strict=True):
        other = p.b if p.a == best else p.a if p.b == best else None
        # tied unless the interval says the best is the higher one
        best_higher = lo > 0 if p.a == best else hi < 0
        if other is not None and not best_higher:
            tied.append(other)
    extreme = max(pairs, key=lambda p: abs(p.mean))
    threshold = extreme.half if math.isfinite(extreme.half) else None
    needed = seeds_needed(pairs, level, negligible) if decision == "undecided" else None
    return Decision(decision, (low, high), needed, best, decision == "matters" and tied == [best],
                    sorted(tied), seeds, threshold)


def seeds_needed(pairs: list[PairInterval], level: float, negligible: float) -> int | None:
    """Seeds per configuration at which the row would likely be decided, if the differences and
    their spread stay what they are now: the fewest for any pair to exceed its half-width
    ("matters"), or for every pair's interval to fit under `negligible`. None when nothing
    measured yet says (fewer than two replicates, or no spread)."""
    if any(p.n < 2 for p in pairs):
        return None
    z = critical_value(10_000, level)  # large-sample quantile; the t quantile is a bit more
    matters = [(z * p.sd / abs(p.mean)) ** 2 for p in pairs if p.mean != 0 and p.sd > 0]
    room = [negligible - abs(p.mean) for p in pairs]
    negligible_at = (max((z * p.sd / r) ** 2 for p, r in zip(pairs, room, strict=True))
                     if all(r > 0 for r in room) else math.inf)
    estimate = min([*matters, negligible_at])
    if not math.isfinite(estimate):
        return None
    current = min(p.n for p in pairs)
    return max(current + 1, math.ceil(estimate))
