"""The `ray` executor: each population of a study is one task on a Ray cluster.

The runner stays the store's only writer. A task is a streaming generator: it trains its
population in a thread and yields the epochs' metrics as they come (batched when several are
waiting), then the outcomes; the runner turns them into the same on_epoch / on_done calls as the
local executor, so the store, the live plots and resume cannot tell the difference.

Faults: a task whose worker process or node dies (or that Ray's memory monitor kills) is rerun
from scratch with the same seeds on whichever node Ray picks, up to MAX_ATTEMPTS times in all.
The rerun's epochs that the store already has are not passed on again, so each trial keeps one
history; its numbers are those of the first attempt, since a trial depends only on its seed.
Finished populations were already handed to on_done, so nothing finished is lost. A task whose
trainer raises is not rerun here (it would raise again): its trials go back to the runner, which
retries them one by one as it does for the local executor.

The engine package is shipped to the cluster with each connection (Ray's `py_modules`), so every
node trains with the runner's code; the nodes need only Python, torch and Ray.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from engine.run.executors import (
    INSTALL_RAY,
    LOCAL_RAY,
    Executor,
    ExecutorError,
    check_ray_device,
    probe,
)
from engine.run.pool import pack, schedule, unpack
from engine.train import OnDone, OnEpoch, Splits, Stopped, Trial, train_population

log = logging.getLogger("hp-tui.ray")

MAX_ATTEMPTS = 4  # a population lost to a dead worker or node runs at most this many times
_POLL_S = 0.05  # how often the runner checks should_stop while waiting for tasks


class PopulationsFailed(RuntimeError):
    """Some populations could not be trained; the others were handed to on_done."""


# --- the task, run on a cluster node ----------------------------------------------------------


def train_task(trials: list[Trial], splits: Splits, device: str,
               compile: bool | None, pruner: Any = None) -> Iterator[tuple[str, Any]]:
    """Yields ("started", facts), then ("epochs", [report, ...]) as epochs finish, then
    ("done", packed outcomes). The trainer runs in a thread because a generator cannot yield
    from inside the trainer's on_epoch callback."""
    yield "started", {"pid": os.getpid(), "host": socket.gethostname(),
                      "torch": torch.__version__}
    messages: queue.Queue[tuple[str, Any]] = queue.Queue()
    stop = threading.Event()

    def train() -> None:
        try:
            outcomes = train_population(trials, splits, device=device,
                                        on_epoch=lambda report: messages.put(("epoch", report)),
                                        should_stop=stop.is_set, compile=compile,
                                        pruner=pruner)
            messages.put(("done", pack(outcomes)))
        except BaseException as e:  # re-raised below, in the task's own thread
            messages.put(("error", e))

    trainer = threading.Thread(target=train, name="hp-tui-population", daemon=True)
    trainer.start()
    try:
        while True:
            kind, payload = messages.get()
            reports = []
            while kind == "epoch":
                reports.append(payload)
                try:
                    kind, payload = messages.get_nowait()
                except queue.Empty:
                    kind = ""
            if reports:
                yield "epochs", reports
            if kind == "done":
                yield "done", payload
                return
            if kind == "error":
                raise payload
    finally:
        stop.set()  # the consumer went away (cancelled): let the trainer thread end too


# --- the runner's side ------------------------------------------------------------------------


@dataclass
class _Attempt:
    share: list[int]  # indices into the caller's trials
    number: int  # 1 for the first run of this population
    epochs: list[int]  # epochs this attempt has reported, per trial of the share
    where: str = "a node"


