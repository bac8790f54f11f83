"""The impact table and the other readings of a finished (or running) study.

Input is plain data (`TrialResult`, flat config dicts with bare keys as `TrialConfig.flat()`
gives them), so the CLI and the UI call this straight from store rows. Pure Python + numpy.
What the table computes, what a verdict means and what it assumes: docs/impact.md.

This module holds the entry points (`impact`, `interaction`, `score_predictions`, `best_config`,
`best_trial`) and every public name; the work is in `trials` (which trials count, seed noise),
`impact_rows` (the rows), `decisions` (each row's decision and interval), `interactions`
and `predictions`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from engine.study.decisions import ALPHA, NEGLIGIBLE
from engine.study.impact_rows import (
    MAX_BINS,
    MIN_PER_BIN,
    READINGS,
    Impact,
    ImpactRow,
    Looks,
    impact_rows,
)
from engine.study.interactions import Interaction, interaction
from engine.study.predictions import (
    LARGE_POINTS,
    SMALL_POINTS,
    PredictionScore,
    effect_size_category,
    score_predictions,
)
from engine.study.trials import (
    CHANCE,
    COUNTED_STATUSES,
    Obs,
    TrialResult,
    by_config,
    canon,
    mean_std,
    observations,
    plain,
    seed_noise,
)

__all__ = [
    "ALPHA", "CHANCE", "COUNTED_STATUSES", "LARGE_POINTS", "MAX_BINS", "MIN_PER_BIN",
    "NEGLIGIBLE", "READINGS", "SMALL_POINTS", "BestConfig", "Impact", "ImpactRow", "Interaction",
    "Looks", "PredictionScore", "TrialResult", "best_config", "best_trial",
    "effect_size_category", "impact", "interaction", "score_predictions",
]


class BestConfig(NamedTuple):
    config: dict[str, Any]
    mean: float
    std: float
    n: int


def impact(strategy: str, baseline: Mapping[str, Any], vary: Mapping[str, Any],
           results: Iterable[TrialResult], looks: Looks | None = None) -> Impact:
    """The impact table of a study: one row per varied parameter (docs/impact.md). `looks`:
    the rounds an adaptive study completed (default: one look at all the data)."""
    if strategy not in READINGS:
        raise ValueError(f"unknown strategy {strategy!r}")
    obs, left_out = observations(results)
    base = {k: canon(v) for k, v in baseline.items()}
    noise, _ = seed_noise(obs)
    rows = impact_rows(strategy, vary, obs, base, noise, looks)
    base_key = tuple(sorted(base.items(), key=lambda kv: kv[0]))
    base_accs = [o.acc for o in obs if o.key == base_key]
    return Impact(
        strategy=strategy, reading=READINGS[strategy], rows=rows,
        baseline_acc=mean_std(base_accs) if base_accs else None,
        noise=noise, counted=len(obs), left_out=left_out,
        negligible=looks.negligible if looks else NEGLIGIBLE,
    )


def _best_group(results: Iterable[TrialResult]) -> list[Obs] | None:
    groups = by_config(observations(results)[0])
    if not groups:
        return None

    def rank(group: list[Obs]) -> tuple[float, int, int]:
        # Highest mean; ties: more trials, then the earliest trial.
        return (-mean_std([o.acc for o in group])[0], -len(group), group[0].number)

    return min(groups.values(), key=rank)


def best_config(results: Iterable[TrialResult]) -> BestConfig | None:
    """The configuration with the best mean validation accuracy over its seeds (None: no data)."""
    group = _best_group(results)
    if group is None:
        return None
    mean, std = mean_std([o.acc for o in group])
    return BestConfig({k: plain(v) for k, v in group[0].config.items()}, mean, std, len(group))


def best_trial(results: Iterable[TrialResult]) -> int | None:
    """The number of the best trial of `best_config` (highest accuracy; ties: earliest)."""
    group = _best_group(results)
    if group is None:
        return None
    return min(group, key=lambda o: (-o.acc, o.number)).number
