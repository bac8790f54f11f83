"""A race of search strategies (`hp-tui race`): one space, one budget, best-so-far against spend.

Pure (no torch, no store): the studies a race trains, the curves built from their trials, and
their aggregate over study seeds.

- **Budget**: trial-epochs, the same for every strategy (default: what the preset's random
  search would train, `samples x epochs`). A race trains one seed per configuration: it
  compares searches, not seed noise. Each strategy gets the configurations that spend the
  budget: random and tpe `budget // epochs`; grid its first points in plan order (the last
  parameter changes fastest), as many as fit; sensitivity its walk, cut where the budget ends;
  random+halving the most samples whose planned cost (`halving.planned`) fits.
- Grid and sensitivity cannot draw from a continuous range: a range becomes `RANGE_VALUES`
  values (its ends and the middle, on a log scale for a log range); the race says so.
- **Curve** of one study: its trials in number order, cumulative trial-epochs really trained
  (a pruned trial's epochs up to its rung) on x, the best validation accuracy so far among the
  trials that count as found (trained to the end: completed) on y, read on a common grid of
  budget points from 0 to the budget; None before the first found trial.
- **Aggregate** over study seeds: the mean, low (min) and high (max) of the seeds' curves at
  each point; None where a seed has found nothing yet.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engine.spec import Range, StudySpec, TrialConfig, space
from engine.study import halving, samplers, strategies

# name -> what the table and the plot call it
STRATEGIES = {"grid": "grid", "random": "random", "sensitivity": "sensitivity",
              "halving": "random+halving", "tpe": "tpe"}
RANGE_VALUES = 3
POINTS = 20  # budget grid: POINTS + 1 points from 0 to the budget


class RaceError(ValueError):
    """A race that cannot be run as asked (unknown strategy, bad budget, nothing to vary)."""


@dataclass(frozen=True)
class Entrant:
    """One strategy's study for one study seed: its spec and its trials' configurations."""

    strategy: str
    spec: StudySpec
    plan: strategies.Plan  # for tpe, the first batch (the sampler asks the rest)
    planned_epochs: int  # trial-epochs it is expected to train
    note: str = ""  # what the race changed to make the strategy run on this space

    @property
    def configurations(self) -> int:
        """Configurations it trains (a tpe study's plan is only its first batch)."""
        return self.spec.samples if self.spec.batched else self.plan.n_configs


def parse_strategies(text: str | None) -> list[str]:
    """`--strategies a,b`: the names, checked, in the order given (default: all)."""
    if not text:
        return list(STRATEGIES)
    names = [n.strip() for n in text.split(",") if n.strip()]
    aliases = {"random+halving": "halving"}
    names = [aliases.get(n, n) for n in names]
    bad = [n for n in names if n not in STRATEGIES]
    if bad or not names:
        raise RaceError(f"--strategies {text!r}: unknown strategy {', '.join(bad) or '(none)'}; "
                        f"expected a comma-separated list of {', '.join(STRATEGIES)}")
    return list(dict.fromkeys(names))


def default_budget(baseline: TrialConfig, spec: StudySpec) -> int:
    """What the preset's random search would train with one seed per configuration."""
    return spec.samples * baseline.epochs


def check(baseline: TrialConfig, spec: StudySpec, budget: int) -> None:
    if not spec.vary:
        raise RaceError("the preset varies nothing ([study.vary] is empty): a race needs a "
                        "search space")
    if budget <= 0:
        raise RaceError(f"--budget {budget}: expected a positive number of trial-epochs")
    if budget < baseline.epochs:
        raise RaceError(f"--budget {budget}: less than one trial ({baseline.epochs} epochs)")


def few_values(key: str, r: Range, count: int = RANGE_VALUES) -> list[Any]:
    """A range as `count` listed values: its ends and evenly spaced points between (on a log
    scale for a log range), rounded for an integer parameter, duplicates dropped."""
    p = space.VARIABLE[key]
    lo, hi = strategies.range_bounds(p, r)
    out: list[Any] = []
    for i in range(count):
        u = i / (count - 1) if count > 1 else 0.0
        x = math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))) if r.log \
            else lo + u * (hi - lo)
        value: Any = round(x) if p.kind == "int" else float(f"{x:.4g}")
        value = strategies.normalise(key, value)
        if value not in out:
            out.append(value)
    return out


def listed_spec(spec: StudySpec) -> tuple[StudySpec, str]:
    """The spec with every range listed as a few values, and a note naming them."""
    vary: dict[str, Any] = {}
    changed = []
    for key, entry in spec.vary.items():
        if isinstance(entry, Range):
            vary[key] = few_values(key, entry)
            changed.append(f"{key} {vary[key]}")
        else:
            vary[key] = entry
    note = f"ranges as {RANGE_VALUES} values: {'; '.join(changed)}" if changed else ""
    return dataclasses.replace(spec, vary=vary), note


