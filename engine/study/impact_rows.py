"""The rows of the impact table: one-at-a-time (sensitivity), marginal (grid) and binned
(random) groups of trials per value of a parameter, and each row's decision (`decisions`;
docs/impact.md).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.study import decisions
from engine.study.trials import Obs, canon, is_number, mean_std, plain

MAX_BINS = 4
MIN_PER_BIN = 3

READINGS = {
    "sensitivity": "one-at-a-time effects around the baseline",
    "grid": "marginal averages over the other parameters",
    "random": "marginal averages over quantile bins",
    # the same rows as random's, but TPE's draws crowd where it found good results
    "tpe": "marginal averages over quantile bins of model-guided draws (not uniform: read "
           "effects as hints)",
    "single": "a single configuration: nothing was varied",
}


@dataclass(frozen=True)
class ImpactRow:
    param: str
    values: list[Any]  # values (widths as lists), or bin labels for binned random rows
    means: list[float | None]  # None: no data for that value yet
    stds: list[float | None]
    counts: list[int]
    best: Any  # the best value (or bin label); None without data
    effect: float  # max mean - min mean, as a fraction of accuracy
    noise: float | None  # the study's pooled seed std
    significant: bool  # decision == "matters"
    verdict: str  # the decision in words: "matters", "negligible", "undecided", "too few values"
    threshold: float | None  # the half-width the extreme pair's difference had to beat
    diverged: list[int]  # diverged trials per value
    bins: list[tuple[float, float]] | None = None  # (low, high) per value for binned rows
    decision: str = "undecided"  # "matters" | "negligible" | "undecided"
    interval: tuple[float, float] | None = None  # for `effect`, in the same units
    seeds_needed: int | None = None  # undecided: seeds per configuration likely to decide it
    best_claimed: bool = False  # `best` beats every other value within the error control
    tied: list[Any] = field(default_factory=list)  # values not told apart from `best`
    decided_at: int | None = None  # seeds per configuration when it was decided

    @property
    def settled(self) -> bool:
        """Whether more seeds have nothing left to settle: the row is negligible, or matters
        with its best value claimed, or cannot be judged by seeds (a value has no data)."""
        return (self.decision == "negligible" or self.verdict == "too few values"
                or (self.decision == "matters" and self.best_claimed))

    def to_dict(self) -> dict[str, Any]:
        return {
            "param": self.param, "values": self.values, "means": self.means, "stds": self.stds,
            "counts": self.counts, "best": self.best, "effect": self.effect, "noise": self.noise,
            "significant": self.significant, "verdict": self.verdict,
            "threshold": self.threshold, "diverged": self.diverged,
            "bins": [list(b) for b in self.bins] if self.bins is not None else None,
            "decision": self.decision,
            "interval": list(self.interval) if self.interval is not None else None,
            "seeds_needed": self.seeds_needed, "best_claimed": self.best_claimed,
            "tied_best": self.tied, "decided_at": self.decided_at, "settled": self.settled,
        }


@dataclass(frozen=True)
class Impact:
    strategy: str
    reading: str
    rows: list[ImpactRow]  # by effect, largest first (ties: by param name)
    baseline_acc: tuple[float, float] | None  # (mean, std) of the baseline's trials, if any
    noise: float | None = None
    counted: int = 0  # trials that entered the table
    left_out: int = 0  # failed or unfinished trials
    negligible: float = decisions.NEGLIGIBLE

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy, "reading": self.reading,
            "baseline_acc": list(self.baseline_acc) if self.baseline_acc else None,
            "noise": self.noise, "counted": self.counted, "left_out": self.left_out,
            "negligible": self.negligible, "rows": [r.to_dict() for r in self.rows],
        }


@dataclass
class _Groups:
    """Trials (and configuration means, for random) per value of one parameter."""

    values: list[Any]  # canonical values, row order
    trials: dict[Any, list[Obs]] = field(default_factory=dict)
    labels: list[Any] | None = None  # shown instead of values (bins)
    bins: list[tuple[float, float]] | None = None


def ordered_values(listed: Iterable[Any], first: Iterable[Any],
                   observed: Iterable[Any]) -> list[Any]:
    """Row order: numbers ascending; otherwise `first`, then listed, then observed extras."""
    out: list[Any] = []
    for v in [*first, *listed, *observed]:
        if v not in out:
            out.append(v)
    if out and all(is_number(v) for v in out):
        out.sort()
    return out


def listed_values(entry: Any) -> list[Any]:
    """Values of a `vary` list, canonical; a range (Range or {"min", "max"}) lists nothing."""
    if isinstance(entry, (list, tuple)):
        return [canon(v) for v in entry]
    return []


def is_range(entry: Any) -> bool:
    if isinstance(entry, Mapping):
        return "min" in entry
    return hasattr(entry, "min") and hasattr(entry, "max")


def _group(values: list[Any], obs: Iterable[Obs], value_of: Callable[[Obs], Any]) -> _Groups:
    g = _Groups(values, {v: [] for v in values})
    for o in obs:
        v = value_of(o)
        for candidate in values:  # == rather than hashing: 10 and 10.0 are one value
            if candidate == v:
                g.trials[candidate].append(o)
                break
    return g


def _differences(obs: list[Obs], baseline: dict[str, Any]) -> list[frozenset[str]]:
    """For each trial, the keys where its configuration differs from the baseline."""
    return [frozenset(k for k in set(o.config) | set(baseline)
                      if o.config.get(k) != baseline.get(k)) for o in obs]


def _sensitivity_groups(param: str, entry: Any, obs: list[Obs], diffs: list[frozenset[str]],
                        baseline: dict[str, Any]) -> _Groups:
    base_value = baseline.get(param)
    # The baseline's trials (no difference) and those that differ in this parameter only.
    mine = [o for o, d in zip(obs, diffs, strict=True) if param in o.config and d <= {param}]
    first = [base_value] if base_value is not None else []
    values = ordered_values(listed_values(entry), first, (o.config[param] for o in mine))
    return _group(values, mine, lambda o: o.config[param])


def _marginal_groups(param: str, entry: Any, obs: list[Obs]) -> _Groups:
    mine = [o for o in obs if param in o.config]
    values = ordered_values(listed_values(entry), [], (o.config[param] for o in mine))
    return _group(values, mine, lambda o: o.config[param])


def _bin_bounds(config_values: list[float]) -> list[tuple[float, float]] | None:
    """Quantile bins of one value per configuration; None when binning would not help."""
    vals = sorted(config_values)
    n_bins = min(MAX_BINS, len(vals) // MIN_PER_BIN)
    if n_bins < 2 or len(set(vals)) <= n_bins:
        return None
    cuts: list[int] = []
    for i in range(1, n_bins):
        cut = round(i * len(vals) / n_bins)
        while 0 < cut < len(vals) and vals[cut] == vals[cut - 1]:
            cut += 1  # equal values stay in one bin
        if 0 < cut < len(vals) and (not cuts or cut > cuts[-1]):
            cuts.append(cut)
    edges = [0, *cuts, len(vals)]
    return [(vals[a], vals[b - 1]) for a, b in itertools.pairwise(edges)]


def _label(lo: float, hi: float) -> str:
    return f"{lo:.3g}" if lo == hi else f"{lo:.3g}–{hi:.3g}"


def _random_groups(param: str, entry: Any, obs: list[Obs]) -> _Groups:
    mine = [o for o in obs if param in o.config]
    per_config = {o.key: o.config[param] for o in mine}
    numeric = all(is_number(v) for v in per_config.values())
    bins = _bin_bounds(list(per_config.values())) if is_range(entry) and numeric else None
    if bins is None:
        return _marginal_groups(param, entry, obs)
    labels = [_label(lo, hi) for lo, hi in bins]
    # Bins are sorted and cover every sampled value: the first whose top reaches v holds it.
    g = _group(list(range(len(bins))), mine,
               lambda o: next(i for i, (_, hi) in enumerate(bins) if o.config[param] <= hi))
    g.labels, g.bins = labels, bins
    return g


def _series(g: _Groups) -> list[dict[int, float]]:
    """Per value, its accuracy per replicate: the mean over the value's configurations (or the
    bin's) that trained with that replicate's seed."""
    out = []
    for v in g.values:
        per: dict[int, list[float]] = {}
        for o in g.trials[v]:
            per.setdefault(o.replicate, []).append(o.acc)
        out.append({r: math.fsum(a) / len(a) for r, a in sorted(per.items())})
    return out


@dataclass(frozen=True)
class Looks:
    """The error control's looks: the seeds per configuration at each round the study
    completed, how many rounds it may take in all, and the smallest effect worth caring about."""

    done: tuple[int, ...] | None = None  # None: one look, at all the data; (): none yet
    planned: int = 1
    negligible: float = decisions.NEGLIGIBLE


def _row(param: str, g: _Groups, noise: float | None, looks: Looks,
         comparisons: int) -> ImpactRow:
    means: list[float | None] = []
    stds: list[float | None] = []
    counts: list[int] = []
    diverged: list[int] = []
    for v in g.values:
        accs = [o.acc for o in g.trials[v]]
        mean, std = mean_std(accs) if accs else (None, None)
        means.append(mean)
        stds.append(std)
        counts.append(len(accs))
        diverged.append(sum(o.diverged for o in g.trials[v]))
    shown = g.labels if g.labels is not None else [plain(v) for v in g.values]
    have = [i for i, m in enumerate(means) if m is not None]
    measured = [m for m in means if m is not None]
    effect = max(measured) - min(measured) if measured else 0.0
    series = _series(g)
    if len(have) < 2:
        best = have[0] if have else None
        return ImpactRow(
            param=param, values=list(shown), means=means, stds=stds, counts=counts,
            best=shown[best] if best is not None else None, effect=effect, noise=noise,
            significant=False, verdict="too few values", threshold=None, diverged=diverged,
            bins=g.bins, tied=[shown[best]] if best is not None else [])
    kept = [series[i] for i in have]  # values without data take no part
    done = looks.done if looks.done is not None else [max(len(s) for s in kept)]
    d = decisions.decide(kept, looks=done,
                         planned_looks=looks.planned, comparisons_in_study=comparisons,
                         negligible=looks.negligible)
    best = have[d.best] if d.best is not None else None
    return ImpactRow(
        param=param, values=list(shown), means=means, stds=stds, counts=counts,
        best=shown[best] if best is not None else None, effect=effect, noise=noise,
        significant=d.decision == "matters",
        verdict="no seed repeats" if d.interval is None else d.decision, threshold=d.threshold,
        diverged=diverged, bins=g.bins, decision=d.decision, interval=d.interval,
        seeds_needed=d.seeds_needed, best_claimed=d.best_claimed,
        tied=[shown[have[i]] for i in d.tied], decided_at=d.seeds,
    )


def impact_rows(strategy: str, vary: Mapping[str, Any], obs: list[Obs], base: dict[str, Any],
                noise: float | None, looks: Looks | None = None) -> list[ImpactRow]:
    """One row per parameter of `vary` (none for a single study), by effect, largest first."""
    groups: dict[str, _Groups] = {}
    diffs = _differences(obs, base) if strategy == "sensitivity" else []
    if strategy != "single":
        for param, entry in vary.items():
            if strategy == "sensitivity":
                groups[param] = _sensitivity_groups(param, entry, obs, diffs, base)
            elif strategy == "grid":
                groups[param] = _marginal_groups(param, entry, obs)
            else:
                groups[param] = _random_groups(param, entry, obs)
    # Every pair of every row counts towards the error control, data or not yet.
    comparisons = decisions.comparisons([len(g.values) for g in groups.values()])
    rows = [_row(p, g, noise, looks or Looks(), comparisons) for p, g in groups.items()]
    rows.sort(key=lambda r: (-r.effect, r.param))
    return rows
