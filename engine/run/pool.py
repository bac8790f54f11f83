"""Persistent worker processes that train sub-populations and stream their epochs back.

The runner spreads a population over one process per core (measured here: two processes give
1.7-2.1x, two threads much less) and stays the store's only writer: each worker sends every epoch's
metrics to the parent through a queue, and the parent calls `on_epoch` itself.

Start-up: on CPU the workers are forked from the parent, which has already imported torch, so a
worker costs milliseconds instead of a second of imports. CUDA forbids fork after initialisation,
so GPU workers are spawned. Workers die with the parent (PR_SET_PDEATHSIG on Linux, and a watchdog
thread everywhere), and a worker that dies surfaces in the parent as `WorkerCrashed`, never a hang.

Tensors cross the queues inside plain pickled bytes: multiprocessing's own pickler would move each
small tensor to its own shared-memory segment, which costs more than the training of small trials.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import math
import multiprocessing as mp
import os
import pickle
import queue
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import astuple, dataclass
from multiprocessing.process import BaseProcess
from types import TracebackType
from typing import Any

import torch

from engine.train import (
    EpochMetrics,
    OnDone,
    OnEpoch,
    Splits,
    Stopped,
    Trial,
    TrialOutcome,
    group_trials,
    train_population,
)

_POLL_S = 0.05  # how often the parent checks should_stop and worker liveness
# A population is split over the workers only from this size: below it a step's time is mostly
# fixed dispatch cost, which splitting would pay twice instead of halving (measured here: eager
# ~0.25 ms per step + ~1 us per trial).
SPLIT_MIN_TRIALS = 64
# After a stop, how long workers get to say they stopped; one still busy then (in a compile, a
# huge shuffle: places with no stop check) is killed and replaced, so a stop never waits on it.
STOP_GRACE_S = 0.5


class WorkerCrashed(RuntimeError):
    """A worker process died or raised; the message carries its exit code or traceback."""


@dataclass(frozen=True)
class _Task:
    task_id: int
    trials: list[Trial]
    splits: Splits
    device: str
    compile: bool | None
    pruner: Any = None  # engine.train's Pruner: successive halving's rungs


def default_workers(device: torch.device | str = "cpu") -> int:
    """One worker per core this process may use on CPU; one per GPU otherwise."""
    if torch.device(device).type != "cpu":
        return 1
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


# --- the worker side --------------------------------------------------------------------------


def _die_with_parent(parent_pid: int) -> None:
    """Make sure this worker never outlives the process that started it."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _worker_main(parent_pid: int, tasks: Any, results: Any, stop: Any) -> None:
    """Train each task it is given, streaming epochs; one CPU thread per worker."""
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    torch.set_num_threads(1)
    while True:
        message: bytes | None = tasks.get()
        if message is None:
            return
        task: _Task = pickle.loads(message)
        tid = task.task_id

        def on_epoch(report: list[tuple[int, Any, str]], tid: int = tid) -> None:
            results.put(("epoch", tid, report))

        try:
            outcomes = train_population(task.trials, task.splits, device=task.device,
                                        on_epoch=on_epoch, should_stop=stop.is_set,
                                        compile=task.compile, pruner=task.pruner)
            results.put(("done", tid, pack(outcomes)))
        except Stopped:
            results.put(("stopped", tid, None))
        except BaseException:
            results.put(("error", tid, traceback.format_exc()))


