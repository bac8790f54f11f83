"""The epoch loop of the population trainer and its entry point, `train_population`.

Groups the trials (`grouping`), builds each group's `Population` and its steps (`compiled`), and
runs its epochs: shuffles, gathered batches, steps, validation, the per-epoch report and stops.
"""

from __future__ import annotations

import contextlib
import gc
import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

import torch

from engine.train.data import Splits
from engine.train.population.batching import batches, epoch_data, segment_steps
from engine.train.population.compiled import steppers
from engine.train.population.graphs import GraphStep, graphs_wanted
from engine.train.population.grouping import LANES, group_trials
from engine.train.population.program import Tensors
from engine.train.population.state import FlatStep, Population, Stepper
from engine.train.population.validation import validate
from engine.train.reference import EpochMetrics, Trial, TrialOutcome

POLL_S = 0.2  # how often should_stop is asked

# (index into the caller's trials, metrics, status) of every trial that trained an epoch
OnEpoch = Callable[[list[tuple[int, EpochMetrics, str]]], None]
# (indices, outcomes) of trials whose training ended: how the executors report finished tasks
OnDone = Callable[[list[int], list[TrialOutcome]], None]


class Stopped(Exception):
    """Raised by `train_population` when `should_stop()` said so; nothing is returned."""


class Pruner(Protocol):
    """Successive halving's rungs, decided inside the trainer (the runner supplies one).

    After `rungs` epochs, `stop` gets every trial the population started with (running,
    diverged, done or pruned at an earlier rung) with its validation accuracies so far and
    returns the positions of the trials to stop there. Stopped trials end `pruned`, with
    their curve and weights at that epoch, and leave the population's tensors. Picklable:
    it travels to worker processes.
    """

    rungs: tuple[int, ...]

    def stop(self, epochs: int, trials: Sequence[Trial], curves: Sequence[Sequence[float]]
             ) -> set[int]: ...


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


