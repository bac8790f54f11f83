"""Study strategies: turn a baseline configuration and a `[study]` table into a plan of trials.

Strategies (one `Strategy` subclass each):

- **single**: the baseline as is. `study.vary` is ignored.
- **grid**: the full product of the `study.vary` lists. Parameters are taken in the order `vary`
  lists them and the last one changes fastest (like `itertools.product`).
- **sensitivity** (one at a time): the baseline first, then for each varied parameter (in `vary`
  order) each listed value (in listed order) with every other parameter at the baseline's value.
  A listed value equal to the baseline's is not trained again, and values listed twice count
  once, so a study has 1 + (number of distinct listed values that differ from the baseline)
  configurations.
- **random**: `study.samples` configurations. A `Range` is drawn uniformly, or log-uniformly when
  `log` is set. Integer parameters are rounded: on a linear range every integer gets an equal
  share; on a log range the log-uniform draw over [min, max] is rounded. A list is a uniform
  choice among its distinct values. Parameters not in `vary` keep the baseline's value. Each
  parameter draws from its own stream, derived from the study seed and the parameter's name, so a
  plan with more samples starts with the same configurations, and adding a parameter does not
  change the others' draws. Draws that put `batch_size` above `train_size` are clamped to
  `train_size`. Samples are not deduplicated: the count is always `samples`.

- **tpe** (model-based, through Optuna's ask/tell): `study.samples` configurations in batches of
  `study.batch`. The plan holds the first batch only: the first `batch` draws of **random** with
  the same seed (the random start every TPE begins with). Each later batch is asked of Optuna's
  TPE sampler once the batches before it are trained (`engine.study.samplers`, in the runner),
  so `count` is `samples x seeds` while a new plan has `batch x seeds` trials.

Every value is normalised and checked with `engine.spec.space.check_value`, so plans only hold valid
configurations; a bad `vary` table raises `ValueError` with a message naming the key.

Seeds (common random numbers): replicate r of *every* configuration trains with seed
``derive_seed(study.seed, f"replicate:{r}")``. All configurations thus share one set of seeds, so a
difference between two configurations is not the luck of different initialisations or batch orders.
This refines "trial seed = f(study seed, trial index)": a trial's index fixes its configuration and
replicate, and the replicate fixes the seed. The same baseline and spec always give the same plan.

Order: configurations in the strategy's order above, each one's replicates next to each other:
(config 1, seed 0), (config 1, seed 1), ..., (config 2, seed 0), ... Trials are numbered 1..N in
that order.

This module is pure Python (no torch): the CLI and the UI plan and count studies without paying for
a torch import.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from engine.spec import Range, StudySpec, TrialConfig, derive_seed, replicate_seed, space

# A configuration together with the bare keys whose values differ from the baseline.
Configs = list[tuple[TrialConfig, dict[str, Any]]]


def trial_steps(config: TrialConfig) -> int:
    """Optimiser steps one trial takes: the unit of work the ETA counts."""
    return config.epochs * math.ceil(config.data.train_size / config.batch_size)


@dataclass(frozen=True)
class PlannedTrial:
    number: int  # 1..N, the order trials are created and shown
    config: TrialConfig
    seed: int
    replicate: int  # 0..seeds-1
    changed: dict[str, Any]  # bare key -> value that differs from the baseline ({} for it)


@dataclass(frozen=True)
class Plan:
    strategy: str
    baseline: TrialConfig
    spec: StudySpec
    trials: list[PlannedTrial]

    @property
    def n_configs(self) -> int:
        return sum(1 for t in self.trials if t.replicate == 0)

    @property
    def n_trials(self) -> int:
        return len(self.trials)

    def trial_steps(self) -> int:
        """Total optimiser steps of the plan (sum over trials of epochs x batches per epoch)."""
        return sum(trial_steps(t.config) for t in self.trials)


# ---------------------------------------------------------------------------------------------
# Values of `study.vary`


def _param(key: str) -> space.Param:
    p = space.VARIABLE.get(key)
    if p is None:
        raise ValueError(f"study.vary.{key}: not a parameter that can be varied")
    return p


def normalise(key: str, value: Any) -> Any:
    """The checked value, with widths as a tuple (hashable, comparable with TrialConfig.get)."""
    if isinstance(value, tuple):
        value = list(value)
    checked, err = space.check_value(_param(key), value)
    if err is not None:
        raise ValueError(f"study.vary.{key}: {err}")
    return tuple(checked) if isinstance(checked, list) else checked


def _is_range(entry: Any) -> bool:
    return isinstance(entry, Range) or (isinstance(entry, Mapping) and "min" in entry)


def _as_range(entry: Any) -> Range:
    if isinstance(entry, Range):
        return entry
    return Range(entry["min"], entry["max"], bool(entry.get("log", False)))


def listed_values(key: str, entry: Any) -> list[Any]:
    """The distinct normalised values of a `vary` list, in listed order."""
    if _is_range(entry):
        raise ValueError(f"study.vary.{key}: a range only works with the random strategy; "
                         "list the values to try")
    if not isinstance(entry, (list, tuple)) or not entry:
        raise ValueError(f"study.vary.{key}: expected a non-empty list of values")
    out: list[Any] = []
    for value in entry:
        v = normalise(key, value)
        if v not in out:
            out.append(v)
    return out


def _differing(baseline: TrialConfig, values: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of `values` that differ from the baseline, widths reported as lists."""
    return {k: list(v) if isinstance(v, tuple) else v
            for k, v in values.items() if v != baseline.get(k)}


