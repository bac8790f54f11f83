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

from engine.data import Splits
from engine.population import OnEpoch, Stopped, group_trials, train_population
from engine.reference import EpochMetrics, Trial, TrialOutcome

_POLL_S = 0.05  # how often the parent checks should_stop and worker liveness


class WorkerCrashed(RuntimeError):
    """A worker process died or raised; the message carries its exit code or traceback."""


@dataclass(frozen=True)
class _Task:
    task_id: int
    trials: list[Trial]
    splits: Splits
    device: str
    compile: bool | None


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
                                        compile=task.compile)
            results.put(("done", tid, _pack(outcomes)))
        except Stopped:
            results.put(("stopped", tid, None))
        except BaseException:
            results.put(("error", tid, traceback.format_exc()))


def _pack(outcomes: list[TrialOutcome]) -> bytes:
    """Outcomes as pickled bytes with numpy weights (pickling 1000s of tiny tensors is slow)."""
    plain = [(o.status, [astuple(m) for m in o.history], o.diverged_epoch,
              [(w.numpy(), b.numpy()) for w, b in o.weights]) for o in outcomes]
    return pickle.dumps(plain, pickle.HIGHEST_PROTOCOL)


def _unpack(payload: bytes) -> list[TrialOutcome]:
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
        ctx: Any = mp.get_context(method)
        self._results: Any = ctx.Queue()
        self._stop: Any = ctx.Event()
        self._tasks: list[Any] = []
        self._procs: list[BaseProcess] = []
        self._next_id = 0
        self._broken: str | None = None
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
    ) -> list[TrialOutcome]:
        """train_population across the workers; outcomes in the order of `trials`.

        Every group is dealt out evenly over the workers, so each trains a share of each group.
        device defaults to the pool's. on_epoch is called in this process, once per epoch of each
        group of each worker, with indices into `trials`. should_stop is polled every ~0.05 s; on
        True the workers stop within ~0.2 s and `Stopped` is raised.
        """
        device = self.device if device is None else torch.device(device)
        if self._broken:
            raise WorkerCrashed(f"the worker pool is broken: {self._broken}")
        if not self._procs:
            raise RuntimeError("WorkerPool.train: the pool is closed")
        self._stop.clear()
        pending: dict[int, list[int]] = {}  # task id -> indices into trials
        for w, share in enumerate(self._shares(trials)):
            if not share:
                continue
            tid = self._next_id
            self._next_id += 1
            pending[tid] = share
            task = _Task(tid, [trials[i] for i in share], splits, str(device), compile)
            self._tasks[w].put(pickle.dumps(task, pickle.HIGHEST_PROTOCOL))
        return self._collect(len(trials), pending, on_epoch, should_stop)

    def _shares(self, trials: Sequence[Trial]) -> list[list[int]]:
        """Indices of trials per worker: each group dealt out round-robin."""
        shares: list[list[int]] = [[] for _ in range(self.workers)]
        start = 0
        for group in group_trials(trials, self.device):
            for k, i in enumerate(group.indices):
                shares[(start + k) % self.workers].append(i)
            start += len(group.indices)
        return shares

    def _collect(self, n: int, pending: dict[int, list[int]], on_epoch: OnEpoch | None,
                 should_stop: Callable[[], bool] | None) -> list[TrialOutcome]:
        results: list[TrialOutcome | None] = [None] * n
        stopping = False
        while pending:
            if not stopping and should_stop is not None and should_stop():
                stopping = True
                self._stop.set()
            try:
                kind, tid, payload = self._results.get(timeout=_POLL_S)
            except queue.Empty:
                self._check_alive()
                continue
            share = pending.get(tid)
            if share is None:  # a message of an earlier, abandoned call
                continue
            if kind == "epoch":
                if on_epoch is not None and not stopping:
                    on_epoch([(share[i], m, status) for i, m, status in payload])
            elif kind == "done":
                for i, outcome in zip(share, _unpack(payload), strict=True):
                    results[i] = outcome
                del pending[tid]
            elif kind == "stopped":
                del pending[tid]
            else:  # "error"
                self._fail(f"a worker raised:\n{payload}")
        if stopping:
            raise Stopped()
        return [r for r in results if r is not None]

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
