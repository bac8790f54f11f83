"""The vocabulary every other package shares: the hyperparameter space, configs, statuses,
seeds, exit codes. Standard library only (no numpy, no torch): anything may import it."""

from __future__ import annotations

from engine.spec.config import (
    BATCHED_STRATEGIES,
    DataConfig,
    Range,
    StudySpec,
    TrialConfig,
    parameters,
)
from engine.spec.exit_codes import ExitCode
from engine.spec.populations import population_key
from engine.spec.predictions import EFFECT_SIZES
from engine.spec.processes import pid_alive
from engine.spec.rungs import halving_rungs
from engine.spec.schedules import describe_schedule, lr_at, lr_curve
from engine.spec.seeds import (
    SHUFFLE_DRAWN,
    SHUFFLE_KEYED,
    SHUFFLE_NAMES,
    SHUFFLE_RECIPES,
    derive_seed,
    replicate_seed,
    seed_schedule,
)
from engine.spec.space import VARIABLE
from engine.spec.statuses import (
    FINISHED_TRIALS,
    KEPT_ON_RESUME,
    STUDY_STATUSES,
    TRIAL_STATUSES,
    StudyStatus,
    TrialStatus,
)

__all__ = [
    "BATCHED_STRATEGIES",
    "EFFECT_SIZES",
    "FINISHED_TRIALS",
    "KEPT_ON_RESUME",
    "SHUFFLE_DRAWN",
    "SHUFFLE_KEYED",
    "SHUFFLE_NAMES",
    "SHUFFLE_RECIPES",
    "STUDY_STATUSES",
    "TRIAL_STATUSES",
    "VARIABLE",
    "DataConfig",
    "ExitCode",
    "Range",
    "StudySpec",
    "StudyStatus",
    "TrialConfig",
    "TrialStatus",
    "derive_seed",
    "describe_schedule",
    "halving_rungs",
    "lr_at",
    "lr_curve",
    "parameters",
    "pid_alive",
    "population_key",
    "replicate_seed",
    "seed_schedule",
]