class RayExecutor(Executor):
    """Trains populations as Ray tasks; connects on creation, disconnects on close()."""

    def __init__(self, address: str, cpus: int | None = None) -> None:
        self.address = address
        self._ray = _import_ray(address)
        self._connected_here = False
        if not self._ray.is_initialized():
            _connect(self._ray, address, cpus)
            self._connected_here = True
        # Retries are ours (MAX_ATTEMPTS), so that a rerun's epochs can be told from new ones.
        self._task = self._ray.remote(max_retries=0)(train_task)

    def resolve_device(self, name: str | None) -> torch.device:
        """The device each task trains on: the cluster's, not this machine's."""
        check_ray_device(name)
        text = (name or "auto").strip().lower()
        gpus = int(self._ray.cluster_resources().get("GPU", 0))
        if text == "cpu" or (text == "auto" and not gpus):
            return torch.device("cpu")
        if not gpus:
            raise ExecutorError(f"--device {name}: the Ray cluster at {self.address} has no "
                                "GPU; use --device cpu or auto")
        return torch.device("cuda")

    def describe(self) -> str:
        resources = self._ray.cluster_resources()
        nodes = sum(1 for n in self._ray.nodes() if n.get("Alive"))
        name = (
            "a private Ray" if self.address == LOCAL_RAY else f"the Ray cluster {self.address}")
        return (f"{name}: {nodes} node(s), {resources.get('CPU', 0):g} CPUs, "
                f"{resources.get('GPU', 0):g} GPUs")

    def label(self, device: torch.device) -> str:
        """'ray:cpu' or 'ray:cuda': the store's record of where trials trained."""
        return f"ray:{device.type}"

    def _slots(self, device: torch.device) -> int:
        """How many tasks the cluster runs at once, to split a large population into."""
        kind = "GPU" if device.type == "cuda" else "CPU"
        return max(1, int(self._ray.cluster_resources().get(kind, 1)))

    def train(self, trials: Sequence[Trial], splits: Splits, device: torch.device,
              on_epoch: OnEpoch, should_stop: Callable[[], bool], on_done: OnDone, *,
              pruner: Any = None) -> None:
        ray = self._ray
        splits_ref = ray.put(splits)
        gpus = 1 if device.type == "cuda" else 0
        emitted = [0] * len(trials)  # epochs passed on to on_epoch, per trial
        running: dict[Any, _Attempt] = {}
        failed: list[str] = []

        def submit(share: list[int], number: int) -> None:
            task = self._task.options(num_cpus=1, num_gpus=gpus, name="hp-tui-population")
            gen = task.remote([trials[i] for i in share], splits_ref, device.type, None, pruner)
            running[gen] = _Attempt(share, number, [0] * len(share))

        for share in schedule(trials, device, self._slots(device), whole=pruner is not None):
            submit(share, 1)
        try:
            while running:
                if should_stop():
                    raise Stopped()
                ready, _ = ray.wait(list(running), num_returns=1, timeout=_POLL_S)
                for gen in ready:
                    attempt = running[gen]
                    try:
                        kind, payload = ray.get(next(gen))
                    except StopIteration:  # ended without its outcomes: treat as lost
                        kind, payload = "lost", "the task ended early"
                    except _retryable(ray) as e:
                        kind, payload = "lost", f"{type(e).__name__}: {_first_line(e)}"
                    except ray.exceptions.RayError as e:
                        kind, payload = "raised", str(e)
                    if kind == "started":
                        attempt.where = _where(payload)
                    elif kind == "epochs":
                        for report in payload:
                            _forward(report, attempt, emitted, on_epoch)
                    elif kind == "done":
                        del running[gen]
                        on_done(attempt.share, unpack(payload))
                    elif kind == "lost":
                        del running[gen]
                        self._rerun(attempt, payload, submit, failed)
                    else:  # "raised": the trainer's own error; the runner retries one by one
                        del running[gen]
                        log.error("a population of %d trials failed on %s:\n%s",
                                  len(attempt.share), attempt.where, payload)
                        failed.append(f"a population of {len(attempt.share)} trials raised")
        finally:
            for gen in running:  # stopped, or on_epoch/on_done raised: end the tasks now
                ray.cancel(gen, force=True)
        if failed:
            raise PopulationsFailed("; ".join(failed))

    def _rerun(self, attempt: _Attempt, reason: str, submit: Callable[[list[int], int], None],
               failed: list[str]) -> None:
        size = len(attempt.share)
        if attempt.number >= MAX_ATTEMPTS:
            log.error("a population of %d trials was lost %d times, last on %s (%s); giving up",
                      size, attempt.number, attempt.where, reason)
            failed.append(f"a population of {size} trials was lost {attempt.number} times "
                          f"({reason})")
            return
        log.warning("a population of %d trials was lost on %s (%s); rerunning it, attempt %d "
                    "of %d", size, attempt.where, reason, attempt.number + 1, MAX_ATTEMPTS)
        submit(attempt.share, attempt.number + 1)

    def close(self) -> None:
        if self._connected_here and self._ray.is_initialized():
            self._ray.shutdown()


