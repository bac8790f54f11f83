"""A race as the store holds it: its studies found by name, their curves read off their trials.

`hp-tui race` and the app's race screen read a race the same way, while it trains and after:
each (strategy, study seed) is a study named `race.study_name(...)`; a study not created yet,
or not trained yet, simply has no curve so far.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from engine.spec import TrialStatus
from engine.store import Store
from engine.study import race


def free_run(taken: Iterable[str | None], preset: str, strategies: Iterable[str],
             seeds: Sequence[int]) -> int:
    """The first race number whose study names are all free (1, 2, ...)."""
    names = set(taken)
    wanted = list(strategies)
    run = 1
    while any(race.study_name(preset, n, s, run) in names for n in wanted for s in seeds):
        run += 1
    return run


def race_studies(store: Store, preset: str, strategies: Iterable[str], seeds: Sequence[int],
                 run: int) -> dict[str, list[int]]:
    """The ids of a race's studies created so far, by strategy, in seed order."""
    by_name = {s.name: s.id for s in store.studies() if s.name}
    out: dict[str, list[int]] = {}
    for name in strategies:
        ids = [by_name.get(race.study_name(preset, name, s, run)) for s in seeds]
        out[name] = [i for i in ids if i is not None]
    return out


def study_points(store: Store, study_id: int) -> list[tuple[int, float | None, bool]]:
    """A study's trials in number order: (epochs trained, val acc, trained to the end)."""
    rows = sorted(store.trials(study_id), key=lambda t: t.number)
    return [(int(t.epochs_done), t.val_acc, t.status == TrialStatus.COMPLETED) for t in rows]


def race_result(store: Store, preset: str, budget: int, seeds: list[int],
                ids: Mapping[str, list[int]]) -> dict[str, Any]:
    """The race's `--json` shape: per strategy the budget grid, the mean best so far over the
    study seeds and its low and high, the studies, trials and trial-epochs spent."""
    grid = race.budget_grid(budget)
    out: dict[str, Any] = {"preset": preset, "budget": budget, "seeds": seeds,
                           "strategies": {}}
    for name, studies in ids.items():
        points = [study_points(store, sid) for sid in studies]
        curves = [race.curve(p, grid) for p in points]
        best, low, high = race.aggregate(curves) if curves else ([None] * len(grid),) * 3
        spent = [min(budget, sum(e for e, _, _ in p)) for p in points] or [0]
        out["strategies"][name] = {
            "label": race.STRATEGIES[name], "budget": grid, "best": best, "low": low,
            "high": high, "studies": studies,
            "trials": round(sum(len(p) for p in points) / max(1, len(points))),
            "trial_epochs": round(sum(spent) / len(spent))}
    return out
