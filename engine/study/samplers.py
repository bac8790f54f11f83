"""Model-based search through Optuna's ask/tell: the batches of a tpe study.

hp-tui keeps the loop and the store stays the source of truth. A tpe study's first batch is in
its plan (`engine.study.strategies`: random draws, the start every TPE begins with). For each
later batch the runner calls `next_batch`: an in-memory Optuna study is rebuilt from the study's
stored configurations, in plan order, each told its value (`optuna.trial.create_trial` +
`add_trial`), a sampler seeded from (study seed, batch number) is asked for the batch, and the
Optuna study is thrown away. Nothing of Optuna's outlives a batch, so a study killed and resumed
asks exactly what an uninterrupted one asks.

- The space: a `Range` becomes `FloatDistribution(min, max, log)`, or `IntDistribution` for an
  integer parameter (its bounds shrunk to the integers inside); a list becomes a
  `CategoricalDistribution` over its values (widths as JSON text: Optuna's choices are scalars).
  Parameters not varied keep the baseline's value; a `batch_size` above `train_size` is clamped,
  as random search does.
- The value told: a configuration's mean validation accuracy over its seeds, as the impact table
  and the best trial read it (a diverged trial without a number counts as chance). A
  configuration with no counted trial (all failed) is told as failed, which the sampler skips.
- Duplicates: a proposal equal to a configuration already trained is told that one's value and
  asked again; one equal to a proposal of the same batch stays running (the constant liar counts
  it as bad). After `ASKS_PER_CONFIG` asks per wanted configuration the batch is cut short; a
  batch with nothing new ends the study (a small discrete space can run out).
- Pruning inside a batch (later): a trial a pruner stopped would be told `PRUNED` with its
  per-epoch accuracies as intermediate values, which TPE already ranks below complete trials.

Optuna is an optional dependency (`pip install 'hp-tui[tpe]'`), imported only inside the
functions that ask, so planning and counting a study (the CLI, the app) never load it.
"""

from __future__ import annotations

import importlib.util
import json
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.spec import Range, StudySpec, TrialConfig, derive_seed, replicate_seed, space
from engine.store import StudyRow, TrialRow
from engine.study import strategies
from engine.study.trials import CHANCE, COUNTED_STATUSES

ASKS_PER_CONFIG = 10  # asks per configuration wanted before a batch is cut short
INSTALL = "pip install 'hp-tui[tpe]'"

# One value per configuration of the history, in plan order: its values of the varied keys
# (normalised: widths as tuples) and its mean accuracy (None: nothing counted).
History = Sequence[tuple[Mapping[str, Any], float | None]]


class SamplerMissing(ValueError):
    """The strategy's sampler library is not installed."""


def installed() -> bool:
    """Whether Optuna can be imported (found without importing it)."""
    return importlib.util.find_spec("optuna") is not None


def require(strategy: str) -> None:
    """Raise SamplerMissing, naming the install command, if `strategy` needs Optuna and it is
    absent."""
    if strategy in SAMPLERS and not installed():
        raise SamplerMissing(f"strategy {strategy!r} needs Optuna, which is not installed: "
                             f"{INSTALL}")


def _tpe(seed: int, startup: int) -> Any:
    import optuna

    # The first batch is the random start: TPE models from the second batch on.
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)


SAMPLERS: dict[str, Callable[[int, int], Any]] = {"tpe": _tpe}


# ---------------------------------------------------------------------------------------------
# The space as Optuna distributions


def distributions(vary: Mapping[str, Any]) -> dict[str, Any]:
    """Each varied key's Optuna distribution (raises ValueError naming a bad key)."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    out: dict[str, Any] = {}
    for key, entry in vary.items():
        p = space.VARIABLE.get(key)
        if p is None:
            raise ValueError(f"study.vary.{key}: not a parameter that can be varied")
        if isinstance(entry, Mapping):
            entry = Range(entry["min"], entry["max"], bool(entry.get("log", False)))
        if isinstance(entry, Range):
            lo, hi = strategies.range_bounds(p, entry)
            if p.kind == "int":
                out[key] = IntDistribution(int(lo), int(hi), log=entry.log)
            else:
                out[key] = FloatDistribution(lo, hi, log=entry.log)
        else:
            out[key] = CategoricalDistribution(
                [_choice(v) for v in strategies.listed_values(key, entry)])
    return out


def _choice(value: Any) -> Any:
    """A listed value as an Optuna choice: widths as JSON text."""
    return json.dumps(list(value)) if isinstance(value, tuple) else value


def _value(key: str, choice: Any) -> Any:
    """An Optuna parameter back as hp-tui's normalised value."""
    if isinstance(choice, str) and space.VARIABLE[key].kind == "widths":
        return tuple(json.loads(choice))
    return strategies.normalise(key, choice)


# ---------------------------------------------------------------------------------------------
# Asking