def entrant(strategy: str, baseline: TrialConfig, spec: StudySpec, budget: int,
            seed: int) -> Entrant:
    """The study that `strategy` trains at `budget` trial-epochs with study seed `seed`."""
    epochs = baseline.epochs
    fits = max(1, budget // epochs)
    base = dataclasses.replace(spec, seeds=1, seed=seed, adaptive=False, pruner="none")
    if strategy in ("random", "tpe"):
        chosen = dataclasses.replace(base, strategy=strategy, samples=fits,
                                     batch=min(spec.batch, fits))
        return Entrant(strategy, chosen, strategies.plan(baseline, chosen), fits * epochs)
    if strategy in ("grid", "sensitivity"):
        listed, note = listed_spec(dataclasses.replace(base, strategy=strategy))
        plan = strategies.plan(baseline, listed)
        if plan.n_trials > fits:
            note = "; ".join(filter(None, [note, f"first {fits} of {plan.n_trials} "
                                                 "configurations (the budget)"]))
            plan = dataclasses.replace(plan, trials=plan.trials[:fits])
        return Entrant(strategy, listed, plan, plan.n_trials * epochs, note)
    if strategy == "halving":
        chosen = halving_spec(baseline, base, budget)
        plan = strategies.plan(baseline, chosen)
        cost = halving.planned([t.config for t in plan.trials], chosen)[1]
        spent = cost.with_halving if cost else plan.n_trials * epochs
        return Entrant(strategy, chosen, plan, spent,
                       f"rungs after epochs {list(halving.study_rungs(chosen, epochs))}, "
                       f"the best 1/{chosen.reduction} go on")
    raise RaceError(f"unknown strategy {strategy!r}")


def entrants(names: Sequence[str], baseline: TrialConfig, spec: StudySpec, budget: int,
             seeds: Sequence[int]) -> tuple[dict[str, list[Entrant]], dict[str, str]]:
    """Each strategy's studies, one per study seed, and the strategies that cannot run here
    with why (tpe without Optuna: `samplers.SamplerMissing`; a space it cannot take)."""
    out: dict[str, list[Entrant]] = {}
    skipped: dict[str, str] = {}
    for name in names:
        try:
            samplers.require(name)
            out[name] = [entrant(name, baseline, spec, budget, s) for s in seeds]
        except ValueError as e:  # SamplerMissing is one
            skipped[name] = str(e)
    return out, skipped


def plan_line(e: Entrant, budget: int | None = None) -> str:
    """"20 configurations, ~180 trial-epochs (a note)", with "of BUDGET" when given."""
    spent = f"~{e.planned_epochs}" + (f" of {budget}" if budget is not None else "")
    return (f"{e.configurations} configurations, {spent} trial-epochs"
            + (f" ({e.note})" if e.note else ""))


def halving_spec(baseline: TrialConfig, base: StudySpec, budget: int) -> StudySpec:
    """Random search with halving and the most samples whose planned cost fits the budget."""
    reduction = base.reduction if base.reduction >= 2 else 3
    best = dataclasses.replace(base, strategy="random", pruner="halving", reduction=reduction,
                               samples=max(1, budget // baseline.epochs))
    samples = best.samples
    for n in range(best.samples + 1, 20 * best.samples + 2):
        trial = dataclasses.replace(best, samples=n)
        configs = [t.config for t in strategies.plan(baseline, trial).trials]
        cost = halving.planned(configs, trial)[1]
        if cost is not None and cost.with_halving <= budget:
            samples = n
    return dataclasses.replace(best, samples=samples)


def budget_grid(budget: int, points: int = POINTS) -> list[float]:
    """points + 1 budget points from 0 to `budget`, the last one exactly the budget."""
    return [budget * i / points for i in range(points)] + [float(budget)]


def curve(trials: Sequence[tuple[int, float | None, bool]], grid: Sequence[float]
          ) -> list[float | None]:
    """Best validation accuracy found so far at each budget point.

    trials: (epochs it trained, its validation accuracy, whether it counts as found) in the
    order they trained. A trial is found once all its epochs are spent; nothing is found past
    the last point."""
    found: list[tuple[float, float]] = []  # (spend when found, best so far)
    spent, best = 0.0, None
    for epochs, acc, counts in trials:
        spent += max(0, epochs)
        if counts and acc is not None and (best is None or acc > best):
            best = acc
            found.append((spent, best))
    out: list[float | None] = []
    for x in grid:
        value = None
        for when, b in found:
            if when <= x + 1e-9:
                value = b
        out.append(value)
    return out


def aggregate(curves: Sequence[Sequence[float | None]]
              ) -> tuple[list[float | None], list[float | None], list[float | None]]:
    """(mean, low, high) over the seeds' curves at each point; None where one is missing."""
    mean: list[float | None] = []
    low: list[float | None] = []
    high: list[float | None] = []
    for values in zip(*curves, strict=True):
        if not values or any(v is None for v in values):
            for column in (mean, low, high):
                column.append(None)
            continue
        known = [float(v) for v in values if v is not None]
        mean.append(sum(known) / len(known))
        low.append(min(known))
        high.append(max(known))
    return mean, low, high


def study_name(preset: str, strategy: str, seed: int, run: int = 1) -> str:
    """How a race's studies are named in the store: `race:<preset>:<strategy>:<seed>`, and
    `race<run>:...` for a later race of the same preset in the same store."""
    return f"race{run if run > 1 else ''}:{preset}:{strategy}:{seed}"
