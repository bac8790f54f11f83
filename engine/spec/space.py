"""The hyperparameter space: one table that drives preset validation and the UI form.

Every knob of a study is one `Param` row. Defaults are the workshop notebook's values, so a
preset that sets nothing is the notebook. `check_value` holds the rules (types, ranges, choices)
and returns a message saying what is allowed; presets and the form both call it, so they can
never disagree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

DATASETS = ("spirals", "moons", "circles", "xor", "blobs", "csv")
ACTIVATIONS = ("relu", "sigmoid", "tanh", "leaky_relu", "elu", "gelu", "silu")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
LOSSES = ("mse", "bce", "bce_with_logits")
STRATEGIES = ("single", "grid", "sensitivity", "random", "tpe")
PRUNERS = ("none", "halving")
SCHEDULES = ("constant", "step", "cosine")
PREPROCESS = ("none", "standardize", "minmax")

MAX_DEPTH = 16
AUTO = "auto"  # study.seeds = "auto": adaptive seeding
AUTO_MIN_SEEDS = 4
AUTO_MAX_SEEDS = 64
MAX_WIDTH = 4096
TPE_BATCH = 8  # study.batch: configurations a tpe study trains at once


@dataclass(frozen=True)
class Param:
    """One hyperparameter: where it lives in a preset, its type, default and allowed values.

    kind is one of: "int", "float", "choice", "str", "widths" (a list of layer widths).
    Bounds are inclusive unless the matching *_exclusive flag is set.
    """

    section: str
    key: str
    kind: str
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    min_exclusive: bool = False
    max_exclusive: bool = False
    # Whether `study.vary` may list this key. Study settings themselves cannot be varied.
    variable: bool = True
    # For numbers drawn by random search: sample on a log scale by default.
    log_scale: bool = False
    # Also accepts the string "auto" (study.seeds: as many seeds as the impact table needs).
    auto: bool = False

    @property
    def dotted(self) -> str:
        return f"{self.section}.{self.key}"

    def allowed(self) -> str:
        """A short human phrase for what this parameter accepts."""
        if self.kind == "choice":
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.kind == "widths":
            return f"a list of 1..{MAX_DEPTH} integer widths, each 1..{MAX_WIDTH}"
        if self.kind == "str":
            return "a string"
        noun = "an integer" if self.kind == "int" else "a number"
        parts = []
        if self.minimum is not None:
            parts.append(f"{'>' if self.min_exclusive else '>='} {_fmt(self.minimum)}")
        if self.maximum is not None:
            parts.append(f"{'<' if self.max_exclusive else '<='} {_fmt(self.maximum)}")
        text = noun + (" " + " and ".join(parts) if parts else "")
        return text + ', or "auto"' if self.auto else text


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


SPACE: tuple[Param, ...] = (
    # data
    Param("data", "dataset", "choice", "spirals", "Which 2-D toy problem (or your CSV) to learn.",
          choices=DATASETS),
    Param("data", "path", "str", None,
          "CSV file (numeric feature columns, a 0/1 column named 'label' or the last column); "
          "required when dataset = 'csv'. Relative paths are relative to the preset file."),
    Param("data", "train_size", "int", 4000, "Number of training points.", minimum=1,
          maximum=10_000_000),
    Param("data", "val_size", "int", 1000, "Number of validation points (model selection).",
          minimum=1, maximum=10_000_000),
    Param("data", "test_size", "int", 1000,
          "Number of test points, drawn from their own seed and only ever read by the test vault.",
          minimum=1, maximum=10_000_000),
    Param("data", "noise", "float", 0.4, "Standard deviation of the Gaussian noise on each point.",
          minimum=0.0, maximum=100.0),
    Param("data", "seed", "int", 0, "Seed of the data (the same seed gives the same points).",
          minimum=0, maximum=2**31 - 1),
    Param("data", "preprocess", "choice", "none",
          "Input scaling, per feature, with statistics of the training split only: none; "
          "standardize (mean 0, standard deviation 1); minmax (the training range to [0, 1]).",
          choices=PREPROCESS),
    # model
    Param("model", "hidden", "widths", [10],
          "Widths of the hidden layers; [10] is the notebook's [2, 10, 1] network."),
    Param("model", "activation", "choice", "relu", "Nonlinearity after each hidden layer.",
          choices=ACTIVATIONS),
    # train
    Param("train", "optimizer", "choice", "sgd", "Optimisation algorithm.", choices=OPTIMIZERS),
    Param("train", "lr", "float", 0.01, "Learning rate.", minimum=0.0, maximum=100.0,
          min_exclusive=True, log_scale=True),
    Param("train", "momentum", "float", 0.0,
          "Momentum (sgd) or momentum term (rmsprop); ignored by adam and adamw.",
          minimum=0.0, maximum=1.0, max_exclusive=True),
    Param("train", "weight_decay", "float", 0.0, "L2 weight decay (decoupled for adamw).",
          minimum=0.0, maximum=10.0),
    Param("train", "batch_size", "int", 10, "Mini-batch size (at most data.train_size).",
          minimum=1, maximum=10_000_000, log_scale=True),
    Param("train", "epochs", "int", 10, "Passes over the training set.", minimum=1,
          maximum=100_000),
    Param("train", "loss", "choice", "mse",
          "mse and bce apply a sigmoid to the logit first; bce_with_logits takes the logit.",
          choices=LOSSES),
    Param("train", "schedule", "choice", "constant",
          "Learning rate per epoch: constant; step (times train.gamma every train.step_epochs "
          "epochs); cosine (from lr down to train.min_lr over the epochs after the warm-up).",
          choices=SCHEDULES),
    Param("train", "warmup_epochs", "int", 0,
          "Linear warm-up before the schedule: epoch e < warmup_epochs trains at "
          "lr * (e + 1) / (warmup_epochs + 1); 0: none.", minimum=0, maximum=100_000),
    Param("train", "gamma", "float", 0.1,
          "The step schedule's factor: the lr is multiplied by it every train.step_epochs "
          "epochs (schedule = \"step\" only).", minimum=0.0, maximum=1.0, min_exclusive=True),
    Param("train", "step_epochs", "int", 5,
          "Epochs between the step schedule's drops (schedule = \"step\" only).",
          minimum=1, maximum=100_000),
    Param("train", "min_lr", "float", 0.0,
          "The cosine schedule's final learning rate (schedule = \"cosine\" only).",
          minimum=0.0, maximum=100.0),
    # study
    Param("study", "strategy", "choice", "single",
          "single: the preset as is; grid: every combination of study.vary; sensitivity: one "
          "parameter at a time around the preset; random: study.samples draws; tpe: study.samples "
          "configurations proposed by Optuna's TPE sampler, study.batch at a time, each batch "
          "learning from the ones before.",
          choices=STRATEGIES, variable=False),
    Param("study", "seeds", "int", 3,
          "How many seeds each configuration is trained with; \"auto\": start with "
          "study.min_seeds, then add seeds in rounds to the configurations whose impact-table "
          "rows are still undecided, up to study.max_seeds.",
          minimum=1, maximum=1000, variable=False, auto=True),
    Param("study", "min_seeds", "int", AUTO_MIN_SEEDS,
          "Seeds per configuration in the first round of seeds = \"auto\" (ignored otherwise).",
          minimum=1, maximum=1000, variable=False),
    Param("study", "max_seeds", "int", AUTO_MAX_SEEDS,
          "The most seeds a configuration gets with seeds = \"auto\" (ignored otherwise).",
          minimum=1, maximum=1000, variable=False),
    Param("study", "negligible", "float", 0.02,
          "The smallest effect worth caring about, as a fraction of accuracy: a parameter whose "
          "effect's interval lies below it is negligible.",
          minimum=0.001, maximum=1.0, variable=False),
    Param("study", "samples", "int", 20, "Number of configurations drawn (random and tpe only).",
          minimum=1, maximum=100_000, variable=False),
    Param("study", "seed", "int", 0, "Study seed: trial seeds derive from it and the trial index.",
          minimum=0, maximum=2**31 - 1, variable=False),
    Param("study", "batch", "int", TPE_BATCH,
          "Configurations per batch of a tpe study, trained together as one population; a "
          "smaller batch lets the sampler learn more often, a larger one finishes sooner "
          "(tpe only).", minimum=1, maximum=100_000, variable=False),
    Param("study", "pruner", "choice", "none",
          "none: every configuration trains every epoch; halving: successive halving, only the "
          "best 1/study.reduction of the configurations (mean over seeds) go on at each rung.",
          choices=PRUNERS, variable=False),
    Param("study", "reduction", "int", 3,
          "Halving's reduction factor: rungs after epochs // reduction^k, and 1/reduction of "
          "the configurations go on at each (pruner = \"halving\" only).",
          minimum=2, maximum=100, variable=False),
    Param("study", "min_epochs", "int", 1,
          "Halving's first rung is never before this epoch (pruner = \"halving\" only).",
          minimum=1, maximum=100_000, variable=False),
)

SECTIONS = ("data", "model", "train", "study")
CONFIG_SECTIONS = ("data", "model", "train")

_BY_DOTTED = {p.dotted: p for p in SPACE}
# Keys of data/model/train are unique, so `study.vary` can name them bare (`lr`, not `train.lr`).
VARIABLE: dict[str, Param] = {p.key: p for p in SPACE if p.variable}
assert len(VARIABLE) == sum(p.variable for p in SPACE), "variable keys must be unique"


def param(dotted: str) -> Param:
    """The parameter at `section.key`; KeyError if there is none."""
    return _BY_DOTTED[dotted]


def params_in(section: str) -> tuple[Param, ...]:
    return tuple(p for p in SPACE if p.section == section)


def defaults() -> dict[str, dict[str, Any]]:
    """The notebook's configuration as {section: {key: value}}."""
    out: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    for p in SPACE:
        if p.default is not None:
            out[p.section][p.key] = list(p.default) if isinstance(p.default, list) else p.default
    return out


