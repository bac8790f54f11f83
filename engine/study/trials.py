"""Trials as numbers, for the analysis: which trials count, their accuracy (a diverged trial
without a number counts as chance), grouped by configuration, and the study's seed noise."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

COUNTED_STATUSES = ("completed", "diverged")
CHANCE = 0.5  # accuracy a diverged trial without a number counts as


@dataclass(frozen=True)
class TrialResult:
    number: int
    config: dict[str, Any]  # flat, bare keys, as TrialConfig.flat()
    replicate: int
    status: str
    val_acc: float | None


@dataclass(frozen=True)
class Obs:
    number: int
    config: dict[str, Any]  # canonical: lists as tuples
    key: tuple[tuple[str, Any], ...]  # the full configuration, for grouping
    acc: float
    diverged: bool
    replicate: int = 0  # configurations share seeds: replicate r of each trains with one seed


def canon(value: Any) -> Any:
    """Hashable form: lists (widths) become tuples."""
    if isinstance(value, (list, tuple)):
        return tuple(canon(v) for v in value)
    return value


def plain(value: Any) -> Any:
    """Back to the JSON-like form: tuples become lists."""
    if isinstance(value, tuple):
        return [plain(v) for v in value]
    return value


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def observations(results: Iterable[TrialResult]) -> tuple[list[Obs], int]:
    """Counted trials sorted by number (order-independence), and how many were left out."""
    out: list[Obs] = []
    left_out = 0
    for r in results:
        if r.status not in COUNTED_STATUSES:
            left_out += 1
            continue
        acc = r.val_acc
        if acc is None or not math.isfinite(acc):
            acc = CHANCE
        config = {k: canon(v) for k, v in r.config.items()}
        key = tuple(sorted(config.items(), key=lambda kv: kv[0]))
        out.append(Obs(r.number, config, key, float(acc), r.status == "diverged",
                       r.replicate))
    out.sort(key=lambda o: (o.number, repr(o.key)))
    return out, left_out


def mean_std(xs: Sequence[float]) -> tuple[float, float]:
    n = len(xs)
    mean = math.fsum(xs) / n
    if n < 2:
        return mean, 0.0
    return mean, math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))


def by_config(obs: Iterable[Obs]) -> dict[tuple[tuple[str, Any], ...], list[Obs]]:
    groups: dict[tuple[tuple[str, Any], ...], list[Obs]] = {}
    for o in obs:
        groups.setdefault(o.key, []).append(o)
    return groups


def seed_noise(obs: list[Obs]) -> tuple[float | None, int]:
    """Pooled seed std (root of the mean within-configuration variance) and its dof."""
    variances: list[float] = []
    dof = 0
    for group in by_config(obs).values():
        if len(group) >= 2:
            variances.append(mean_std([o.acc for o in group])[1] ** 2)
            dof += len(group) - 1
    if not variances:
        return None, 0
    return math.sqrt(math.fsum(variances) / len(variances)), dof

