"""The population trainer: many trials as one tensor program.

Trials are tiny, so a per-trial loop spends its time in Python and framework dispatch. Here
trials that share a batch size and a depth are stacked into one population and trained together,
with hand-written gradients (no autograd, no torch.optim) so that a step is a few dozen tensor ops
for the whole population, or one fused kernel when compiled.

Two memory layouts, chosen per trial by its widest layer and its depth:
- narrow (all widths <= NARROW_MAX, or one hidden layer of <= SHALLOW_NARROW_MAX units): the
  trial index is the last, fastest-varying dimension
  (W [out, in, N], activations [batch, width, N]); the tiny matmuls become broadcast products
  that vectorise across trials;
- wide: trial first (W [N, out, in]) and `torch.bmm`.

A trial's numbers do not depend on its population (size, order, neighbours): N is padded with idle
trials to a multiple of LANES (two AVX-512 vectors; ATen sums a [B, 1, 16] tensor over B in
another order than a [B, 1, 32] one, and vector loops then have no scalar tail, whose
transcendentals round differently), wide layers are padded to a multiple of WIDE_QUANTUM units,
the loss is computed trial-last in both layouts, and training runs on one CPU thread.

Narrower trials are zero-padded to the group's widths; padded units stay exactly zero (their weights
get zero gradients; with sigmoid, whose f(0) != 0, the activations are masked). Mixed
activations, losses and optimizers within a group are selected per trial with `torch.where`. Each
trial keeps its own seed recipe (see `engine.train.reference`), shuffle, hyperparameters and optimizer
state; a trial whose batch loss or weights go non-finite is frozen by `torch.where` at its last
finite weights, so NaNs never reach other trials (no op mixes trials).
"""

from __future__ import annotations

import contextlib
import gc
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from engine.train.data import Splits

# The trainer is split by concern: the step math (engine.train.population.step), a population's stacked
# state and data (engine.train.population.state) and compiling (engine.train.population.compiled). Their names
# that callers and tests import from here are re-exported.
from engine.train.population.compiled import (  # noqa: F401
    COMPILE_COST_S,
    SAVED_PER_STEP_S,
    _functional,
    _steppers,
    compile_available,
    should_compile,
)
from engine.train.population.state import (  # noqa: F401
    EPOCH_DATA_BYTES,
    LANES,
    PERM_THREADS,
    VAL_BYTES,
    VAL_BYTES_GPU,
    WIDE_QUANTUM,
    _batches,
    _epoch_data,
    _Population,
    _segment_steps,
    _validate,
)
from engine.train.population.step import (  # noqa: F401
    FlatStep,
    Program,
    Spec,
    StepFn,
    Stepper,
    Tensors,
    ValProgram,
)
from engine.train.reference import EpochMetrics, Trial, TrialOutcome

NARROW_MAX = 16  # widest layer for the trial-last layout
# ... and with one hidden layer: no [width, width] layer, so the trial-last products grow only
# linearly with the width ([B, W, F, N] and [B, 1, W, N])
SHALLOW_NARROW_MAX = 64
POP_STATE_BYTES = 12 << 20  # cap of a CPU population's parameters and optimizer state
POLL_S = 0.2  # how often should_stop is asked

OnEpoch = Callable[[list[tuple[int, EpochMetrics, str]]], None]


class Stopped(Exception):
    """Raised by `train_population` when `should_stop()` said so; nothing is returned."""


# --- grouping trials into populations ---------------------------------------------------------


@dataclass
class Group:
    """Trials (indices into the caller's list) trained as one population."""

    indices: list[int]
    trials: list[Trial]
    layout: str


