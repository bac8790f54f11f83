"""The runner: the one process that trains a study and writes it to the store.

    python -m engine.run.runner --store PATH --study N [--device D] [--workers N]

It is started detached (own session, stdin /dev/null, output to a log file beside the store; see
the launcher), so it outlives the terminal that started it. It holds the study's lease for as
long as it runs, so a second runner on the same study is refused; a runner that died leaves a stale
lease that the next one takes over.

Crash safety comes from the order of writes: every epoch of every trial is committed as it happens,
but a trial only becomes completed/diverged together with its final weights, in one transaction.
A runner killed at any point therefore leaves each trial either finished (weights and all) or
unfinished, and `resume` retrains exactly the unfinished ones from scratch with their seeds, which
gives the numbers an uninterrupted run would have given.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.run.executors import Executor
from engine.run.launcher import RunnerOptions
from engine.run.local import LocalExecutor
from engine.run.pruning import study_pruner, trained_epochs
from engine.spec import DataConfig, ExitCode, StudySpec, TrialConfig
from engine.store import (
    STALE_AFTER,
    EpochRow,
    FinishRow,
    LeaseBusy,
    LeaseLost,
    Store,
    StoreError,
    StudyRow,
    TrialRow,
    default_store_path,
    encode_weights,
)
from engine.study import eta, rounds, samplers, trial_steps

log = logging.getLogger("hp-tui.runner")

HEARTBEAT_SECONDS = STALE_AFTER / 6  # five missed heartbeats before a takeover
TICK_SECONDS = 0.5  # how often the heartbeat thread wakes (and so measures pauses)
PAUSE_SECONDS = 1.0  # a wake-up this much later than due means the process was paused


@dataclass
class StopFlag:
    """Set by SIGTERM/SIGINT or by losing the lease; polled by the trainer.

    A stop is only ever noticed at explicit checks, never raised into whatever runs when the
    signal comes (a store transaction, a queue's lock): the trainer checks between steps, while
    drawing an epoch's shuffles and between validation chunks (every ~0.2 s of work), the
    runner after loading each data group, and the worker pool kills and replaces workers that
    do not answer a stop within `engine.run.pool.STOP_GRACE_S` (one inside an Inductor
    compile), so a runner stops within about a second.
    """

    reason: str | None = None
    _event: threading.Event = field(default_factory=threading.Event)

    def set(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def on_signal(self, signum: int, _frame: Any = None) -> None:
        """The SIGTERM/SIGINT handler: only records the request (see the class docstring)."""
        self.set(f"stopped by {signal.Signals(signum).name}")


@dataclass
class Pauses:
    """Time the process spent paused (SIGSTOP, a suspended laptop, a frozen VM), as seen by the
    heartbeat thread waking late; kept out of the run time that calibrates later ETAs."""

    seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, seconds: float) -> None:
        with self._lock:
            self.seconds += seconds


def make_executor(study: Any, options: RunnerOptions, workers: int) -> Executor:
    """The study's executor (raises ExecutorError for a Ray that is missing or unreachable)."""
    kind = options.executor or study.executor
    if kind == "ray":
        from engine.run.executors import ray_address
        from engine.run.ray_cluster import RayExecutor

        return RayExecutor(ray_address(options.ray_address or study.ray_address),
                           cpus=options.workers)
    return LocalExecutor(workers)


def run_study(store: Store, study_id: int, options: RunnerOptions, workers: int,
              stop: StopFlag, executor: Executor | None = None,
              pauses: Pauses | None = None) -> int:
    """Train every unfinished trial of the study, then, for an adaptive study, round after round
    of more seeds for the configurations still undecided (`engine.study.rounds`). Returns the
    process exit code. Every write raises LeaseLost once another runner has taken the study
    over (`Store.hold`)."""
    from engine.run.executors import ExecutorError
    from engine.train import DeviceError

    study = store.study(study_id)
    try:
        executor = executor or make_executor(study, options, workers)
        device = executor.resolve_device(options.device or study.device)
    except (DeviceError, ExecutorError) as e:
        if executor is not None:
            executor.close()
        store.set_study_status(study_id, "failed", error=str(e))
        log.error("%s", e)
        return ExitCode.INVALID_INPUT
    todo = store.reset_unfinished(study_id)
    store.set_study_status(study_id, "running")
    log.info("study %d: %d trials to train on %s, %s", study_id, len(todo), device,
             executor.describe())
    spec = StudySpec.from_dict(study.spec)
    adaptive, batched = spec.adaptive, spec.batched
    if (adaptive or batched) and not store.rounds(study_id):
        _record_first_round(store, study)
    where = executor.label(device)
    pauses = pauses or Pauses()
    started, paused_before = time.monotonic(), pauses.seconds
    trained: list[TrialConfig] = []
    try:
        while True:
            trained += _train_trials(store, executor, study, todo, device, stop)
            if stop.is_set() or not (adaptive or batched):
                break
            todo = _add_next_round(store, study) if adaptive else _add_next_batch(store, study)
            if not todo:
                break
    except samplers.SamplerMissing as e:
        store.set_study_status(study_id, "failed", error=str(e))
        log.error("%s", e)
        return ExitCode.INVALID_INPUT
    finally:
        executor.close()
    if stop.is_set():
        running = store.trials(study_id, statuses=["running", "pending"])
        store.mark_trials([r.id for r in running if r.status == "running"], "interrupted")
        store.set_study_status(study_id, "interrupted", error=stop.reason)
        log.info("study %d stopped: %s", study_id, stop.reason)
        return ExitCode.INTERRUPTED
    seconds = max(0.0, time.monotonic() - started - (pauses.seconds - paused_before))
    trained = trained_epochs(store, study, trained)
    if trained:
        store.record_run(study_id, trials=len(trained),
                         trial_steps=sum(trial_steps(c) for c in trained), seconds=seconds,
                         device=where, model_seconds=eta.model_seconds(trained, workers))
    failed = store.trials(study_id, statuses=["failed"])
    store.set_study_status(study_id, "completed",
                           error=f"{len(failed)} trial(s) failed" if failed else None)
    log.info("study %d completed in %.1f s", study_id, seconds)
    return ExitCode.OK


def _train_trials(store: Store, executor: Executor, study: StudyRow, todo: list[TrialRow],
                  device: Any, stop: StopFlag) -> list[TrialConfig]:
    """Train these trials, data group by data group, until done or stopped; returns the
    configs trained. Each group's trials train where the executor places them (`auto` with a
    GPU: per population, logged with the predictions), each trial recording its device."""
    import torch

    from engine.train import DataError, Stopped, Trial, load_splits

    trained: list[TrialConfig] = []
    shuffle = StudySpec.from_dict(study.spec).shuffle  # as the study began, on any device
    pruner = study_pruner(store, study)  # successive halving's rungs, or None
    for data_cfg, rows in _by_data(todo):
        if stop.is_set():
            break
        try:
            splits = load_splits(data_cfg, study.base_dir)
        except DataError as e:
            store.mark_trials([r.id for r in rows], "failed", error=str(e))
            log.error("%s", e)
            continue
        if stop.is_set():  # the largest synthetic sets take a second or so to generate
            break
        store.save_points(study.id, rows[0].config["data"], splits.val.x.numpy(),
                          splits.val.y.numpy())
        trials = [Trial(TrialConfig.from_dict(r.config), r.seed, shuffle) for r in rows]
        try:
            for target, share, notes in executor.place(trials, splits, device,
                                                       whole=pruner is not None):
                for note in notes:
                    log.info("study %d: %s", study.id, note)
                label = executor.label(target)
                part = [rows[i] for i in share]
                store.start_trials([r.id for r in part], device=label,
                                   torch_version=torch.__version__)
                _train_group(store, executor, part, [trials[i] for i in share], splits, target,
                             label, stop, pruner)
                trained += [trials[i].config for i in share]
        except Stopped:
            break
    return trained


def _record_first_round(store: Store, study: StudyRow) -> None:
    """Round 1 of an adaptive study, or batch 1 of a batched one: the trials it was created
    with."""
    configs, have = rounds.configurations(store.trials(study.id))
    spec = StudySpec.from_dict(study.spec)
    if spec.batched:
        start = samplers.first_batch(spec, len(configs))
        store.add_round(study.id, number=1, seeds=max(have, default=0),
                        configs=list(range(len(configs))), reason=start.reason)
        log.info("study %d: %s", study.id, start.reason)
        return
    first = rounds.first_round(len(configs), max(have, default=0))
    store.add_round(study.id, number=1, seeds=first.seeds, configs=first.configs,
                    reason=first.reason)
    log.info("study %d: %s", study.id, first.reason)


def _add_next_round(store: Store, study: StudyRow) -> list[TrialRow]:
    """Record the next round of an adaptive study and return its trials ([]: the study is
    done). Decided on the trials trained so far, which a resumed study has too, so a study
    killed at any point reaches the same rounds."""
    trials = store.trials(study.id)
    following = rounds.study_next_round(study, trials)
    if following is None:
        log.info("study %d: no more rounds (every row decided, or the seeds at their cap)",
                 study.id)
        return []
    configs, _ = rounds.configurations(trials)
    added = store.add_round(study.id, number=following.number, seeds=following.seeds,
                            configs=following.configs, reason=following.reason,
                            trials=following.trials(configs, study.seed))
    log.info("study %d: %s; %d trials", study.id, following.reason, len(added))
    return added


def _add_next_batch(store: Store, study: StudyRow) -> list[TrialRow]:
    """Ask the study's sampler for its next batch, record it as the next round and return its
    trials ([]: the budget is spent, or the space has nothing new). Asked from the trials
    trained so far (engine.study.samplers rebuilds the sampler's study from them), which a
    resumed study has too, so a study killed at any point reaches the same batches."""
    trials = store.trials(study.id)
    number = len(store.rounds(study.id)) + 1
    following = samplers.next_batch(study, trials, number)
    if following is None:
        log.info("study %d: no more batches (the budget is spent, or nothing new is left)",
                 study.id)
        return []
    seeds = StudySpec.from_dict(study.spec).seeds
    added = store.add_round(study.id, number=number, seeds=seeds, configs=following.indices,
                            reason=following.reason,
                            trials=following.trials(seeds, study.seed))
    log.info("study %d: %s; %d trials", study.id, following.reason, len(added))
    return added


def _train_group(store: Store, executor: Executor, rows: list[Any], trials: list[Any],
                 splits: Any, device: Any, where: str, stop: StopFlag, pruner: Any = None
                 ) -> None:
    """Train one data group. If training raises, retrain its unfinished trials one by one so that
    only the trials that really fail are marked failed (a trial that raises never sinks others;
    alone, a trial has no bracket to be ranked in: it trains to the end)."""
    import torch

    from engine.train import Stopped

    writer = _Writer(store, rows)
    try:
        executor.train(trials, splits, device, writer.epoch, stop.is_set, writer.done,
                       pruner=pruner)
        return
    except (Stopped, LeaseLost):
        raise
    except Exception:
        log.error("a population of %d trials failed; retrying its trials one by one\n%s",
                  len(rows), traceback.format_exc())
    for i in [i for i in range(len(rows)) if i not in writer.finished]:
        single = _Writer(store, [rows[i]])
        try:
            store.start_trials([rows[i].id], device=where, torch_version=torch.__version__)
            executor.train([trials[i]], splits, device, single.epoch, stop.is_set, single.done)
        except (Stopped, LeaseLost):
            raise
        except Exception as e:
            store.mark_trials([rows[i].id], "failed", error=f"{type(e).__name__}: {e}")
            log.error("trial %d failed\n%s", rows[i].number, traceback.format_exc())


class _Writer:
    """The trainer's callbacks: one store transaction per epoch of a population, and one per
    finished population. Trials stay `running` until `done` makes them completed or diverged
    together with their final weights; a trial pruned at a rung is marked so at once (its
    curve up to the rung is stored), and gets its weights at `done`."""

    def __init__(self, store: Store, rows: list[Any]) -> None:
        self.store, self.rows = store, rows
        self.epochs: dict[int, int] = defaultdict(int)
        self.finished: set[int] = set()

    def epoch(self, results: list[tuple[int, Any, str]]) -> None:
        batch, pruned = [], []
        for index, metrics, status in results:
            batch.append(EpochRow(self.rows[index].id, self.epochs[index], metrics.train_loss,
                                  metrics.val_loss, metrics.val_acc))
            self.epochs[index] += 1
            if status == "pruned":  # finished now, so a resume never retrains it
                pruned.append(FinishRow(self.rows[index].id, "pruned", None, None,
                                        metrics.train_loss, metrics.val_loss, metrics.val_acc,
                                        self.epochs[index]))
        self.store.record_epoch(batch)
        if pruned:  # its weights come with the population's end (`done`)
            self.store.finish_trials(pruned)

    def done(self, indices: list[int], outcomes: list[Any]) -> None:
        rows = []
        for index, outcome in zip(indices, outcomes, strict=True):
            last = outcome.history[-1] if outcome.history else None
            rows.append(FinishRow(
                trial_id=self.rows[index].id, status=outcome.status,
                weights=encode_weights([(w.numpy(), b.numpy()) for w, b in outcome.weights]),
                diverged_epoch=outcome.diverged_epoch,
                train_loss=last.train_loss if last else None,
                val_loss=last.val_loss if last else None,
                val_acc=last.val_acc if last else None,
                epochs_done=len(outcome.history),
            ))
        self.store.finish_trials(rows)
        self.finished.update(indices)


def _by_data(rows) -> list[tuple[DataConfig, list]]:
    groups: dict[str, list] = {}
    for row in rows:
        key = json.dumps(row.config.get("data", {}), sort_keys=True)
        groups.setdefault(key, []).append(row)
    return [(DataConfig(**json.loads(k)), v) for k, v in groups.items()]


def _heartbeat(path: Path, study_id: int, token: str, stop: StopFlag, done: threading.Event,
               pauses: Pauses) -> None:
    """Keep the lease fresh from a thread with its own connection; stop if the lease is lost.
    It wakes every TICK_SECONDS: a wake-up much later than due is a pause of the whole process
    (SIGSTOP, a suspended laptop), counted in `pauses`."""
    try:
        with Store(path, create=False) as store:
            beat_due = time.monotonic() + HEARTBEAT_SECONDS
            while True:
                before = time.monotonic()
                if done.wait(TICK_SECONDS):
                    return
                late = time.monotonic() - before - TICK_SECONDS
                if late > PAUSE_SECONDS:
                    pauses.add(late)
                    log.warning("this runner was paused for %.0f s", late)
                if time.monotonic() < beat_due:
                    continue
                try:
                    store.heartbeat(study_id, token)
                except StoreError as e:
                    stop.set(f"lost the study's lease: {e}")
                    return
                beat_due = time.monotonic() + HEARTBEAT_SECONDS
    except StoreError as e:
        stop.set(f"heartbeat failed: {e}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.run.runner", description=__doc__)
    parser.add_argument("--store", type=Path, default=None,
                        help="the store file (default: as hp-tui's, $HP_TUI_STORE or "
                             "./.hp-tui/store.db)")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--study", type=int)
    which.add_argument("--study-from-stdin", action="store_true",
                       help="import first, then read the study's number from stdin "
                            "(engine.run.launcher.Prestarted)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--executor", choices=("local", "ray"), default=None,
                        help="override the study's executor")
    parser.add_argument("--ray-address", default=None)
    args = parser.parse_args(argv)
    args.store = default_store_path(args.store)
    if args.study_from_stdin:
        _prepare()
        args.study = _await_study(args.store)
        if args.study is None:
            return ExitCode.OK  # the CLI gave up before creating a study: nothing to do
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = StopFlag()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop.on_signal)
    # A runner has no terminal: a hang-up is not a reason to stop.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    from engine.run.pool import default_workers

    workers = args.workers or default_workers()
    try:
        with Store(args.store, create=False) as store:
            try:
                token = store.acquire_lease(args.study, pid=os.getpid(), host=socket.gethostname())
            except LeaseBusy as e:
                log.error("%s", e)
                return ExitCode.BUSY
            store.hold(args.study, token)
            done, pauses = threading.Event(), Pauses()
            beat = threading.Thread(target=_heartbeat, daemon=True,
                                    args=(args.store, args.study, token, stop, done, pauses))
            beat.start()
            try:
                options = RunnerOptions(args.device, args.workers, args.executor,
                                          args.ray_address)
                return run_study(store, args.study, options, workers, stop, pauses=pauses)
            except LeaseLost as e:
                log.error("%s", e)
                return ExitCode.BUSY
            except Exception as e:
                log.error("runner failed\n%s", traceback.format_exc())
                with contextlib.suppress(LeaseLost):
                    store.set_study_status(args.study, "failed",
                                           error=f"{type(e).__name__}: {e}")
                return ExitCode.FAILED
            finally:
                done.set()
                store.release_lease(args.study, token)
                beat.join(timeout=2.0)  # its connection closes before exit_now skips teardown
    except StoreError as e:
        log.error("%s", e)
        return ExitCode.STORE


def _prepare() -> None:
    """Import what training needs (torch and the trainer: ~1 s) while the CLI is still planning
    the study, instead of after."""


def _await_study(store: Path) -> int | None:
    """The study's number from the pipe the launcher holds (None: it closed the pipe without
    one). From here on the runner is as `start_runner` starts it: stdin /dev/null, its output
    appended to the study's log file."""
    from engine.run.launcher import log_path

    line = sys.stdin.readline()
    _redirect(0, os.devnull, os.O_RDONLY)
    if not line.strip():
        return None
    study_id = int(line)
    log = log_path(store, study_id)
    log.parent.mkdir(parents=True, exist_ok=True)
    _redirect(1, log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.dup2(1, 2)
    return study_id


def _redirect(fd: int, path: str | Path, flags: int) -> None:
    opened = os.open(path, flags, 0o644)
    os.dup2(opened, fd)
    os.close(opened)


def exit_now(code: int) -> None:
    """End the process without the interpreter's teardown.

    With torch loaded, the normal exit (module teardown, garbage collection of torch's objects)
    costs 0.3-0.7 s here, which `hp-tui run` waits for on every study. Everything the runner
    owes the world is already durable at this point (each transaction committed, the store
    closed, the workers joined), so only the log needs flushing.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
