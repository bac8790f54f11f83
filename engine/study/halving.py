"""Successive halving (`study.pruner = "halving"`): the rungs, the decision at each, its cost.

Pure: the decisions depend only on validation accuracies at the rungs' epochs, which the store
keeps, so a resumed study reaches the same decisions as an uninterrupted one.

- Rungs: for `epochs` E and reduction factor r, a rung after every epoch count E // r^k
  (k = 1, 2, ...) that is at least `min_epochs`; e.g. E = 27, r = 3: after epochs 1, 3 and 9,
  and the survivors train on to 27.
- At a rung, the configurations still training (all their seeds go together) are ranked by
  their mean validation accuracy over their seeds at that epoch (a seed that diverged earlier
  counts as 0); the best max(1, n // r) go on, the others stop ("pruned"). Ties go to the
  configuration whose key sorts first.
- Decisions are taken per bracket: the configurations that train in one population (same
  batch size, depth and width class, `engine.spec.population_key`), because a rung is decided
  inside the trainer while its population trains.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

from engine.spec import StudySpec, TrialConfig, halving_rungs, population_key

rungs = halving_rungs  # the schedule, defined once in engine.spec (the presets check it too)


def study_rungs(spec: StudySpec, epochs: int) -> tuple[int, ...]:
    """A study's rungs (none without a pruner)."""
    return rungs(epochs, spec.reduction, spec.min_epochs) if spec.halving else ()


def kept(count: int, reduction: int) -> int:
    """How many of `count` configurations go on past a rung."""
    return max(1, count // reduction) if count else 0


def score(curves: Sequence[Sequence[float]], epoch: int) -> float:
    """A configuration's mean validation accuracy over its seeds after `epoch` epochs; a seed
    whose curve stops earlier (it diverged) counts as 0."""
    values = [c[epoch - 1] if len(c) >= epoch else 0.0 for c in curves]
    return sum(values) / len(values) if values else 0.0


def decide(rung_epochs: Sequence[int], reduction: int,
           curves: Mapping[Hashable, Sequence[Sequence[float]]], upto: int
           ) -> dict[Hashable, int]:
    """Which configurations of one bracket stop, and after how many epochs (rungs <= upto).

    curves: configuration key -> its seeds' validation accuracies per epoch, as far as they
    trained. Every configuration that reaches a rung must have its seeds' values there (or
    have diverged before), which the trainer guarantees by deciding after that epoch.
    """
    stopped: dict[Hashable, int] = {}
    going = sorted(curves, key=repr)
    for epoch in rung_epochs:
        if epoch > upto:
            break
        ranked = sorted(going, key=lambda k: (-score(curves[k], epoch), repr(k)))
        keep = kept(len(ranked), reduction)
        for k in ranked[keep:]:
            stopped[k] = epoch
        going = ranked[:keep]
    return stopped


@dataclass(frozen=True)
class HalvingCost:
    """Trial-epochs with and without halving, for the cost line and the report."""

    with_halving: int
    without: int

    @property
    def ratio(self) -> float:
        return self.with_halving / self.without if self.without else 1.0

    def text(self) -> str:
        """"halving: 260 of 2,700 trial-epochs (10%)"."""
        return (f"halving: {self.with_halving:,} of {self.without:,} trial-epochs "
                f"({self.ratio:.0%})")


def trial_epochs(bracket_sizes: Sequence[int], seeds: int, epochs: int, reduction: int,
                 rung_epochs: Sequence[int]) -> HalvingCost:
    """What halving trains if no configuration diverges: bracket_sizes = configurations per
    bracket."""
    spent = 0
    for count in bracket_sizes:
        done = 0
        for epoch in rung_epochs:
            spent += count * (epoch - done)
            count, done = kept(count, reduction), epoch
        spent += count * (epochs - done)
    return HalvingCost(spent * seeds, sum(bracket_sizes) * seeds * epochs)


def planned(configs: Sequence[TrialConfig], spec: StudySpec
            ) -> tuple[list[TrialConfig], HalvingCost | None]:
    """What a plan's trials (one config per trial, seeds repeated) will train under halving:
    the same trials with the epochs each would reach if every bracket's first configurations
    were the ones to go on (which ones is unknown before training; how many is not), and the
    trial-epochs with and without halving. Unchanged, and None, without a pruner."""
    if not spec.halving or not configs:
        return list(configs), None
    brackets: dict[tuple[object, ...], dict[TrialConfig, int]] = {}
    for c in configs:
        seeds = brackets.setdefault((c.data, population_key(c)), {})
        seeds[c] = seeds.get(c, 0) + 1
    out: list[TrialConfig] = []
    spent = full = 0
    for seeds in brackets.values():
        order = list(seeds)
        reached = {c: c.epochs for c in order}
        going = order
        for epoch in rungs(order[0].epochs, spec.reduction, spec.min_epochs):
            for c in going[kept(len(going), spec.reduction):]:
                reached[c] = epoch
            going = going[: kept(len(going), spec.reduction)]
        for c in order:
            out += [c.replace(epochs=reached[c])] * seeds[c]
            spent += reached[c] * seeds[c]
            full += c.epochs * seeds[c]
    return out, HalvingCost(spent, full)