def group_trials(trials: Sequence[Trial], device: torch.device | str | None = None
                 ) -> list[Group]:
    """Split trials into populations by (batch size, depth, width class); order is kept.

    Widths are bucketed by the next power of two so that a [10] trial is not padded to [4096].
    On CPU a population is also capped so that its state stays within POP_STATE_BYTES: past the
    caches, wide trials train slower per trial in a larger population (measured: [64, 64] Adam,
    270 trial-epochs/s at N = 128, 150 at N = 512). Small one-hidden-layer groups are then
    merged (`_merge_small_shallow`).
    """
    groups: dict[tuple[int, int, int], Group] = {}
    for i, t in enumerate(trials):
        widest = max(t.config.hidden)
        bucket = 1 << max(0, widest - 1).bit_length()
        key = (t.config.batch_size, len(t.config.hidden), bucket)
        groups.setdefault(key, Group([], [], _layout(t.config.hidden)))
        groups[key].indices.append(i)
        groups[key].trials.append(t)
    if device is not None and torch.device(device).type != "cpu":
        return _merge_small_shallow(list(groups.values()))
    out = []
    for (_, depth, bucket), g in groups.items():
        # parameters of the widest trial of the bucket (2 input features: an estimate)
        params = 2 * bucket + bucket + (depth - 1) * (bucket * bucket + bucket) + bucket + 1
        cap = max(LANES, POP_STATE_BYTES // (params * 20) // LANES * LANES)  # ~5 floats/param
        out += [Group(g.indices[k : k + cap], g.trials[k : k + cap], g.layout)
                for k in range(0, len(g.indices), cap)]
    return _merge_small_shallow(out)


def _layout(hidden: tuple[int, ...]) -> str:
    """A trial's layout, from its own widths only (its numbers must not depend on neighbours)."""
    narrow = max(hidden) <= (SHALLOW_NARROW_MAX if len(hidden) == 1 else NARROW_MAX)
    return "narrow" if narrow else "wide"


def _merge_small_shallow(groups: list[Group]) -> list[Group]:
    """Narrow one-hidden-layer groups of one batch size and epoch count that fit one block of
    LANES trials together train as one population.

    Each would be padded to LANES trials anyway, and such a population's step costs its op
    dispatch (~0.1 ms), hardly its width: a one-at-a-time study varying the width ([10] and
    [20]) trains one population of 4,000 steps instead of two. A trial's hidden layer is then
    zero-padded to the widest of the population, which leaves its numbers unchanged bit for
    bit in the narrow layout (a test checks it). Only groups of as many epochs merge: a group
    trains for its longest trial, and every step of a merged one costs a little more.
    """
    out: list[Group] = []
    open_: dict[tuple[int, int], Group] = {}  # (batch size, epochs) -> the group open to more
    for g in groups:
        cfg = g.trials[0].config
        if g.layout != "narrow" or len(cfg.hidden) != 1 or len(g.indices) > LANES:
            out.append(g)
            continue
        key = (cfg.batch_size, max(t.config.epochs for t in g.trials))
        host = open_.get(key)
        if host is not None and len(host.indices) + len(g.indices) <= LANES:
            pairs = sorted([*zip(host.indices, host.trials, strict=True),
                            *zip(g.indices, g.trials, strict=True)],
                           key=lambda pair: pair[0])  # the caller's order
            host.indices[:] = [i for i, _ in pairs]
            host.trials[:] = [t for _, t in pairs]
            continue
        host = Group(list(g.indices), list(g.trials), "narrow")
        open_[key] = host
        out.append(host)
    return out


# --- the epoch loop -------------------------------------------------------------------------


class _Clock:
    """Polls should_stop at most every POLL_S seconds of work."""

    def __init__(self, should_stop: Callable[[], bool] | None) -> None:
        self.should_stop = should_stop
        self.next = time.monotonic() + POLL_S

    def check(self, force: bool = False) -> None:
        if self.should_stop is None:
            return
        now = time.monotonic()
        if force or now >= self.next:
            self.next = now + POLL_S
            if self.should_stop():
                raise Stopped()


def _train_group(pop: _Population, splits: Splits, step: Stepper, rest_step: Stepper,
                 on_epoch: OnEpoch | None, clock: _Clock) -> list[TrialOutcome]:
    """Train one population for its longest trial's epochs, reporting each epoch."""
    batch, n_train = pop.configs[0].batch_size, len(splits.train)
    x_t = splits.train.x.t().contiguous().to(pop.device)
    y = splits.train.y.to(pop.device)
    outcomes = [TrialOutcome(status="running") for _ in pop.configs]
    full = n_train // batch
    rest = n_train - full * batch
    weight = torch.tensor(batch / n_train, dtype=torch.float64, device=pop.device)
    seg = _segment_steps(pop, batch, full, x_t.shape[0])
    for epoch in range(max(pop.epochs)):
        training = [pop.alive[n] and pop.epochs[n] > epoch for n in range(pop.n)]
        pop.state[-2] = pop.vec(training, torch.bool)
        pop.state[-1] = torch.zeros(pop.vshape, dtype=torch.float64, device=pop.device)
        perms = pop.perms(training, n_train, clock.check)
        eta, bc2s = pop.step_sizes(full + (rest > 0))
        etas, bc2ss = eta.unbind(0), bc2s.unbind(0)
        for first in range(0, full, seg):
            count = min(seg, full - first)
            xs, ys = _epoch_data(pop, x_t, y, perms[:, first * batch : (first + count) * batch])
            xbs, ybs = _batches(pop, xs, ys, batch)
            for s in range(count):
                step(xbs[s], ybs[s], etas[first + s], bc2ss[first + s], weight)
                clock.check()
        if rest:  # the partial last batch has another shape: never compiled
            xb, yb = _epoch_data(pop, x_t, y, perms[:, full * batch :])
            w_rest = torch.tensor(rest / n_train, dtype=torch.float64, device=pop.device)
            rest_step(xb, yb, etas[-1], bc2ss[-1], w_rest)
        pop.steps_done += full + (rest > 0)
        _finish_epoch(pop, splits, epoch, training, outcomes, on_epoch, clock)
        clock.check(force=True)
    return outcomes


def _finish_epoch(pop: _Population, splits: Splits, epoch: int, training: list[bool],
                  outcomes: list[TrialOutcome], on_epoch: OnEpoch | None,
                  clock: _Clock | None = None) -> None:
    """Record the epoch's metrics and statuses, then report them in one callback."""
    still = pop.state[-2].reshape(-1).tolist()
    losses = pop.state[-1].reshape(-1).tolist()
    which = [n for n in range(pop.n) if training[n]]
    report = []
    cpu_params: Tensors = []
    check = clock.check if clock is not None else None
    validated = _validate(pop, splits.val, which, check)
    for n, (val_loss, val_acc) in zip(which, validated, strict=True):
        out = outcomes[n]
        diverged = not still[n]
        metrics = EpochMetrics(math.nan if diverged else losses[n], val_loss, val_acc)
        out.history.append(metrics)
        if diverged:
            out.status, out.diverged_epoch = "diverged", epoch
            pop.alive[n] = False
        elif epoch + 1 >= pop.epochs[n]:
            out.status = "completed"
        if out.status != "running":
            cpu_params = cpu_params or [p.cpu() for p in pop.params]
            out.weights = pop.weights_of(n, cpu_params)
        report.append((pop.group.indices[n], metrics, out.status))
    if on_epoch is not None and report:
        on_epoch(report)


@contextlib.contextmanager
def _one_thread(device: torch.device) -> Iterator[None]:
    """Train on one CPU thread: the ops are small (threads cost more than they give; use
    engine.run.pool for more cores), and ATen splits a multi-threaded op's range at points that
    depend on its size, which would make a trial's rounding depend on its population."""
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while training: a step allocates ~50 tensors, which sets
    off collections that walk every object alive, torch's modules included (~15% of an eager
    run of small trials, and in a forked worker each walk copies the parent's pages). The step
    makes no reference cycles; whatever else does is collected once training ends."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# --- the public entry point --------------------------------------------------------------------


def train_population(
    trials: Sequence[Trial],
    splits: Splits,
    *,
    device: torch.device | str = "cpu",
    on_epoch: OnEpoch | None = None,
    should_stop: Callable[[], bool] | None = None,
    compile: bool | None = None,
) -> list[TrialOutcome]:
    """Train `trials` (all on the same data) as populations; outcomes in the order of `trials`.

    on_epoch gets, once per epoch of each internal group, (index into trials, metrics, status)
    for every trial that trained that epoch; status is "running", "completed" (its last epoch)
    or "diverged". should_stop is polled about every POLL_S seconds of work; when it returns
    True, `Stopped` is raised. compile=None decides per group (`should_compile`), False forces
    eager, True compiles wherever a compiler is available.
    """
    device = torch.device(device)
    if len({t.config.data for t in trials}) > 1:
        raise ValueError("train_population: all trials must share one DataConfig")
    clock = _Clock(should_stop)
    results: dict[int, TrialOutcome] = {}
    with torch.no_grad(), _one_thread(device), _gc_paused():
        for group in group_trials(trials, device):
            pop = _Population(group, splits.n_features, device)
            step, rest_step = _steppers(pop, splits, device, compile)
            outcomes = _train_group(pop, splits, step, rest_step, on_epoch, clock)
            results.update(zip(group.indices, outcomes, strict=True))
    return [results[i] for i in range(len(trials))]