def _train_group(pop: Population, splits: Splits, step: Stepper, rest_step: Stepper,
                 on_epoch: OnEpoch | None, clock: _Clock, pruner: Pruner | None = None,
                 rebuild: Callable[[], tuple[Stepper, Stepper]] | None = None
                 ) -> list[TrialOutcome]:
    """Train one population for its longest trial's epochs, reporting each epoch; at a
    pruner's rungs, trials stop and the population is compacted to those that go on."""
    batch, n_train = pop.configs[0].batch_size, len(splits.train)
    x_t = splits.train.x.t().contiguous().to(pop.device)
    y = splits.train.y.to(pop.device)
    outcomes = [TrialOutcome(status="running") for _ in pop.configs]
    full = n_train // batch
    rest = n_train - full * batch
    weight = torch.tensor(batch / n_train, dtype=torch.float64, device=pop.device)
    seg = segment_steps(pop, batch, full, x_t.shape[0])
    for epoch in range(max(pop.epochs)):
        training = [pop.alive[n] and pop.epochs[n] > epoch for n in range(pop.n)]
        # in place: a captured step reads and writes these very tensors
        pop.active.copy_(pop.vec(training, torch.bool))
        pop.loss_sum.zero_()
        perms = pop.perms(training, n_train, epoch, clock.check)
        eta, bc2s = pop.step_sizes(full + (rest > 0), epoch)
        etas, bc2ss = eta.unbind(0), bc2s.unbind(0)
        for first in range(0, full, seg):
            count = min(seg, full - first)
            xs, ys = epoch_data(pop, x_t, y, perms[:, first * batch : (first + count) * batch])
            xbs, ybs = batches(pop, xs, ys, batch)
            for s in range(count):
                step(xbs[s], ybs[s], etas[first + s], bc2ss[first + s], weight)
                clock.check()
        if rest:  # the partial last batch has another shape: never compiled
            xb, yb = epoch_data(pop, x_t, y, perms[:, full * batch :])
            w_rest = torch.tensor(rest / n_train, dtype=torch.float64, device=pop.device)
            rest_step(xb, yb, etas[-1], bc2ss[-1], w_rest)
        pop.steps_done += full + (rest > 0)
        _finish_epoch(pop, splits, epoch, training, outcomes, on_epoch, clock, pruner)
        if pruner is not None and rebuild is not None and epoch + 1 in pruner.rungs:
            keep = [n for n in range(pop.n) if outcomes[pop.origin[n]].status == "running"]
            if -(-len(keep) // LANES) < pop.np // LANES:  # only when it frees lanes
                if isinstance(step, FlatStep | GraphStep):
                    step.put_back()
                pop.compact(keep)
                step, rest_step = rebuild()
        clock.check(force=True)
    return outcomes


def _finish_epoch(pop: Population, splits: Splits, epoch: int, training: list[bool],
                  outcomes: list[TrialOutcome], on_epoch: OnEpoch | None,
                  clock: _Clock | None = None, pruner: Pruner | None = None) -> None:
    """Record the epoch's metrics and statuses (a rung's decision included), then report them
    in one callback."""
    still = pop.active.reshape(-1).tolist()
    losses = pop.loss_sum.reshape(-1).tolist()
    which = [n for n in range(pop.n) if training[n]]
    check = clock.check if clock is not None else None
    validated = validate(pop, splits.val, which, check)
    for n, (val_loss, val_acc) in zip(which, validated, strict=True):
        out = outcomes[pop.origin[n]]
        diverged = not still[n]
        out.history.append(EpochMetrics(math.nan if diverged else losses[n], val_loss, val_acc))
        if diverged:
            out.status, out.diverged_epoch = "diverged", epoch
            pop.alive[n] = False
        elif epoch + 1 >= pop.epochs[n]:
            out.status = "completed"
    if pruner is not None and epoch + 1 in pruner.rungs:
        # every trial the population started with, those pruned at earlier rungs included:
        # each rung's decision is the chain of all rungs so far
        stop = pruner.stop(epoch + 1, pop.members, [[m.val_acc for m in o.history]
                                                    for o in outcomes])
        for n in range(pop.n):
            out = outcomes[pop.origin[n]]
            if pop.origin[n] in stop and out.status == "running":
                out.status = "pruned"
                pop.alive[n] = False
    report = []
    cpu_params: Tensors = []
    for n in which:
        out = outcomes[pop.origin[n]]
        if out.status != "running":
            cpu_params = cpu_params or [p.cpu() for p in pop.params]
            out.weights = pop.weights_of(n, cpu_params)
        report.append((pop.group.indices[n], out.history[-1], out.status))
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
    pruner: Pruner | None = None,
    graphs: bool | None = None,
) -> list[TrialOutcome]:
    """Train `trials` (all on the same data) as populations; outcomes in the order of `trials`.

    on_epoch gets, once per epoch of each internal group, (index into trials, metrics, status)
    for every trial that trained that epoch; status is "running", "completed" (its last epoch),
    "diverged" or "pruned". should_stop is polled about every POLL_S seconds of work; when it
    returns True, `Stopped` is raised. compile=None decides per group (`should_compile`),
    False forces eager, True compiles wherever a compiler is available. With a pruner, each
    population holds whole brackets (`group_trials(whole=True)`), trials stopped at a rung
    end "pruned", and the population is compacted (the step keeps its compile decision).
    graphs=True trains eagerly through `GraphStep` (CUDA graphs on a GPU); None: as
    `HP_TUI_CUDA_GRAPHS=1` says, on CUDA only.
    """
    device = torch.device(device)
    if len({t.config.data for t in trials}) > 1:
        raise ValueError("train_population: all trials must share one DataConfig")
    clock = _Clock(should_stop)
    graphed = graphs_wanted(graphs, device)
    results: dict[int, TrialOutcome] = {}
    with torch.no_grad(), _one_thread(device), _gc_paused():
        for group in group_trials(trials, device, whole=pruner is not None):
            pop = Population(group, splits.n_features, device)
            step, rest_step = steppers(pop, splits, device, compile, graphed)
            compiled = not isinstance(step, FlatStep | GraphStep)

            def rebuild(pop: Population = pop, compiled: bool = compiled
                        ) -> tuple[Stepper, Stepper]:
                return steppers(pop, splits, device, compiled, graphed)

            outcomes = _train_group(pop, splits, step, rest_step, on_epoch, clock, pruner,
                                    rebuild)
            results.update(zip(group.indices, outcomes, strict=True))
    return [results[i] for i in range(len(trials))]
