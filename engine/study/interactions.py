"""The two-way table of a grid over two parameters: mean accuracy for every pair of values."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from engine.study.impact_rows import is_range, listed_values, ordered_values
from engine.study.trials import TrialResult, mean_std, observations, plain


@dataclass(frozen=True)
class Interaction:
    """Two-way table of mean accuracy for a grid over two parameters (None: no data)."""

    row_param: str
    col_param: str
    row_values: list[Any]
    col_values: list[Any]
    means: list[list[float | None]]
    counts: list[list[int]]


def interaction(vary: Mapping[str, Any], results: Iterable[TrialResult]) -> Interaction | None:
    """Mean accuracy for every pair of values of a grid over exactly two listed parameters.

    Rows are the first parameter of `vary`, columns the second: "do all architectures react the
    same way to learning rates?". None for any other vary table.
    """
    keys = list(vary)
    if len(keys) != 2 or any(is_range(vary[k]) for k in keys):
        return None
    obs, _ = observations(results)
    rk, ck = keys
    mine = [o for o in obs if rk in o.config and ck in o.config]
    rows = ordered_values(listed_values(vary[rk]), [], (o.config[rk] for o in mine))
    cols = ordered_values(listed_values(vary[ck]), [], (o.config[ck] for o in mine))
    means: list[list[float | None]] = []
    counts: list[list[int]] = []
    for r in rows:
        accs_by_col = [[o.acc for o in mine if o.config[rk] == r and o.config[ck] == c]
                       for c in cols]
        means.append([mean_std(a)[0] if a else None for a in accs_by_col])
        counts.append([len(a) for a in accs_by_col])
    return Interaction(rk, ck, [plain(v) for v in rows], [plain(v) for v in cols],
                       means, counts)