# ---------------------------------------------------------------------------------------------
# Strategies


class Strategy(ABC):
    """Turns a baseline and a spec into configurations; seeds are added by `plan`."""

    name: ClassVar[str]

    @abstractmethod
    def configs(self, baseline: TrialConfig, spec: StudySpec) -> Configs:
        """Configurations in plan order, each with its changes from the baseline."""

    def n_configs(self, baseline: TrialConfig, spec: StudySpec) -> int:
        return len(self.configs(baseline, spec))

    def count(self, baseline: TrialConfig, spec: StudySpec) -> int:
        """Number of trials: configurations x seeds."""
        return self.n_configs(baseline, spec) * spec.seeds


class Single(Strategy):
    name = "single"

    def configs(self, baseline: TrialConfig, spec: StudySpec) -> Configs:
        return [(baseline, {})]

    def n_configs(self, baseline: TrialConfig, spec: StudySpec) -> int:
        return 1


class Grid(Strategy):
    name = "grid"

    def configs(self, baseline: TrialConfig, spec: StudySpec) -> Configs:
        keys = list(spec.vary)
        lists = [listed_values(k, spec.vary[k]) for k in keys]
        out: Configs = []
        for combo in itertools.product(*lists):
            values = dict(zip(keys, combo, strict=True))
            out.append((baseline.replace(**values), _differing(baseline, values)))
        return out

    def n_configs(self, baseline: TrialConfig, spec: StudySpec) -> int:
        # Values are distinct after normalisation, so distinct combinations are distinct configs.
        return math.prod(len(listed_values(k, e)) for k, e in spec.vary.items())


class Sensitivity(Strategy):
    name = "sensitivity"

    def configs(self, baseline: TrialConfig, spec: StudySpec) -> Configs:
        out: Configs = [(baseline, {})]
        seen = {baseline}
        for key, entry in spec.vary.items():
            for value in listed_values(key, entry):
                config = baseline.replace(**{key: value})
                if config in seen:  # the baseline's own value, or a duplicate
                    continue
                seen.add(config)
                out.append((config, _differing(baseline, {key: value})))
        return out

    def n_configs(self, baseline: TrialConfig, spec: StudySpec) -> int:
        # One key changed at a time: configs can only collide with the baseline itself.
        return 1 + sum(
            sum(1 for v in listed_values(key, entry) if v != baseline.get(key))
            for key, entry in spec.vary.items()
        )


class RandomSearch(Strategy):
    name = "random"

    def configs(self, baseline: TrialConfig, spec: StudySpec) -> Configs:
        draws = {key: self._draws(key, entry, spec) for key, entry in spec.vary.items()}
        out: Configs = []
        for i in range(spec.samples):
            values = {key: column[i] for key, column in draws.items()}
            train_size = values.get("train_size", baseline.data.train_size)
            if values.get("batch_size", baseline.batch_size) > train_size:
                values["batch_size"] = train_size  # a batch cannot exceed the data
            out.append((baseline.replace(**values), _differing(baseline, values)))
        return out

    def n_configs(self, baseline: TrialConfig, spec: StudySpec) -> int:
        for key, entry in spec.vary.items():  # validate as `configs` would, without drawing
            if _is_range(entry):
                range_bounds(_param(key), _as_range(entry))
            else:
                listed_values(key, entry)
        return spec.samples

    @staticmethod
    def _draws(key: str, entry: Any, spec: StudySpec) -> list[Any]:
        # One stream per parameter: more samples or more parameters leave earlier draws alone.
        rng = random.Random(derive_seed(spec.seed, f"random:{key}"))
        if _is_range(entry):
            p = _param(key)
            r = _as_range(entry)
            lo, hi = range_bounds(p, r)
            return [normalise(key, _draw_number(p, lo, hi, r.log, rng))
                    for _ in range(spec.samples)]
        values = listed_values(key, entry)
        # Index from random() only (not choice()), so draws depend on nothing version-specific.
        return [values[min(int(rng.random() * len(values)), len(values) - 1)]
                for _ in range(spec.samples)]


