"""Training trials on torch: the population trainer, the per-trial reference loop that checks it,
the data splits and the devices they train on.

Everything here imports torch: callers that must stay light (the CLI, the runner's module level)
import this package lazily. The test split is not here: only `engine.run.vault` reads it, from
`engine.train.data`.
"""

from engine.train.auto import AutoDevice, Placement, auto_device
from engine.train.data import DataError, Split, Splits, load_splits
from engine.train.devices import DEVICE_CHOICES, DeviceError, resolve_device
from engine.train.population import (
    LANES,
    Group,
    OnDone,
    OnEpoch,
    Pruner,
    Stopped,
    compile_available,
    group_trials,
    should_compile,
    train_population,
)
from engine.train.reference import EpochMetrics, Trial, TrialOutcome, evaluate, train_reference
from engine.train.speed import (
    Choice,
    DeviceSpeed,
    PopulationShape,
    Prediction,
    choose,
    population_shape,
    predict,
)

__all__ = [
    "DEVICE_CHOICES",
    "LANES",
    "AutoDevice",
    "Choice",
    "DataError",
    "DeviceError",
    "DeviceSpeed",
    "EpochMetrics",
    "Group",
    "OnDone",
    "OnEpoch",
    "Placement",
    "PopulationShape",
    "Prediction",
    "Pruner",
    "Split",
    "Splits",
    "Stopped",
    "Trial",
    "TrialOutcome",
    "auto_device",
    "choose",
    "compile_available",
    "evaluate",
    "group_trials",
    "load_splits",
    "population_shape",
    "predict",
    "resolve_device",
    "should_compile",
    "train_population",
    "train_reference",
]