def propose(strategy: str, vary: Mapping[str, Any], baseline: TrialConfig, history: History,
            n: int, seed: int, startup: int) -> list[dict[str, Any]]:
    """Up to `n` new configurations (varied key -> value), none equal to one in `history` or
    to each other; fewer when the space runs out. Deterministic in its inputs."""
    import optuna
    from optuna.trial import TrialState, create_trial

    dists = distributions(vary)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no line per told trial in the log
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(direction="maximize", sampler=SAMPLERS[strategy](seed, startup))
        known: dict[tuple, float | None] = {}
        for values, value in history:
            params = {k: _choice(values[k]) for k in dists}
            state = TrialState.FAIL if value is None else TrialState.COMPLETE
            study.add_trial(create_trial(state=state, value=value, params=params,
                                         distributions=dists))
            known[_key(values)] = value
        out: list[dict[str, Any]] = []
        asked: set[tuple] = set()
        for _ in range(ASKS_PER_CONFIG * n):
            if len(out) == n:
                break
            trial = study.ask(dists)
            values = _clamped(baseline, {k: _value(k, v) for k, v in trial.params.items()})
            key = _key(values)
            if key in known:  # trained already: its value is known, so tell it and ask again
                told = known[key]
                study.tell(trial, told, state=TrialState.FAIL if told is None else None)
            elif key not in asked:  # a repeat within the batch stays running (constant liar)
                asked.add(key)
                out.append(values)
    return out


def _clamped(baseline: TrialConfig, values: dict[str, Any]) -> dict[str, Any]:
    train_size = values.get("train_size", baseline.data.train_size)
    if values.get("batch_size", baseline.batch_size) > train_size:
        values["batch_size"] = train_size  # a batch cannot exceed the data
    return values


def _key(values: Mapping[str, Any]) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in values.items()))


# ---------------------------------------------------------------------------------------------
# A stored study's batches


@dataclass(frozen=True)
class Batch:
    """One batch of a batched study: its new configurations (sectioned, as stored)."""

    number: int  # 1 = the study's plan
    first: int  # index (in plan order) of its first configuration
    configs: list[dict[str, Any]]
    reason: str

    @property
    def indices(self) -> list[int]:
        return list(range(self.first, self.first + len(self.configs)))

    def trials(self, seeds: int, study_seed: int) -> list[tuple[dict[str, Any], int, int]]:
        """Its trials (config, seed, replicate): configuration by configuration, replicates
        ascending, with the seeds every configuration of the study shares."""
        return [(c, replicate_seed(study_seed, r), r) for c in self.configs
                for r in range(seeds)]


def first_batch(spec: StudySpec, n_configs: int) -> Batch:
    """Batch 1: the configurations the study was created with."""
    return Batch(1, 0, [], f"batch 1 of {spec.batches}: {_configurations(n_configs)} at "
                 f"random to start ({spec.strategy} learns from batch 2 on)")


def history(trials: Sequence[TrialRow],
            keys: Sequence[str]) -> list[tuple[dict[str, Any], float | None]]:
    """Each stored configuration (its normalised values of `keys`) and its mean accuracy, in
    plan order."""
    order: list[str] = []
    configs: dict[str, dict[str, Any]] = {}
    accs: dict[str, list[float]] = {}
    for t in sorted(trials, key=lambda t: t.number):
        key = json.dumps(t.config, sort_keys=True)
        if key not in configs:
            order.append(key)
            flat = TrialConfig.from_dict(t.config).flat()
            configs[key] = {k: strategies.normalise(k, flat[k]) for k in keys}
            accs[key] = []
        if t.status in COUNTED_STATUSES:
            acc = t.val_acc
            accs[key].append(CHANCE if acc is None or not math.isfinite(acc) else float(acc))
    return [(configs[k], math.fsum(accs[k]) / len(accs[k]) if accs[k] else None)
            for k in order]


def remaining(study: StudyRow, trials: Sequence[TrialRow]) -> int:
    """Configurations the study's budget still allows (0 for a study that is not batched)."""
    spec = StudySpec.from_dict(study.spec)
    if not spec.batched:
        return 0
    return max(0, spec.samples - len({json.dumps(t.config, sort_keys=True) for t in trials}))


def next_batch(study: StudyRow, trials: Sequence[TrialRow], number: int) -> Batch | None:
    """Batch `number` of a stored batched study whose trials are all trained (None: the budget
    is spent, or the space has nothing new). Raises SamplerMissing without Optuna."""
    left = remaining(study, trials)
    if left == 0:
        return None
    require(study.strategy)
    spec = StudySpec.from_dict(study.spec)
    past = history(trials, list(spec.vary))
    baseline = TrialConfig.from_dict(study.baseline)
    found = propose(study.strategy, spec.vary, baseline, past, min(left, spec.batch),
                    derive_seed(spec.seed, f"{study.strategy}:{number}") % 2**32,  # numpy's range
                    startup=min(spec.samples, spec.batch))
    if not found:
        return None
    configs = [baseline.replace(**values).to_dict() for values in found]
    best = max((v for _, v in past if v is not None), default=None)
    so_far = f" (best {best:.1%})" if best is not None else ""
    # a batch cut short (a space running out) can make one more than planned
    reason = (f"batch {number} of {max(number, spec.batches)}: "
              f"{_configurations(len(configs))} asked of {study.strategy} after "
              f"{len(past)} trained{so_far}")
    return Batch(number, len(past), configs, reason)


def _configurations(n: int) -> str:
    return f"{n} configuration" + ("" if n == 1 else "s")
