"""The local executor: populations train in this process or on this machine's worker pool."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from engine.run.executors import Executor

if TYPE_CHECKING:
    from engine.train import OnDone, OnEpoch

log = logging.getLogger("hp-tui.runner")


class LocalExecutor(Executor):
    """Trains in this process, or across persistent worker processes (one per core)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: Any = None  # an engine.run.pool.WorkerPool, started on first use

    def resolve_device(self, name: str | None) -> Any:
        """A torch device, or for `auto` on a machine with a GPU an `engine.train.AutoDevice`
        (calibrated here, in the runner, once per machine: see engine.train.calibrate). The
        worker pool is forked before CUDA starts in this process."""
        from engine.train import auto_device, resolve_device

        if (name or "auto").strip().lower() != "auto":
            return resolve_device(name or "auto")
        return auto_device(log=log, before_cuda=self._start_pool if self.workers > 1 else None)

    def place(self, trials: Sequence[Any], splits: Any, device: Any, *, whole: bool = False
              ) -> list[tuple[Any, list[int], list[str]]]:
        from engine.train import AutoDevice

        if not isinstance(device, AutoDevice):
            return super().place(trials, splits, device, whole=whole)
        from engine.run.pool import SPLIT_MIN_TRIALS

        def ways(n: int) -> int:  # as engine.run.pool.schedule splits a CPU population
            return self.workers if self.workers > 1 and n >= SPLIT_MIN_TRIALS and not whole else 1

        placements = device.place(trials, len(splits.train), splits.n_features, ways, whole)
        return [(p.device, p.indices, [f"a population of {n} trials on {c.human()}"
                                       for n, c in p.choices]) for p in placements]

    def describe(self) -> str:
        return f"this machine, {self.workers} worker(s)"

    def label(self, device: Any) -> str:
        """Where a trial trained, as the store records it ('cpu', 'cuda:0')."""
        return str(device)

    def train(self, trials: Sequence[Any], splits: Any, device: Any, on_epoch: OnEpoch,
              should_stop: Callable[[], bool], on_done: OnDone, *, pruner: Any = None
              ) -> None:
        from engine.train import group_trials, train_population

        if self.workers <= 1 or len(trials) < 2 or device.type != "cpu":
            for group in group_trials(trials, device, whole=pruner is not None):
                outcomes = train_population(group.trials, splits, device=device,
                                            on_epoch=_reindexed(on_epoch, group.indices),
                                            should_stop=should_stop, pruner=pruner)
                on_done(group.indices, outcomes)
            return
        self._start_pool()
        self._pool.train(trials, splits, device, on_epoch, should_stop, on_done=on_done,
                         pruner=pruner)

    def _start_pool(self) -> None:
        if self._pool is None:
            from engine.run.pool import WorkerPool

            self._pool = WorkerPool(self.workers)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


def _reindexed(on_epoch: OnEpoch, indices: list[int]) -> OnEpoch:
    """on_epoch for a sub-population: its indices mapped back to the caller's list."""
    return lambda results: on_epoch([(indices[i], m, status) for i, m, status in results])
