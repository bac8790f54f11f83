"""Adaptive seeding (`study.seeds = "auto"`): which configurations get more seeds, round by round.

An adaptive study starts with `study.min_seeds` seeds per configuration (round 1). After each
round the impact table is computed again, and each row is "matters", "negligible" or
"undecided". The next round brings every configuration of an undecided row up to the next step of
the schedule (`seed_schedule`: the start, doubled each round, then the cap, `study.max_seeds`);
the study ends when every row is decided or the cap is reached. Round k brings configurations to
`schedule[k - 1]` seeds, so a round's number says how many seeds it reaches.

Which configurations a row stands on: for a one-at-a-time (sensitivity) study, the baseline and
the configurations that change only that parameter; for grid and random, every configuration
(their rows average over all of them). Replicate r of every configuration trains with
`engine.spec.replicate_seed(study seed, r)`, as in a fixed study, so a study's rounds, trials and
seeds depend only on its preset, its seed and the trained numbers: a study resumed after a kill
reaches the same rounds as one never interrupted.

Pure Python (no torch, no store): `next_round` decides from plain values; `study_next_round`
reads them off a study's stored trials.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.spec import StudySpec, TrialConfig, replicate_seed
from engine.store import StudyRow, TrialRow
from engine.study import report

DECISIONS = ("matters", "negligible", "undecided")
UNDECIDED = "undecided"


def decision(row: Any) -> str:
    """An impact row's decision as adaptive seeding reads it: "undecided" while more seeds
    could still settle the row (`ImpactRow.settled`: a row that matters but whose best value
    is still tied with others gets more seeds too)."""
    return str(row.decision) if row.settled else UNDECIDED


@dataclass(frozen=True)
class Round:
    """One round of an adaptive study: the configurations (indices in plan order) it extends,
    and with which replicates."""

    number: int  # 1 = the study's start; round k reaches schedule[k - 1] seeds
    seeds: int  # seeds of the extended configurations after the round
    extend: list[tuple[int, list[int]]]  # (configuration index, its new replicates)
    undecided: list[str]  # the rows that asked for it
    reason: str

    @property
    def configs(self) -> list[int]:
        return [index for index, _ in self.extend]

    def trials(self, configs: Sequence[dict[str, Any]],
               study_seed: int) -> list[tuple[dict[str, Any], int, int]]:
        """The round's new trials (config, seed, replicate), in order: configuration by
        configuration, replicates ascending. `configs`: every configuration, in plan order."""
        return [(configs[index], replicate_seed(study_seed, r), r)
                for index, replicates in self.extend for r in replicates]


def first_round(n_configs: int, seeds: int) -> Round:
    """Round 1: every configuration with the schedule's first step, created with the study."""
    return Round(1, seeds, [(i, list(range(seeds))) for i in range(n_configs)], [],
                 f"round 1: {_configurations(n_configs)} x {seeds} seeds to start")


def members(strategy: str, changed: Sequence[Mapping[str, Any]], param: str) -> list[int]:
    """The configurations a row of `param` stands on (indices in plan order)."""
    if strategy == "sensitivity":
        return [i for i, c in enumerate(changed) if set(c) <= {param}]
    return list(range(len(changed)))


def next_round(strategy: str, changed: Sequence[Mapping[str, Any]], have: Sequence[int],
               decisions: Mapping[str, str], steps: Sequence[int]) -> Round | None:
    """The next round, or None when every row is decided or the cap is reached.

    `changed`: each configuration's changes from the baseline, in plan order; `have`: the seeds
    (replicates 0..n-1) each one has; `decisions`: row (parameter) -> decision; `steps`: the
    schedule. The round brings the configurations of every undecided row to the first step
    above the most seeds any configuration has (replicates n..step-1 each).
    """
    undecided = [param for param, d in decisions.items() if d == UNDECIDED]
    level = max(have, default=0)
    above = [s for s in steps if s > level]
    if not undecided or not above:
        return None
    target = above[0]
    wanted = sorted({i for param in undecided for i in members(strategy, changed, param)})
    extend = [(i, list(range(have[i], target))) for i in wanted if have[i] < target]
    if not extend:
        return None
    number = list(steps).index(target) + 1
    reason = (f"round {number}: {_configurations(len(extend))} still undecided "
              f"({', '.join(undecided)})")
    return Round(number, target, extend, undecided, reason)


def _configurations(n: int) -> str:
    return f"{n} configuration" + ("" if n == 1 else "s")


# ---------------------------------------------------------------------------------------------
# From the store's rows


def configurations(trials: Sequence[TrialRow]) -> tuple[list[dict[str, Any]], list[int]]:
    """A study's configurations (sectioned configs, in the order of their first trial) and the
    seeds (replicates) each has."""
    index: dict[str, int] = {}
    configs: list[dict[str, Any]] = []
    have: list[int] = []
    for t in sorted(trials, key=lambda t: t.number):
        key = json.dumps(t.config, sort_keys=True)
        if key not in index:
            index[key] = len(configs)
            configs.append(t.config)
            have.append(0)
        i = index[key]
        have[i] = max(have[i], t.replicate + 1)
    return configs, have


def study_next_round(study: StudyRow, trials: Sequence[TrialRow]) -> Round | None:
    """The next round of a stored adaptive study whose current trials are all trained (None:
    done, or a fixed study)."""
    spec = StudySpec.from_dict(study.spec)
    if not spec.adaptive:
        return None
    # decided at the rounds the study completed, as the table the user reads is
    table = report.impact(study, report.trial_results(list(trials)), list(trials))
    if table is None:
        return None
    configs, have = configurations(trials)
    baseline = TrialConfig.from_dict(study.baseline).flat()
    changed = [report.changes(TrialConfig.from_dict(c).flat(), baseline) for c in configs]
    decisions = {row.param: decision(row) for row in table.rows}
    found = next_round(study.strategy, changed, have, decisions, spec.schedule)
    tied = [row.param for row in table.rows if row.decision == "matters" and not row.settled]
    if found is None or not tied:
        return found
    # a row that matters but whose best value is tied is not undecided: say what it waits for
    shown = ", ".join(f"{p}: best tied" if p in tied else p for p in found.undecided)
    return dataclasses.replace(
        found, reason=f"round {found.number}: {_configurations(len(found.extend))} still to "
                      f"settle ({shown})")

