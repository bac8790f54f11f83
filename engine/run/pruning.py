"""The runner's side of successive halving: the trainer's `Pruner`, built from the study.

The trainer asks at each rung which of its population's running trials stop; the answer is
`engine.study.halving.decide` over the bracket's configurations, the population's curves
together with those of the bracket's trials already finished in the store (a resumed study
retrains only the unfinished ones, yet must rank them among all, as the first run did). Pure
data and no torch: it is pickled to worker processes and Ray tasks.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.spec import KEPT_ON_RESUME, StudySpec, TrialConfig, population_key
from engine.store import Store
from engine.study import halving

Bracket = tuple[Any, ...]


def bracket_of(config: TrialConfig) -> Bracket:
    """The configurations ranked together: those that train in one population."""
    return config.data, population_key(config)


@dataclass
class StudyPruner:
    """engine.train's Pruner for one study (see the module docstring)."""

    rungs: tuple[int, ...]
    reduction: int
    # bracket -> configuration -> curves (validation accuracy per epoch) of finished trials
    finished: dict[Bracket, dict[Hashable, list[list[float]]]] = field(default_factory=dict)

    def stop(self, epochs: int, trials: Sequence[Any], curves: Sequence[Sequence[float]]
             ) -> set[int]:
        brackets: dict[Bracket, dict[Hashable, list[Sequence[float]]]] = {}
        for t, curve in zip(trials, curves, strict=True):
            b = bracket_of(t.config)
            if b not in brackets:
                brackets[b] = {k: list(v) for k, v in self.finished.get(b, {}).items()}
            brackets[b].setdefault(t.config, []).append(curve)
        stopped: dict[Hashable, int] = {}
        for configs in brackets.values():
            stopped.update(halving.decide(self.rungs, self.reduction, configs, epochs))
        return {n for n, t in enumerate(trials) if stopped.get(t.config) == epochs}


def study_pruner(store: Store, study: Any) -> StudyPruner | None:
    """The study's pruner, or None without one; its finished trials' curves from the store."""
    spec = StudySpec.from_dict(study.spec)
    if not spec.halving:
        return None
    rows = store.trials(study.id)
    epochs = max((TrialConfig.from_dict(r.config).epochs for r in rows), default=0)
    done = [r for r in rows if r.status in KEPT_ON_RESUME]
    metrics = store.metrics(r.id for r in done)
    pruner = StudyPruner(halving.study_rungs(spec, epochs), spec.reduction)
    for r in done:
        config = TrialConfig.from_dict(r.config)
        curve = [m[3] if m[3] is not None else 0.0 for m in metrics[r.id]]
        pruner.finished.setdefault(bracket_of(config), {}).setdefault(config, []).append(curve)
    return pruner


def trained_epochs(store: Store, study: Any, trained: list[TrialConfig]) -> list[TrialConfig]:
    """The configs trained, each with the epochs it really trained (a pruned trial stopped at
    its rung): what the cost model's calibration (`Store.record_run`) must count."""
    if not trained or not StudySpec.from_dict(study.spec).halving:
        return trained
    out = list(trained)
    for r in store.trials(study.id, statuses=["pruned"]):
        config = TrialConfig.from_dict(r.config)
        if config in out:  # one trained by this run (a resume keeps the earlier ones)
            out[out.index(config)] = config.replace(epochs=max(1, r.epochs_done))
    return out
