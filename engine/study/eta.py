"""How long a study will take, before it starts (torch-free: the CLI and the form call it).

The population trainer's cost is close to `steps x (per_step + per_trial_step x trials x size)`
per population: a fixed dispatch cost per optimisation step, shared by every trial stacked in it,
plus arithmetic that grows with the trials and their width. The constants below were measured on
the 2-core CPU machine this project is developed on (see docs/performance.md); once the store has
past runs on the same device, their measured times rescale the model to this machine.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from engine.spec import TrialConfig

PER_STEP_S = 1.5e-4  # one population step, eager, any size (dispatch-bound)
PER_TRIAL_STEP_S = 2.0e-7  # one trial's share of a step, per unit of `_size`
STARTUP_S = 2.0  # interpreter, torch import, worker start


@dataclass(frozen=True)
class Estimate:
    seconds: float
    source: str  # says where the numbers come from

    def human(self) -> str:
        return f"~{format_seconds(self.seconds)} ({self.source})"


def model_seconds(configs: Iterable[TrialConfig], workers: int = 1) -> float:
    """The cost model's training time for these trials (start-up excluded), uncalibrated.

    The runner records this next to the time it really took, so later estimates can be rescaled.
    """
    groups: dict[tuple, list[TrialConfig]] = defaultdict(list)
    for c in configs:
        groups[(c.data, c.batch_size, len(c.hidden))].append(c)
    total = 0.0
    for members in groups.values():
        steps = max(_steps(c) for c in members)
        size = sum(_size(c) * _steps(c) for c in members) / max(1, steps)
        total += steps * PER_STEP_S + steps * PER_TRIAL_STEP_S * size
    # populations run side by side on the workers; never faster than the longest one
    longest = max((max(_steps(c) for c in m) * PER_STEP_S for m in groups.values()), default=0.0)
    return max(longest, total / max(1, workers))


def estimate(configs: list[TrialConfig], past: list[tuple[float, float]] | None = None,
             workers: int = 1) -> Estimate:
    """ETA for training `configs`, start-up included. `past` holds (measured, modelled) training
    seconds of earlier runs here; with them, the model is rescaled to what this machine does."""
    base = model_seconds(configs, workers)
    usable = [(m, p) for m, p in (past or []) if m > 0 and p > 0]
    if not configs:
        return Estimate(0.0, "nothing to train")
    if usable:
        factor = sum(m for m, _ in usable) / sum(p for _, p in usable)
        n = len(usable)
        return Estimate(STARTUP_S + base * factor,
                        f"calibrated on {n} past run{'s' * (n != 1)} here")
    return Estimate(STARTUP_S + base, "default calibration for a 2-core CPU")


def estimate_batches(first: list[TrialConfig], batches: int,
                     past: list[tuple[float, float]] | None = None,
                     workers: int = 1) -> Estimate:
    """ETA of a batched (tpe) study, whose batches train one after another: its first batch's
    training time, as the typical batch's, `batches` times (start-up once). A later batch is
    as long as its slowest population, whatever its size, so a smaller last batch costs about
    as much."""
    one = estimate(first, past, workers)
    if not first or batches <= 1:
        return one
    seconds = STARTUP_S + (one.seconds - STARTUP_S) * batches
    return Estimate(seconds, f"{one.source}; {batches} batches in sequence")


def _steps(c: TrialConfig) -> int:
    return c.epochs * math.ceil(c.data.train_size / c.batch_size)


def _size(c: TrialConfig) -> float:
    """Work per sample of one step, in multiply-adds of the forward pass (x3 for backward)."""
    layers = c.layers()
    macs = sum(a * b for a, b in itertools.pairwise(layers))
    return c.batch_size * macs / 30.0  # 30 MACs: the notebook's [2, 10, 1] network


def format_seconds(s: float) -> str:
    if s < 60:
        return f"{s:.0f} s" if s >= 10 else f"{s:.1f} s"
    if s < 3600:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def format_clock(s: float) -> str:
    """Elapsed time as a clock: 0:07, 12:34, 1:02:03."""
    whole = max(0, int(s))
    hours, rest = divmod(whole, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class LiveEta:
    """Seconds left while a study trains, refined as it goes.

    Before any progress is seen it is the estimate made when watching began (`prior`, seconds
    left then), less the time since. Once trial-epochs are done, the measured rate since the
    first progress seen predicts the rest; the two are blended, the rate weighing
    sqrt(share of the work measured): it is the better guess soon after it starts, and the
    only one at the end. Times are the caller's clock (seconds since watching began)."""

    def __init__(self, prior: float | None) -> None:
        self.prior = prior
        self._first: tuple[float, int] | None = None  # (time, trial-epochs done) first seen

    def left(self, now: float, done: int, total: int) -> float | None:
        if total <= 0:
            return None
        if done >= total:
            return 0.0
        prior_left = None if self.prior is None else max(0.0, self.prior - now)
        # the rate counts from the first progress seen: start-up and compiling are not training;
        # progress that went back (a resume trains its interrupted trials from their start)
        # starts the measure again
        if self._first is not None and done < self._first[1]:
            self._first = None
        if done > 0 and self._first is None:
            self._first = (now, done)
        if self._first is None:
            return prior_left
        t0, d0 = self._first
        if done == d0 or now <= t0:
            return prior_left
        rate_left = (total - done) * (now - t0) / (done - d0)
        if prior_left is None:
            return rate_left
        trust = math.sqrt((done - d0) / (total - d0))
        return (1 - trust) * prior_left + trust * rate_left
