"""How fast a population trains on each device: the cost model behind `--device auto`.

A population step costs a fixed part (op dispatch on the CPU, kernel launches on a GPU: the
same few dozen ops whatever the size) and a part that grows with the arithmetic:

    seconds per step = step_s x depth factor + work_s x trials x batch x multiply-adds
    seconds = steps x seconds per step + setup_s x trials


where trials are padded to LANES, multiply-adds are a sample's forward pass through the
population's widest layers, and the depth factor is the weight layers over the notebook's two
(a deeper network dispatches proportionally more ops), and `setup_s` a trial's share of building
the population (its own generator and initial weights). A population the trainer will compile
saves a measured amount per step and pays its compile once (`predict(compiled=...)`). The
constants are measured on this machine for each device (`engine.train.calibrate`); on a CPU
that trains with several worker processes, a population the pool splits trains `ways` shares
side by side.

Pure: the constants and the shape go in, predictions come out, so that the choice is tested
with figures measured elsewhere (docs/performance.md).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from engine.spec import TrialConfig

CALIBRATION_LAYERS = 2  # weight layers of the network the constants are measured on
# a compiled step's least share of the eager one (measured here: 0.24 to 0.26 at N = 512 for the
# notebook, batch 100 and wide Adam; docs/performance.md)
COMPILED_FLOOR = 0.2


@dataclass(frozen=True)
class DeviceSpeed:
    """A device's measured constants: seconds per population step, fixed and per unit of work
    (one multiply-add of one trial's sample), and seconds per trial to set a population up."""

    device: str  # 'cpu', 'cuda:0'
    step_s: float
    work_s: float
    setup_s: float = 0.0


@dataclass(frozen=True)
class PopulationShape:
    """What a population's time depends on."""

    trials: int  # padded to LANES
    batch_size: int
    layers: tuple[int, ...]  # inputs, widest hidden widths, output
    steps: int  # of its longest trial

    @property
    def work(self) -> float:
        """Multiply-adds of one step's forward pass over the whole population."""
        macs = sum(a * b for a, b in itertools.pairwise(self.layers))
        return float(self.trials * self.batch_size * macs)

    @property
    def depth_factor(self) -> float:
        return (len(self.layers) - 1) / CALIBRATION_LAYERS


@dataclass(frozen=True)
class Prediction:
    device: str
    step_s: float  # seconds per step
    seconds: float  # the whole population

    def human(self) -> str:
        return f"{self.device} {self.seconds:.3g} s ({self.step_s * 1e6:.0f} us/step)"


@dataclass(frozen=True)
class Choice:
    """The device with the lowest prediction, and every prediction (in the speeds' order)."""

    device: str
    predictions: tuple[Prediction, ...]

    def human(self) -> str:
        return f"{self.device} (predicted: {', '.join(p.human() for p in self.predictions)})"


def predict(speed: DeviceSpeed, shape: PopulationShape, ways: int = 1,
            compiled: tuple[float, float] | None = None) -> Prediction:
    """Seconds per step and for the whole population on one device; `ways` shares of the
    population train side by side (the CPU's worker pool), each with its own fixed cost.
    `compiled`: (seconds a step saves, seconds the compile costs) where the trainer will
    compile this population's step; a compiled step keeps at least COMPILED_FLOOR of the
    eager one (the saving is measured on one machine, the eager step on this one)."""
    share = shape.work / max(1, ways)
    step = speed.step_s * shape.depth_factor + speed.work_s * share
    setup = speed.setup_s * shape.trials / max(1, ways)
    once = 0.0
    if compiled is not None:
        saved, once = compiled
        step = max(step - saved, step * COMPILED_FLOOR)
    return Prediction(speed.device, step, step * shape.steps + setup + once)


def choose(speeds: Sequence[DeviceSpeed], shape: PopulationShape,
           ways: dict[str, int] | None = None,
           compiled: dict[str, tuple[float, float] | None] | None = None) -> Choice:
    """The device predicted fastest for this population. A tie goes to the device listed first
    (put the CPU first: a GPU must be faster to be worth its transfers and its rounding).
    `ways` and `compiled` per device name, as `predict` takes them."""
    if not speeds:
        raise ValueError("choose: no device to choose from")
    predictions = tuple(predict(s, shape, (ways or {}).get(s.device, 1),
                                (compiled or {}).get(s.device)) for s in speeds)
    best = predictions[0]
    for p in predictions[1:]:
        if p.seconds < best.seconds:
            best = p
    return Choice(best.device, predictions)


def population_shape(configs: Sequence[TrialConfig], n_train: int, n_features: int,
                     lanes: int) -> PopulationShape:
    """The shape of one population of these trials (one depth and batch size: a trainer group),
    on a training split of `n_train` points."""
    if not configs:
        raise ValueError("population_shape: no trials")
    batch = configs[0].batch_size
    widths = tuple(max(ws) for ws in zip(*(c.hidden for c in configs), strict=True))
    steps = max(c.epochs for c in configs) * -(-n_train // batch)
    padded = -(-len(configs) // lanes) * lanes
    return PopulationShape(padded, batch, (n_features, *widths, 1), steps)
