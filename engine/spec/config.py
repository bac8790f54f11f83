"""Validated configurations: what one trial trains, and what a study varies.

`TrialConfig` is everything one training run needs besides its seed. `StudySpec` is the `[study]`
table. Both are plain frozen dataclasses, built only from values that the space table has checked.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.spec import space
from engine.spec.seeds import SHUFFLE_DRAWN, seed_schedule


def parameters(layers: Sequence[int]) -> int:
    """Weights and biases of a fully connected network with these layer sizes."""
    return sum(i * o + o for i, o in itertools.pairwise(layers))


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "spirals"
    path: str | None = None
    train_size: int = 4000
    val_size: int = 1000
    test_size: int = 1000
    noise: float = 0.4
    seed: int = 0
    preprocess: str = "none"  # "standardize" | "minmax": scaled with the training split's stats


@dataclass(frozen=True)
class TrialConfig:
    """One trial's hyperparameters (the preset's data, model and train sections)."""

    data: DataConfig = field(default_factory=DataConfig)
    hidden: tuple[int, ...] = (10,)
    activation: str = "relu"
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 10
    epochs: int = 10
    loss: str = "mse"
    # the learning-rate schedule, per epoch (engine.spec.schedules)
    schedule: str = "constant"
    warmup_epochs: int = 0
    gamma: float = 0.1
    step_epochs: int = 5
    min_lr: float = 0.0

    def layers(self, n_features: int = 2) -> tuple[int, ...]:
        """Layer sizes in the notebook's notation: inputs, hidden widths, one output logit."""
        return (n_features, *self.hidden, 1)

    def get(self, key: str) -> Any:
        """A value by its bare space key (`lr`, `hidden`, `noise`, ...)."""
        if key in _DATA_KEYS:
            return getattr(self.data, key)
        return getattr(self, key)

    def replace(self, **changes: Any) -> TrialConfig:
        """A copy with some bare keys changed; data keys go to the data section."""
        data_changes = {k: v for k, v in changes.items() if k in _DATA_KEYS}
        own = {k: v for k, v in changes.items() if k not in _DATA_KEYS}
        if "hidden" in own:
            own["hidden"] = tuple(own["hidden"])
        data = dataclasses.replace(self.data, **data_changes) if data_changes else self.data
        return dataclasses.replace(self, data=data, **own)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Sectioned like a preset: {"data": {...}, "model": {...}, "train": {...}}."""
        data = {k: v for k, v in dataclasses.asdict(self.data).items() if v is not None}
        return {
            "data": data,
            "model": {"hidden": list(self.hidden), "activation": self.activation},
            "train": {k: getattr(self, k) for k in _TRAIN_KEYS},
        }

    def flat(self) -> dict[str, Any]:
        """Bare key -> value, the naming `study.vary` uses."""
        out: dict[str, Any] = {}
        for section in self.to_dict().values():
            out.update(section)
        return out

    @classmethod
    def from_dict(cls, sections: dict[str, dict[str, Any]]) -> TrialConfig:
        """Build from sectioned values that were already validated (missing keys: defaults)."""
        data = DataConfig(**sections.get("data", {}))
        model = dict(sections.get("model", {}))
        if "hidden" in model:
            model["hidden"] = tuple(model["hidden"])
        return cls(data=data, **model, **sections.get("train", {}))


_DATA_KEYS = frozenset(p.key for p in space.params_in("data"))
_TRAIN_KEYS = tuple(p.key for p in space.params_in("train"))


@dataclass(frozen=True)
class Range:
    """A continuous range for random search."""

    min: float
    max: float
    log: bool = False


# Strategies whose configurations come from an ask/tell sampler, one batch after another
BATCHED_STRATEGIES = ("tpe",)


@dataclass(frozen=True)
class StudySpec:
    """The `[study]` table: how to turn the preset into trials.

    `seeds` is the seeds of the first round: every seed of a fixed study, the start of an
    adaptive one (`seeds = "auto"` in a preset: `adaptive`, from `study.min_seeds`), which then
    adds seeds in rounds to the configurations still undecided, up to `max_seeds`.
    """

    strategy: str = "single"
    seeds: int = 3
    samples: int = 20
    seed: int = 0
    # bare key -> list of values (grid, sensitivity, random) or a Range (random)
    vary: dict[str, list[Any] | Range] = field(default_factory=dict)
    adaptive: bool = False
    max_seeds: int = space.AUTO_MAX_SEEDS
    negligible: float = 0.02  # the smallest effect worth caring about (the impact table)
    batch: int = space.TPE_BATCH  # configurations per batch of a batched (tpe) study
    pruner: str = "none"  # "halving": successive halving (engine.study.halving)
    reduction: int = 3
    min_epochs: int = 1
    # how its trials shuffle (engine.spec.seeds): not a preset key; chosen when the study is
    # created (engine.run.shuffle_for) and recorded, so that it resumes as it began
    shuffle: int = SHUFFLE_DRAWN

    @property
    def halving(self) -> bool:
        return self.pruner == "halving"

    @property
    def schedule(self) -> list[int]:
        """Seeds per configuration after each round it may take: [seeds] for a fixed study."""
        return seed_schedule(self.seeds, self.most_seeds)

    @property
    def most_seeds(self) -> int:
        """The most seeds a configuration can get: `max_seeds` if adaptive, else `seeds`."""
        return max(self.seeds, self.max_seeds) if self.adaptive else self.seeds

    @property
    def batched(self) -> bool:
        """Whether the study asks a sampler for its configurations, batch after batch."""
        return self.strategy in BATCHED_STRATEGIES

    @property
    def batches(self) -> int:
        """Batches a batched study takes at most (`samples` configurations, `batch` at a
        time); 1 for every other study."""
        return -(-self.samples // max(1, self.batch)) if self.batched else 1

    def to_dict(self) -> dict[str, Any]:
        """The stored and JSON shape (`from_dict` reads it back); a preset's `[study]` table
        is `engine.presets.study_table`."""
        vary: dict[str, Any] = {}
        for key, values in self.vary.items():
            if isinstance(values, Range):
                vary[key] = {"min": values.min, "max": values.max, "log": values.log}
            else:
                vary[key] = [list(v) if isinstance(v, tuple) else v for v in values]
        out: dict[str, Any] = {"strategy": self.strategy, "seeds": self.seeds,
                               "samples": self.samples, "seed": self.seed,
                               "adaptive": self.adaptive, "max_seeds": self.max_seeds,
                               "negligible": self.negligible, "batch": self.batch}
        if self.halving:  # only then: a study without a pruner keeps its shape
            out.update(pruner=self.pruner, reduction=self.reduction, min_epochs=self.min_epochs)
        if self.shuffle != SHUFFLE_DRAWN:  # the same: a study shuffling as before keeps its shape
            out["shuffle"] = self.shuffle
        if vary:
            out["vary"] = vary
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StudySpec:
        """A stored spec (`to_dict`); one stored before adaptive seeding is a fixed study, one
        stored before shuffle recipes were recorded shuffles with recipe 1."""
        vary: dict[str, list[Any] | Range] = {}
        for key, values in (d.get("vary") or {}).items():
            if isinstance(values, dict):
                vary[key] = Range(values["min"], values["max"], bool(values.get("log", False)))
            else:
                vary[key] = [tuple(v) if isinstance(v, list) else v for v in values]
        seeds = int(d.get("seeds", cls.seeds))
        return cls(strategy=d.get("strategy", cls.strategy), seeds=seeds,
                   samples=int(d.get("samples", cls.samples)), seed=int(d.get("seed", cls.seed)),
                   vary=vary, adaptive=bool(d.get("adaptive", False)),
                   max_seeds=int(d.get("max_seeds", seeds)),
                   negligible=float(d.get("negligible", cls.negligible)),
                   batch=int(d.get("batch", cls.batch)),
                   pruner=str(d.get("pruner", cls.pruner)),
                   reduction=int(d.get("reduction", cls.reduction)),
                   min_epochs=int(d.get("min_epochs", cls.min_epochs)),
                   shuffle=int(d.get("shuffle", SHUFFLE_DRAWN)))