def check_value(p: Param, value: Any) -> tuple[Any, str | None]:
    """Validate `value` for `p`. Returns (normalised value, None) or (None, message).

    The message says what was wrong and what is allowed, without the location: the caller
    knows the file, key and line.
    """
    if p.kind == "choice":
        if not isinstance(value, str):
            return None, f"expected {p.allowed()}, got {describe(value)}"
        if value not in p.choices:
            hint = nearest(value, p.choices)
            extra = f" (did you mean {hint!r}?)" if hint else ""
            return None, f"unknown value {value!r}{extra}; expected {p.allowed()}"
        return value, None
    if p.kind == "str":
        if not isinstance(value, str) or not value:
            return None, f"expected a non-empty string, got {describe(value)}"
        return value, None
    if p.kind == "widths":
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, list) or not value:
            return None, f"expected {p.allowed()}, got {describe(value)}"
        if len(value) > MAX_DEPTH:
            return None, f"{len(value)} hidden layers is too deep; expected {p.allowed()}"
        for w in value:
            if isinstance(w, bool) or not isinstance(w, int) or not 1 <= w <= MAX_WIDTH:
                return None, f"width {describe(w)} is not allowed; expected {p.allowed()}"
        return list(value), None
    # numbers
    if p.auto and value == AUTO:
        return AUTO, None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None, f"expected {p.allowed()}, got {describe(value)}"
    if p.kind == "int":
        if isinstance(value, float):
            if not value.is_integer():
                return None, f"expected {p.allowed()}, got {value!r}"
            value = int(value)
    else:
        value = float(value)
        if not math.isfinite(value):
            return None, f"expected {p.allowed()}, got {value!r}"
    if p.minimum is not None and (
        value < p.minimum or (p.min_exclusive and value == p.minimum)
    ):
        return None, f"{value!r} is out of range; expected {p.allowed()}"
    if p.maximum is not None and (
        value > p.maximum or (p.max_exclusive and value == p.maximum)
    ):
        return None, f"{value!r} is out of range; expected {p.allowed()}"
    return value, None


