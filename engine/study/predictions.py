"""Predictions (an expected best value and effect size per parameter) scored against the
impact table."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.study.impact_rows import Impact, ImpactRow
from engine.study.trials import canon, is_number, plain

SMALL_POINTS = 2.0  # effect size categories, in points of accuracy (0.02 = 2 points)
LARGE_POINTS = 10.0


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


def effect_size_category(effect: float) -> str:
    """small (< 2 points of accuracy), medium (< 10 points) or large; effect as a fraction."""
    points = abs(effect) * 100
    if points < SMALL_POINTS:
        return "small"
    return "medium" if points < LARGE_POINTS else "large"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(plain(value))


def _same_value(predicted: Any, row: ImpactRow, index: int) -> bool:
    if row.bins is not None:  # binned: a hit when the prediction falls in the best bin
        lo, hi = row.bins[index]
        return is_number(predicted) and lo <= predicted <= hi
    actual = canon(row.values[index])
    if is_number(predicted) and is_number(actual):
        return math.isclose(predicted, actual, rel_tol=1e-9, abs_tol=1e-12)
    return bool(canon(predicted) == actual)


def _score(param: str, best: Any, size: str | None, row: ImpactRow) -> PredictionScore:
    """A prediction scored only against what the row decided: an undecided row scores
    nothing yet; a negligible one has no best value; a best value that ties with others hits
    when the prediction is one of them."""
    size = size.lower() if isinstance(size, str) else None
    have_data = row.best is not None
    decided = row.decision in ("matters", "negligible")
    actual_size = effect_size_category(row.effect) if have_data and decided else None
    best_hit: bool | None = None
    if best is not None and row.decision == "matters" and row.best is not None:
        tied = row.tied or [row.best]
        best_hit = any(_same_value(best, row, row.values.index(v)) for v in tied)
    size_hit = (size == actual_size) if size in ("small", "medium", "large") and actual_size \
        else None
    parts: list[str] = []
    if best_hit is not None:
        shown = _fmt(row.best) if row.best_claimed else " or ".join(_fmt(v) for v in row.tied)
        parts.append(f"best {shown} as predicted" if best_hit
                     else f"best {shown}, predicted {_fmt(best)}")
    if size_hit is not None:
        measured = f"{row.effect * 100:.1f} points ({actual_size})"
        parts.append(f"effect {measured} as predicted" if size_hit
                     else f"effect {measured}, predicted {size}")
    if not have_data:
        parts.append("no results yet")
    elif row.decision == "negligible":
        parts.append("negligible: no value is better than another")
    elif not decided:
        needs = f" (about {row.seeds_needed} seeds would decide it)" if row.seeds_needed else ""
        parts.append(f"not decided yet{needs}, so not scored")
    actual_best = row.best if row.decision == "matters" else None
    return PredictionScore(param, best, actual_best, best_hit, size,
                           actual_size, size_hit, row.effect if have_data else None,
                           f"{param}: " + "; ".join(parts))


def score_predictions(predictions: Mapping[str, tuple[Any, str | None]],
                      impact: Impact) -> list[PredictionScore]:
    """Each prediction (expected best value, expected size) scored against the impact table.

    Only decided rows are scored. A best value hits when it equals the measured best, or one of
    the values tied with it (numbers within 1e-9 relative; for binned rows, when it falls in the
    bin); a row that is negligible has no best value. A size hits when it equals
    `effect_size_category` of the measured effect. Scores follow the table's row order;
    predictions about parameters the study did not vary come last, by name, and are not scored.
    """
    rows = {r.param: r for r in impact.rows}
    out = [_score(r.param, *predictions[r.param], r) for r in impact.rows if r.param in predictions]
    for param in sorted(set(predictions) - set(rows)):
        best, size = predictions[param]
        out.append(PredictionScore(param, best, None, None, size, None, None, None,
                                   f"{param}: not varied in this study"))
    return out
