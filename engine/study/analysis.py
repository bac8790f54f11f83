"""The impact table and the other readings of a finished (or running) study.

Input is plain data (`TrialResult`, flat config dicts with bare keys as `TrialConfig.flat()`
gives them), so the CLI and the UI call this straight from store rows. Pure Python + numpy.

Which trials count: "completed" and "diverged" ones. A diverged trial whose validation accuracy is
missing or NaN counts as chance (0.5); each row says how many trials diverged per value. Failed,
pending, running and interrupted trials are left out. Accuracies are fractions (0.93, not 93).

Everything is deterministic: trials are sorted by number before any arithmetic, and sums use
`math.fsum`, so the same trials in any order give the same table.

Readings (`Impact.reading`):

- sensitivity: "one-at-a-time effects around the baseline". A row holds the trials that differ
  from the baseline in that parameter only, plus the baseline's own trials, which count in every
  row as that parameter's baseline value (so the baseline value always appears in the row).
- grid: "marginal averages over the other parameters". A value's mean is over every trial with
  that value, whatever the other parameters are.
- random: "marginal averages over quantile bins". Parameters drawn from a range are cut into up to
  4 quantile bins of the sampled configurations (at least 3 configurations per bin; equal values
  never straddle two bins); such a row's `values` are labels "a–b" (3 significant digits; one
  number when a bin holds one value) and `bins` holds the (low, high) bounds. Listed parameters,
  and ranges with too few distinct values, are reported by value.
- single: "a single configuration: nothing was varied" (no rows).

Numeric values are shown in ascending order, others in listed order (an unlisted baseline value
first). A value without data yet has mean and std None and count 0.

Per value: mean and std (ddof=1, 0 for one trial) of final validation accuracy. best = the value
with the highest mean (ties: the first in row order). effect = max mean - min mean.

noise = pooled seed std: the square root of the mean within-configuration variance (trials grouped
by their full configuration, ddof=1) over configurations with at least two trials. None without
seed repeats.

Verdict. An effect is "above noise" when the gap between the best and the worst value exceeds what
seed noise alone would produce among that many values, at the 5 % level: Tukey-Kramer's test for
the extreme pair,

    effect > q(0.95; k, dof) * sigma * sqrt((1 / n_best + 1 / n_worst) / 2)

where k is the number of values with data, q the studentized-range quantile (computed here), n the
trial counts of the two values and sigma the noise estimate with `dof` degrees of freedom. For two
values this is the two-sample t-test (`1.96 * sigma * sqrt(1/n1 + 1/n2)` for large dof); for more
values it accounts for having picked the extremes out of k, which a plain two-sample test does not.

- sensitivity and grid: sigma = noise (dof = sum over configurations of trials - 1). In a full
  grid the other parameters take the same values under every value of a parameter, so they cancel
  in the difference of marginal means and seed noise is the only chance variation left. Without
  seed repeats there is no estimate: significant is False, verdict "no seed repeats".
  (Configurations share their seeds, see engine.study.strategies, which makes differences less noisy
  than this unpaired test assumes: it errs on the cautious side.)
- random: the other parameters are drawn at random, so they add chance variation to the bins too.
  Here the unit is the configuration (its mean over seeds): n counts configurations and sigma is
  the pooled std of configuration means within each value or bin (dof = sum over values of
  configurations - 1). This works with one seed too; with no value holding two configurations
  the verdict is "too few samples".

Fewer than two values with data: "too few values". `ImpactRow.threshold` is the right-hand side
above (None when not judged), so a UI can show what an effect would have needed.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

COUNTED_STATUSES = ("completed", "diverged")
CHANCE = 0.5  # accuracy a diverged trial without a number counts as
LEVEL = 0.95  # confidence of the verdict
MAX_BINS = 4
MIN_PER_BIN = 3
SMALL_POINTS = 2.0  # effect size categories, in points of accuracy (0.02 = 2 points)
LARGE_POINTS = 10.0

READINGS = {
    "sensitivity": "one-at-a-time effects around the baseline",
    "grid": "marginal averages over the other parameters",
    "random": "marginal averages over quantile bins",
    "single": "a single configuration: nothing was varied",
}


@dataclass(frozen=True)
class TrialResult:
    number: int
    config: dict[str, Any]  # flat, bare keys, as TrialConfig.flat()
    replicate: int
    status: str
    val_acc: float | None


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
    significant: bool
    verdict: str  # "above noise" | "within noise" | "no seed repeats" | "too few values" | ...
    threshold: float | None  # the effect needed to be significant; None when it cannot be judged
    diverged: list[int]  # diverged trials per value
    bins: list[tuple[float, float]] | None = None  # (low, high) per value for binned rows

    def to_dict(self) -> dict[str, Any]:
        return {
            "param": self.param, "values": self.values, "means": self.means, "stds": self.stds,
            "counts": self.counts, "best": self.best, "effect": self.effect, "noise": self.noise,
            "significant": self.significant, "verdict": self.verdict,
            "threshold": self.threshold, "diverged": self.diverged,
            "bins": [list(b) for b in self.bins] if self.bins is not None else None,
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy, "reading": self.reading,
            "baseline_acc": list(self.baseline_acc) if self.baseline_acc else None,
            "noise": self.noise, "counted": self.counted, "left_out": self.left_out,
            "rows": [r.to_dict() for r in self.rows],
        }


@dataclass(frozen=True)
class Interaction:
    """Two-way table of mean accuracy for a grid over two parameters (None: no data)."""

    row_param: str
    col_param: str
    row_values: list[Any]
    col_values: list[Any]
    means: list[list[float | None]]
    counts: list[list[int]]


@dataclass(frozen=True)
class PredictionScore:
    param: str
    predicted_best: Any
    actual_best: Any
    best_hit: bool | None  # None when it cannot be scored (no prediction, no data, not varied)
    predicted_size: str | None
    actual_size: str | None
    size_hit: bool | None
    effect: float | None
    verdict: str


class BestConfig(NamedTuple):
    config: dict[str, Any]
    mean: float
    std: float
    n: int


# ---------------------------------------------------------------------------------------------
# Trials as numbers


@dataclass(frozen=True)
class _Obs:
    number: int
    config: dict[str, Any]  # canonical: lists as tuples
    key: tuple[tuple[str, Any], ...]  # the full configuration, for grouping
    acc: float
    diverged: bool


def _canon(value: Any) -> Any:
    """Hashable form: lists (widths) become tuples."""
    if isinstance(value, (list, tuple)):
        return tuple(_canon(v) for v in value)
    return value


def _public(value: Any) -> Any:
    """Back to the JSON-like form: tuples become lists."""
    if isinstance(value, tuple):
        return [_public(v) for v in value]
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _observations(results: Iterable[TrialResult]) -> tuple[list[_Obs], int]:
    """Counted trials sorted by number (order-independence), and how many were left out."""
    out: list[_Obs] = []
    left_out = 0
    for r in results:
        if r.status not in COUNTED_STATUSES:
            left_out += 1
            continue
        acc = r.val_acc
        if acc is None or not math.isfinite(acc):
            acc = CHANCE
        config = {k: _canon(v) for k, v in r.config.items()}
        key = tuple(sorted(config.items(), key=lambda kv: kv[0]))
        out.append(_Obs(r.number, config, key, float(acc), r.status == "diverged"))
    out.sort(key=lambda o: (o.number, repr(o.key)))
    return out, left_out


def _mean_std(xs: Sequence[float]) -> tuple[float, float]:
    n = len(xs)
    mean = math.fsum(xs) / n
    if n < 2:
        return mean, 0.0
    return mean, math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))


def _by_config(obs: Iterable[_Obs]) -> dict[tuple[tuple[str, Any], ...], list[_Obs]]:
    groups: dict[tuple[tuple[str, Any], ...], list[_Obs]] = {}
    for o in obs:
        groups.setdefault(o.key, []).append(o)
    return groups


def _seed_noise(obs: list[_Obs]) -> tuple[float | None, int]:
    """Pooled seed std (root of the mean within-configuration variance) and its dof."""
    variances: list[float] = []
    dof = 0
    for group in _by_config(obs).values():
        if len(group) >= 2:
            variances.append(_mean_std([o.acc for o in group])[1] ** 2)
            dof += len(group) - 1
    if not variances:
        return None, 0
    return math.sqrt(math.fsum(variances) / len(variances)), dof


# ---------------------------------------------------------------------------------------------
# The studentized range (for the verdict)


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    # Abramowitz & Stegun 7.1.26 for erf (|error| < 1.5e-7): numpy has no vectorised erf.
    z = np.abs(x) / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741
                                                       + t * (-1.453152027 + t * 1.061405429))))
    erf = 1.0 - poly * np.exp(-z * z)
    return np.asarray(0.5 * (1.0 + np.sign(x) * erf))


@functools.lru_cache(maxsize=64)
def _range_cdf_known_sigma(k: int) -> tuple[np.ndarray, np.ndarray]:
    """P(range of k standard normals <= x) on a grid of x (sigma known: infinite dof)."""
    # This grid keeps q within 0.002 of a 751 x 801 one at a fourteenth of the cost (1 ms a k):
    # it is computed in every `hp-tui run`'s report.
    xs = np.linspace(0.0, 15.0, 301)
    z = np.linspace(-8.0, 8.0, 321)
    phi = np.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    inner = _normal_cdf(z[None, :] + xs[:, None]) - _normal_cdf(z)[None, :]
    integrand = phi * np.clip(inner, 0.0, 1.0) ** (k - 1)
    # Trapezoid rule by hand (np.trapz was renamed across numpy versions).
    cdf = k * (z[1] - z[0]) * (integrand.sum(axis=1) - (integrand[:, 0] + integrand[:, -1]) / 2)
    return xs, np.minimum(cdf, 1.0)


@functools.lru_cache(maxsize=256)
def studentized_range_quantile(k: int, dof: int, level: float = LEVEL) -> float:
    """q such that P(range of k normal means / estimated sigma <= q) = level.

    sigma estimated with `dof` degrees of freedom (dof >= 1000 is treated as known sigma). Matches
    the printed tables to about 0.01 (k=2, dof=inf: 2.772; k=5, dof=10: 4.654).
    """
    if k < 2 or dof < 1:
        raise ValueError("need k >= 2 values and dof >= 1")
    xs, cdf_known = _range_cdf_known_sigma(k)

    def cdf(q: float) -> float:
        if dof >= 1000:
            return float(np.interp(q, xs, cdf_known, right=1.0))
        # Average over the distribution of s = sigma_hat / sigma = sqrt(chi2_dof / dof).
        s = np.linspace(1e-6, 1.0 + 12.0 / math.sqrt(2.0 * dof), 4001)
        log_density = (dof / 2 * math.log(dof) + (dof - 1) * np.log(s) - dof * s * s / 2
                       - (dof / 2 - 1) * math.log(2) - math.lgamma(dof / 2))
        inner = np.interp(q * s, xs, cdf_known, right=1.0)
        return float(np.sum(np.exp(log_density) * inner) * (s[1] - s[0]))

    lo, hi = 0.0, 500.0  # q(0.95) stays below ~100 for k <= 100 even at dof = 1
    for _ in range(40):  # to within 5e-10
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) < level else (lo, mid)
    return (lo + hi) / 2


# ---------------------------------------------------------------------------------------------
# Rows


@dataclass
class _Groups:
    """Trials (and configuration means, for random) per value of one parameter."""

    values: list[Any]  # canonical values, row order
    trials: dict[Any, list[_Obs]] = field(default_factory=dict)
    labels: list[Any] | None = None  # shown instead of values (bins)
    bins: list[tuple[float, float]] | None = None


def _ordered(listed: Iterable[Any], first: Iterable[Any], observed: Iterable[Any]) -> list[Any]:
    """Row order: numbers ascending; otherwise `first`, then listed, then observed extras."""
    out: list[Any] = []
    for v in [*first, *listed, *observed]:
        if v not in out:
            out.append(v)
    if out and all(_is_number(v) for v in out):
        out.sort()
    return out


def _listed(entry: Any) -> list[Any]:
    """Values of a `vary` list, canonical; a range (Range or {"min", "max"}) lists nothing."""
    if isinstance(entry, (list, tuple)):
        return [_canon(v) for v in entry]
    return []


def _is_range(entry: Any) -> bool:
    if isinstance(entry, Mapping):
        return "min" in entry
    return hasattr(entry, "min") and hasattr(entry, "max")


def _group(values: list[Any], obs: Iterable[_Obs], value_of: Callable[[_Obs], Any]) -> _Groups:
    g = _Groups(values, {v: [] for v in values})
    for o in obs:
        v = value_of(o)
        for candidate in values:  # == rather than hashing: 10 and 10.0 are one value
            if candidate == v:
                g.trials[candidate].append(o)
                break
    return g


def _differences(obs: list[_Obs], baseline: dict[str, Any]) -> list[frozenset[str]]:
    """For each trial, the keys where its configuration differs from the baseline."""
    return [frozenset(k for k in set(o.config) | set(baseline)
                      if o.config.get(k) != baseline.get(k)) for o in obs]


def _sensitivity_groups(param: str, entry: Any, obs: list[_Obs], diffs: list[frozenset[str]],
                        baseline: dict[str, Any]) -> _Groups:
    base_value = baseline.get(param)
    # The baseline's trials (no difference) and those that differ in this parameter only.
    mine = [o for o, d in zip(obs, diffs, strict=True) if param in o.config and d <= {param}]
    first = [base_value] if base_value is not None else []
    values = _ordered(_listed(entry), first, (o.config[param] for o in mine))
    return _group(values, mine, lambda o: o.config[param])


def _marginal_groups(param: str, entry: Any, obs: list[_Obs]) -> _Groups:
    mine = [o for o in obs if param in o.config]
    values = _ordered(_listed(entry), [], (o.config[param] for o in mine))
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


def _random_groups(param: str, entry: Any, obs: list[_Obs]) -> _Groups:
    mine = [o for o in obs if param in o.config]
    per_config = {o.key: o.config[param] for o in mine}
    numeric = all(_is_number(v) for v in per_config.values())
    bins = _bin_bounds(list(per_config.values())) if _is_range(entry) and numeric else None
    if bins is None:
        return _marginal_groups(param, entry, obs)
    labels = [_label(lo, hi) for lo, hi in bins]
    # Bins are sorted and cover every sampled value: the first whose top reaches v holds it.
    g = _group(list(range(len(bins))), mine,
               lambda o: next(i for i, (_, hi) in enumerate(bins) if o.config[param] <= hi))
    g.labels, g.bins = labels, bins
    return g


def _config_spread(g: _Groups) -> tuple[float | None, int, list[int]]:
    """Pooled std of configuration means within each value, its dof, configurations per value."""
    squares: list[float] = []
    sizes: list[int] = []
    for v in g.values:
        means = [_mean_std([o.acc for o in group])[0] for group in _by_config(g.trials[v]).values()]
        sizes.append(len(means))
        if len(means) >= 2:
            m = math.fsum(means) / len(means)
            squares.extend((x - m) ** 2 for x in means)
    dof = sum(max(n - 1, 0) for n in sizes)
    if dof == 0:
        return None, 0, sizes
    return math.sqrt(math.fsum(squares) / dof), dof, sizes


def _verdict(means: list[float | None], sizes: list[int], sigma: float | None, dof: int,
             missing: str) -> tuple[bool, str, float | None]:
    """(significant, verdict, threshold) by Tukey-Kramer on the extreme pair (module docstring)."""
    have = {i: m for i, m in enumerate(means) if m is not None}
    if len(have) < 2:
        return False, "too few values", None
    if sigma is None or dof < 1:
        return False, missing, None
    hi = max(have, key=lambda i: (have[i], -i))
    lo = min(have, key=lambda i: (have[i], i))
    effect = have[hi] - have[lo]
    q = studentized_range_quantile(len(have), dof)
    threshold = q * sigma * math.sqrt((1 / sizes[hi] + 1 / sizes[lo]) / 2)
    significant = effect > threshold
    return significant, "above noise" if significant else "within noise", threshold


def _row(param: str, g: _Groups, noise: float | None, noise_dof: int, random: bool) -> ImpactRow:
    means: list[float | None] = []
    stds: list[float | None] = []
    counts: list[int] = []
    diverged: list[int] = []
    for v in g.values:
        accs = [o.acc for o in g.trials[v]]
        mean, std = _mean_std(accs) if accs else (None, None)
        means.append(mean)
        stds.append(std)
        counts.append(len(accs))
        diverged.append(sum(o.diverged for o in g.trials[v]))
    shown = g.labels if g.labels is not None else [_public(v) for v in g.values]
    have = {i: m for i, m in enumerate(means) if m is not None}
    best_i = max(have, key=lambda i: (have[i], -i)) if have else None
    effect = max(have.values()) - min(have.values()) if have else 0.0
    if random:
        sigma, dof, sizes = _config_spread(g)
        significant, verdict, threshold = _verdict(means, sizes, sigma, dof, "too few samples")
    else:
        significant, verdict, threshold = _verdict(means, counts, noise, noise_dof,
                                                   "no seed repeats")
    return ImpactRow(
        param=param, values=list(shown), means=means, stds=stds, counts=counts,
        best=shown[best_i] if best_i is not None else None, effect=effect, noise=noise,
        significant=significant, verdict=verdict, threshold=threshold, diverged=diverged,
        bins=g.bins,
    )


# ---------------------------------------------------------------------------------------------
# Public API


def impact(strategy: str, baseline: Mapping[str, Any], vary: Mapping[str, Any],
           results: Iterable[TrialResult]) -> Impact:
    """The impact table of a study: one row per varied parameter (module docstring)."""
    if strategy not in READINGS:
        raise ValueError(f"unknown strategy {strategy!r}")
    obs, left_out = _observations(results)
    base = {k: _canon(v) for k, v in baseline.items()}
    noise, noise_dof = _seed_noise(obs)
    rows: list[ImpactRow] = []
    diffs = _differences(obs, base) if strategy == "sensitivity" else []
    if strategy != "single":
        for param, entry in vary.items():
            if strategy == "sensitivity":
                g = _sensitivity_groups(param, entry, obs, diffs, base)
            elif strategy == "grid":
                g = _marginal_groups(param, entry, obs)
            else:
                g = _random_groups(param, entry, obs)
            rows.append(_row(param, g, noise, noise_dof, random=strategy == "random"))
    rows.sort(key=lambda r: (-r.effect, r.param))
    base_key = tuple(sorted(base.items(), key=lambda kv: kv[0]))
    base_accs = [o.acc for o in obs if o.key == base_key]
    return Impact(
        strategy=strategy, reading=READINGS[strategy], rows=rows,
        baseline_acc=_mean_std(base_accs) if base_accs else None,
        noise=noise, counted=len(obs), left_out=left_out,
    )


def interaction(vary: Mapping[str, Any], results: Iterable[TrialResult]) -> Interaction | None:
    """Mean accuracy for every pair of values of a grid over exactly two listed parameters.

    Rows are the first parameter of `vary`, columns the second: "do all architectures react the
    same way to learning rates?". None for any other vary table.
    """
    keys = list(vary)
    if len(keys) != 2 or any(_is_range(vary[k]) for k in keys):
        return None
    obs, _ = _observations(results)
    rk, ck = keys
    mine = [o for o in obs if rk in o.config and ck in o.config]
    rows = _ordered(_listed(vary[rk]), [], (o.config[rk] for o in mine))
    cols = _ordered(_listed(vary[ck]), [], (o.config[ck] for o in mine))
    means: list[list[float | None]] = []
    counts: list[list[int]] = []
    for r in rows:
        accs_by_col = [[o.acc for o in mine if o.config[rk] == r and o.config[ck] == c]
                       for c in cols]
        means.append([_mean_std(a)[0] if a else None for a in accs_by_col])
        counts.append([len(a) for a in accs_by_col])
    return Interaction(rk, ck, [_public(v) for v in rows], [_public(v) for v in cols],
                       means, counts)


def effect_size_category(effect: float) -> str:
    """small (< 2 points of accuracy), medium (< 10 points) or large; effect as a fraction."""
    points = abs(effect) * 100
    if points < SMALL_POINTS:
        return "small"
    return "medium" if points < LARGE_POINTS else "large"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(_public(value))


def _same_value(predicted: Any, row: ImpactRow, index: int) -> bool:
    if row.bins is not None:  # binned: a hit when the prediction falls in the best bin
        lo, hi = row.bins[index]
        return _is_number(predicted) and lo <= predicted <= hi
    actual = _canon(row.values[index])
    if _is_number(predicted) and _is_number(actual):
        return math.isclose(predicted, actual, rel_tol=1e-9, abs_tol=1e-12)
    return bool(_canon(predicted) == actual)


def _score(param: str, best: Any, size: str | None, row: ImpactRow) -> PredictionScore:
    best_hit: bool | None = None
    if best is not None and row.best is not None:
        best_hit = _same_value(best, row, row.values.index(row.best))
    size = size.lower() if isinstance(size, str) else None
    have_data = row.best is not None
    actual_size = effect_size_category(row.effect) if have_data else None
    size_hit = (size == actual_size) if size in ("small", "medium", "large") and have_data \
        else None
    parts: list[str] = []
    if best_hit is not None:
        parts.append(f"best {_fmt(row.best)} as predicted" if best_hit
                     else f"best {_fmt(row.best)}, predicted {_fmt(best)}")
    if size_hit is not None:
        measured = f"{row.effect * 100:.1f} points ({actual_size})"
        parts.append(f"effect {measured} as predicted" if size_hit
                     else f"effect {measured}, predicted {size}")
    if not have_data:
        parts.append("no results yet")
    elif not row.significant:
        parts.append("within noise or not judged, so the best value may be luck")
    return PredictionScore(param, best, row.best, best_hit, size, actual_size, size_hit,
                           row.effect if have_data else None, f"{param}: " + "; ".join(parts))


def score_predictions(predictions: Mapping[str, tuple[Any, str | None]],
                      impact: Impact) -> list[PredictionScore]:
    """Each prediction (expected best value, expected size) scored against the impact table.

    A best value hits when it equals the measured best (numbers within 1e-9 relative; for binned
    rows, when it falls in the best bin). A size hits when it equals `effect_size_category` of the
    measured effect. Scores follow the table's row order; predictions about parameters the study
    did not vary come last, by name, and are not scored.
    """
    rows = {r.param: r for r in impact.rows}
    out = [_score(r.param, *predictions[r.param], r) for r in impact.rows if r.param in predictions]
    for param in sorted(set(predictions) - set(rows)):
        best, size = predictions[param]
        out.append(PredictionScore(param, best, None, None, size, None, None, None,
                                   f"{param}: not varied in this study"))
    return out


def _best_group(results: Iterable[TrialResult]) -> list[_Obs] | None:
    groups = _by_config(_observations(results)[0])
    if not groups:
        return None

    def rank(group: list[_Obs]) -> tuple[float, int, int]:
        # Highest mean; ties: more trials, then the earliest trial.
        return (-_mean_std([o.acc for o in group])[0], -len(group), group[0].number)

    return min(groups.values(), key=rank)


def best_config(results: Iterable[TrialResult]) -> BestConfig | None:
    """The configuration with the best mean validation accuracy over its seeds (None: no data)."""
    group = _best_group(results)
    if group is None:
        return None
    mean, std = _mean_std([o.acc for o in group])
    return BestConfig({k: _public(v) for k, v in group[0].config.items()}, mean, std, len(group))


def best_trial(results: Iterable[TrialResult]) -> int | None:
    """The number of the best trial of `best_config` (highest accuracy; ties: earliest)."""
    group = _best_group(results)
    if group is None:
        return None
    return min(group, key=lambda o: (-o.acc, o.number)).number