def describe(value: Any) -> str:
    kind = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{kind} ({text})"


# Names people bring from the notebook or other tools, mapped to ours, so typos of them still
# find the right key ("learnig_rate" -> "lr").
ALIASES = {
    "learning_rate": "lr", "num_epochs": "epochs", "n_epochs": "epochs", "layers": "hidden",
    "hidden_layers": "hidden", "widths": "hidden", "non_linearity": "activation",
    "nonlinearity": "activation", "criterion": "loss", "batch": "batch_size",
    "batchsize": "batch_size", "optim": "optimizer", "wd": "weight_decay", "n_seeds": "seeds",
    "num_samples": "samples", "n_samples": "samples", "data_seed": "seed",
}


def nearest(word: str, options: tuple[str, ...] | list[str]) -> str | None:
    """The option closest to `word` (or to a known alias of it) if close enough to be a typo."""
    candidates = {o: o for o in options}
    candidates.update({a: t for a, t in ALIASES.items() if t in candidates})
    best, best_d = None, None
    for name, target in candidates.items():
        d = _edit_distance(word.lower(), name.lower())
        if best_d is None or d < best_d:
            best, best_d = target, d
    if best is None or best_d is None:
        return None
    return best if best_d <= max(2, len(word) // 3) else None


def _edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]