def range_bounds(p: space.Param, r: Range) -> tuple[float, float]:
    """Checked bounds of a range; integer ranges are shrunk to the integers inside."""
    where = f"study.vary.{p.key}"
    if p.kind not in ("int", "float"):
        raise ValueError(f"{where}: a range needs a numeric parameter; list the values instead")
    lo, hi = float(r.min), float(r.max)
    if p.kind == "int":
        lo, hi = float(math.ceil(lo)), float(math.floor(hi))
    if not lo <= hi:
        raise ValueError(f"{where}: empty range (min {r.min!r} > max {r.max!r})")
    if r.log and lo <= 0:
        raise ValueError(f"{where}: a log range needs min > 0")
    for bound in (lo, hi):  # every point between two valid bounds is valid: no holes in the space
        normalise(p.key, int(bound) if p.kind == "int" else bound)
    return lo, hi


def _draw_number(p: space.Param, lo: float, hi: float, log: bool, rng: random.Random) -> float:
    a, b = lo, hi
    if p.kind == "int" and not log:
        # Widen by half a step so that rounding gives the end points their full share. (Not on a
        # log scale: 0.5..1 would be a whole octave and make min far too likely.)
        a, b = lo - 0.5, hi + 0.5
    u = rng.random()
    x = math.exp(math.log(a) + u * (math.log(b) - math.log(a))) if log else a + u * (b - a)
    if p.kind == "int":
        return float(min(max(round(x), lo), hi))
    return min(max(x, lo), hi)  # exp/log rounding must not step outside the range


class ModelBased(Strategy):
    """A strategy whose configurations after the first batch come from an ask/tell sampler."""

    name = "tpe"

    def configs(self, baseline: TrialConfig, spec: StudySpec) -> Configs:
        return RandomSearch().configs(baseline, first_batch_spec(spec))

    def n_configs(self, baseline: TrialConfig, spec: StudySpec) -> int:
        return RandomSearch().n_configs(baseline, spec)  # checks the table as random does


def first_batch_spec(spec: StudySpec) -> StudySpec:
    """The random study whose configurations are a batched study's first batch."""
    return dataclasses.replace(spec, strategy="random", samples=min(spec.samples, spec.batch))


STRATEGIES: dict[str, Strategy] = {
    s.name: s for s in (Single(), Grid(), Sensitivity(), RandomSearch(), ModelBased())
}
assert tuple(STRATEGIES) == space.STRATEGIES, "one Strategy per name in engine.spec.space"


def get_strategy(name: str) -> Strategy:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; expected one of "
                         + ", ".join(STRATEGIES)) from None


# ---------------------------------------------------------------------------------------------
# Plans and counts


def plan(baseline: TrialConfig, spec: StudySpec) -> Plan:
    """Every trial of the study, numbered, with its seed. Same inputs -> identical plan."""
    if spec.seeds < 1:
        raise ValueError("study.seeds: expected at least 1 seed")
    seeds = [replicate_seed(spec.seed, r) for r in range(spec.seeds)]
    trials: list[PlannedTrial] = []
    for config, changed in get_strategy(spec.strategy).configs(baseline, spec):
        for r, seed in enumerate(seeds):
            trials.append(PlannedTrial(len(trials) + 1, config, seed, r, dict(changed)))
    return Plan(spec.strategy, baseline, spec, trials)


def count(baseline: TrialConfig, spec: StudySpec) -> int:
    """Trials `plan` would create, without building configurations."""
    return get_strategy(spec.strategy).count(baseline, spec)


def count_range(baseline: TrialConfig, spec: StudySpec) -> tuple[int, int]:
    """Fewest and most trials: an adaptive study's first round alone, and every configuration at
    `max_seeds` (a study that varies nothing has no rounds); (n, n) for a fixed study."""
    fewest = count(baseline, spec)
    if not spec.adaptive or spec.strategy == "single" or not spec.vary:
        return fewest, fewest
    return fewest, get_strategy(spec.strategy).n_configs(baseline, spec) * spec.most_seeds


def counts_by_strategy(baseline: TrialConfig, spec: StudySpec) -> dict[str, int]:
    """Trials each strategy would cost with this vary table ("grid vs sensitivity, in numbers").

    A strategy that cannot run this table (grid or sensitivity with a range) is left out, and so
    is tpe, which costs what random costs: the line compares plans of different sizes.
    """
    out: dict[str, int] = {}
    for name, strategy in STRATEGIES.items():
        if name == ModelBased.name:
            continue
        try:
            out[name] = strategy.count(baseline, spec)
        except ValueError:
            continue
    return out