def _forward(report: list[tuple[int, Any, str]], attempt: _Attempt, emitted: list[int],
             on_epoch: OnEpoch) -> None:
    """Pass on the epochs of this report that no earlier attempt already reported."""
    fresh = []
    for i, metrics, status in report:
        epoch = attempt.epochs[i]
        attempt.epochs[i] += 1
        index = attempt.share[i]
        if epoch >= emitted[index]:
            emitted[index] += 1
            fresh.append((index, metrics, status))
    if fresh:
        on_epoch(fresh)


def _retryable(ray: Any) -> tuple[type[BaseException], ...]:
    """Ray's errors for a task that was lost rather than one that raised."""
    ex = ray.exceptions
    return (ex.WorkerCrashedError, ex.NodeDiedError, ex.LocalRayletDiedError, ex.ObjectLostError,
            ex.OutOfMemoryError, ex.RaySystemError)


def _where(started: dict[str, Any]) -> str:
    return f"{started.get('host', '?')} (pid {started.get('pid', '?')})"


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [""])[0]


def _import_ray(address: str) -> Any:
    if address != LOCAL_RAY:  # a private Ray makes and uses its own token
        _use_token_if_any()  # before the import: Ray reads its auth mode when it loads
    try:
        import ray
    except ImportError:
        raise ExecutorError(f"--executor ray: {INSTALL_RAY}") from None
    return ray


def _connect(ray: Any, address: str, cpus: int | None) -> None:
    """ray.init, keeping this process's signal handlers (ray.init replaces SIGTERM's with one
    that exits at once, which would skip marking the study interrupted)."""
    probe(address)
    engine_dir = str(Path(__file__).resolve().parent)
    options: dict[str, Any] = {
        "namespace": "hp-tui", "logging_level": logging.WARNING,
        "runtime_env": {"py_modules": [engine_dir], "excludes": ["__pycache__"]},
    }
    if address == LOCAL_RAY:
        options.update(num_cpus=cpus, include_dashboard=False)
    in_main = threading.current_thread() is threading.main_thread()
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        ray.init(address=address, **options)
    except (ConnectionError, RuntimeError) as e:
        hint = ""
        if "auth" in str(e).lower() or "auth" in str(e.__cause__).lower():
            hint = (" The cluster wants a token: set RAY_AUTH_MODE=token and make the head "
                    "node's token available here (~/.ray/auth_token or RAY_AUTH_TOKEN).")
        raise ExecutorError(f"cannot connect to the Ray cluster at {address}: "
                            f"{_first_line(e)}.{hint}") from None
    finally:
        if in_main:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)


def _use_token_if_any() -> None:
    """Send the cluster token when there is one. `ray start --head` turns token authentication
    on and writes the token to ~/.ray/auth_token, but a driver sends it only with
    RAY_AUTH_MODE=token; without it, connecting retries for half a minute and then fails. A
    token sent to a cluster without authentication is ignored."""
    if os.environ.get("RAY_AUTH_MODE"):
        return  # the user's explicit choice
    token_file = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    if os.environ.get("RAY_AUTH_TOKEN") or token_file.is_file():
        os.environ["RAY_AUTH_MODE"] = "token"