def _cost(trials: Sequence[Trial]) -> float:
    """Relative training time of one population: steps x (dispatch + per-trial arithmetic)."""
    steps = max(t.config.epochs * -(-t.config.data.train_size // t.config.batch_size)
                for t in trials)
    work = sum(t.config.batch_size * sum(t.config.layers()) for t in trials)
    return steps * (250.0 + work / 30.0)


def schedule(trials: Sequence[Trial], device: torch.device | str, workers: int,
             whole: bool = False) -> list[list[int]]:
    """Tasks for `workers` parallel trainers, as lists of indices into `trials`, longest first.

    Each population (the trainer's group_trials) is one task; one large enough that its
    arithmetic outweighs the per-step dispatch is split into `workers` tasks, unless `whole`
    (successive halving ranks a population's configurations: it must train in one piece)."""
    tasks: list[list[int]] = []
    for group in group_trials(trials, device, whole=whole):
        pieces = workers if len(group.indices) >= SPLIT_MIN_TRIALS and not whole else 1
        tasks += [group.indices[k::pieces] for k in range(pieces)]
    return sorted(tasks, key=lambda share: -_cost([trials[i] for i in share]))


def pack(outcomes: list[TrialOutcome]) -> bytes:
    """Outcomes as pickled bytes with numpy weights (pickling 1000s of tiny tensors is slow)."""
    plain = [(o.status, [astuple(m) for m in o.history], o.diverged_epoch,
              [(w.numpy(), b.numpy()) for w, b in o.weights]) for o in outcomes]
    return pickle.dumps(plain, pickle.HIGHEST_PROTOCOL)


def unpack(payload: bytes) -> list[TrialOutcome]:
    return [TrialOutcome(status=status, history=[EpochMetrics(*m) for m in history],
                         weights=[(torch.from_numpy(w), torch.from_numpy(b)) for w, b in weights],
                         diverged_epoch=diverged)
            for status, history, diverged, weights in pickle.loads(payload)]


# --- the parent side --------------------------------------------------------------------------


class WorkerPool:
    """Persistent training processes; use as a context manager.

    with WorkerPool() as pool:
        outcomes = pool.train(trials, splits, on_epoch=write_epoch, should_stop=cancelled)
    """

    def __init__(self, workers: int | None = None, device: torch.device | str = "cpu",
                 start_method: str | None = None) -> None:
        self.device = torch.device(device)
        self.workers = workers if workers is not None else default_workers(self.device)
        if self.workers < 1:
            raise ValueError("WorkerPool: workers must be >= 1")
        # fork is cheap (torch is already imported) but unsafe once CUDA is initialised
        method = start_method or (
            "fork" if self.device.type == "cpu" and "fork" in mp.get_all_start_methods()
            else "spawn")
        self._ctx: Any = mp.get_context(method)
        self._tasks: list[Any] = []
        self._procs: list[BaseProcess] = []
        self._next_id = 0
        self._broken: str | None = None
        self._start()

    def _start(self) -> None:
        ctx = self._ctx
        if ctx.get_start_method() == "fork":
            # Forked children share the parent's memory pages until they write to them, and the
            # garbage collector writes to every object it walks: a child's first collections
            # copied the pages of torch's ~10^5 module objects (~0.2 s of a 0.5 s first task).
            # Frozen objects are never walked.
            gc.freeze()
        self._results: Any = ctx.Queue()
        self._stop: Any = ctx.Event()
        self._abandoned = False
        for i in range(self.workers):
            q = ctx.Queue()
            p = ctx.Process(target=_worker_main, name=f"hp-tui-worker-{i}",
                                  args=(os.getpid(), q, self._results, self._stop), daemon=True)
            p.start()
            self._tasks.append(q)
            self._procs.append(p)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self, timeout: float = 2.0) -> None:
        """Ask the workers to finish, then end any that do not within `timeout` seconds."""
        if not self._procs:
            return
        for q, p in zip(self._tasks, self._procs, strict=True):
            if p.is_alive():
                with contextlib.suppress(Exception):
                    q.put(None)
        deadline = time.monotonic() + timeout
        for p in self._procs:
            p.join(max(0.0, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join(1.0)
        for q in [*self._tasks, self._results]:
            q.close()
            q.cancel_join_thread()  # never block exit on a queue a dead worker left behind
        self._procs, self._tasks = [], []

    def train(
        self,
        trials: Sequence[Trial],
        splits: Splits,
        device: torch.device | str | None = None,
        on_epoch: OnEpoch | None = None,
        should_stop: Callable[[], bool] | None = None,
        *,
        compile: bool | None = None,
        on_done: OnDone | None = None,
        pruner: Any = None,
    ) -> list[TrialOutcome]:
        """train_population across the workers; outcomes in the order of `trials`.

        Each population (the trainer's group_trials) is one task; a population large enough
        that its arithmetic outweighs the per-step dispatch is split over the workers. Tasks go
        out longest first, each to the next free worker, so small populations train side by side
        instead of each being halved (which would not halve their dispatch-bound time).
        on_epoch is called in this process, once per epoch of each task, with indices into
        `trials`; on_done(indices, outcomes) as each task finishes, so callers can keep finished
        trials while others still train. should_stop is polled every ~0.05 s; on True the
        workers stop within ~0.2 s and `Stopped` is raised; if one has not within STOP_GRACE_S,
        the whole pool is killed (queues too) and the next call starts new workers.
        """
        device = self.device if device is None else torch.device(device)
        if self._broken:
            raise WorkerCrashed(f"the worker pool is broken: {self._broken}")
        if self._abandoned:  # the last stop killed its workers: start fresh ones
            self._start()
        if not self._procs:
            raise RuntimeError("WorkerPool.train: the pool is closed")
        self._stop.clear()
        queued, shares = [], {}
        for share in self.schedule(trials, whole=pruner is not None):
            task = _Task(self._new_id(), [trials[i] for i in share], splits, str(device), compile,
                         pruner)
            queued.append(task)
            shares[task.task_id] = share
        return self._collect(len(trials), queued, shares, on_epoch, should_stop, on_done)

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def schedule(self, trials: Sequence[Trial], whole: bool = False) -> list[list[int]]:
        """Tasks as lists of indices into `trials`, longest first."""
        return schedule(trials, self.device, self.workers, whole)

    def _collect(self, n: int, queued: list[_Task], shares: dict[int, list[int]],
                 on_epoch: OnEpoch | None, should_stop: Callable[[], bool] | None,
                 on_done: OnDone | None) -> list[TrialOutcome]:
        results: list[TrialOutcome | None] = [None] * n
        queued = list(queued)
        busy: dict[int, int] = {}  # task id -> worker

        def dispatch() -> None:
            for w in range(self.workers):
                if queued and w not in busy.values():
                    task = queued.pop(0)
                    busy[task.task_id] = w
                    self._tasks[w].put(pickle.dumps(task, pickle.HIGHEST_PROTOCOL))

        dispatch()
        stopping, give_up = False, math.inf
        while busy:
            if not stopping and should_stop is not None and should_stop():
                stopping, give_up = True, time.monotonic() + STOP_GRACE_S
                queued.clear()
                self._stop.set()
            if time.monotonic() > give_up:
                self._abandon()
                break
            try:
                kind, tid, payload = self._results.get(timeout=_POLL_S)
            except queue.Empty:
                self._check_alive()
                continue
            if tid not in busy:  # a message of an earlier, abandoned call
                continue
            share = shares[tid]
            if kind == "epoch":
                if on_epoch is not None and not stopping:
                    on_epoch([(share[i], m, status) for i, m, status in payload])
                continue
            if kind == "error":
                self._fail(f"a worker raised:\n{payload}")
            del busy[tid]
            if kind == "done":
                outcomes = unpack(payload)
                for i, outcome in zip(share, outcomes, strict=True):
                    results[i] = outcome
                if on_done is not None and not stopping:
                    on_done(share, outcomes)
            dispatch()
        if stopping:
            raise Stopped()
        return [r for r in results if r is not None]

    def _abandon(self) -> None:
        """Kill every worker (some are deaf to the stop); the next `train` starts new ones. All
        of them go, queues too: one killed while writing to the shared results queue may have
        left it half-written or locked."""
        self.close(timeout=0.0)
        self._abandoned = True

    def _check_alive(self) -> None:
        for p in self._procs:
            if not p.is_alive():
                self._fail(f"worker {p.name} died (exit code {p.exitcode})")

    def _fail(self, message: str) -> None:
        self._broken = message
        self.close(timeout=0.5)
        raise WorkerCrashed(message)


def train_parallel(
    trials: Sequence[Trial],
    splits: Splits,
    *,
    device: torch.device | str = "cpu",
    workers: int | None = None,
    on_epoch: OnEpoch | None = None,
    should_stop: Callable[[], bool] | None = None,
    compile: bool | None = None,
) -> list[TrialOutcome]:
    """One-shot WorkerPool.train (a runner that trains several batches keeps a pool instead)."""
    with WorkerPool(workers, device) as pool:
        return pool.train(trials, splits, device, on_epoch, should_stop, compile=compile)
