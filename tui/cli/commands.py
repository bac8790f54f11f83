"""The headless commands (`hp-tui run`, `show`, ...): the same actions as the app, for scripts.

Data goes to stdout (tables, or JSON with --json), messages and progress to stderr. Engine errors
are turned into `UserError`s with the right exit code here, in one place.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.datasets import DataError
from engine.presets import PresetError
from engine.spec import ExitCode, TrialConfig, TrialStatus
from engine.store import BadName, LeaseBusy, Store, StoreError, StudyRow, default_store_path
from engine.study import SamplerMissing, report, rounds, samplers
from tui import render
from tui import services as actions
from tui.cli.errors import UserError
from tui.files import NotRegularFile, write_atomically
from tui.format import MESSAGE_WHITESPACE, control_character, printable

POLL_SECONDS = 0.25


def dispatch(args: argparse.Namespace,
             handler: Callable[[argparse.Namespace], int] | None = None) -> int:
    """Run the command (or `handler`, for one that lives in its own module), its engine
    errors turned into `UserError`s."""
    handler = handler or COMMANDS[args.command]
    try:
        return handler(args)
    except PresetError as e:
        raise UserError(str(e), ExitCode.INVALID_INPUT) from None
    except LeaseBusy as e:
        raise UserError(str(e), ExitCode.BUSY) from None
    except (BadName, DataError, SamplerMissing) as e:
        raise UserError(str(e), ExitCode.INVALID_INPUT) from None
    except StoreError as e:
        raise UserError(str(e), ExitCode.STORE) from None


@contextmanager
def open_store(arg: str | None, *, readonly: bool = False) -> Iterator[Store]:
    path = Path(arg) if arg else default_store_path()
    if readonly and not path.exists():
        raise UserError(f"no store at {path} yet: run a study first (hp-tui run PRESET)",
                        ExitCode.STORE)
    with Store(path, readonly=readonly) as store:
        if store.nfs_warning:
            print(f"hp-tui: warning: {store.nfs_warning}", file=sys.stderr)
        yield store


# --- run / resume ----------------------------------------------------------------------------

def cmd_run(args: argparse.Namespace) -> int:
    from engine.presets import load_preset, resolve_preset_arg, with_overrides
    from engine.study import eta, halving, strategies

    _check_name(args.name)
    check_workers(args.workers)
    _check_placement(args.executor, args.ray_address, args.device)
    path = resolve_preset_arg(args.preset)
    preset = with_overrides(load_preset(path), strategy=args.strategy, seeds=args.seeds,
                            samples=args.samples, batch=getattr(args, "batch", None))
    samplers.require(preset.study.strategy)  # before the plan, the ETA and the store
    plan = strategies.plan(preset.config, preset.study)
    with open_store(args.store) as store:
        known = actions.calibration(store, on_ray=args.executor == "ray", preset=preset.name)
        runs, same = known.runs, known.same_study(preset)
        configs_spent, _ = halving.planned([t.config for t in plan.trials], preset.study)
        estimate = eta.estimate(configs_spent, runs, workers=_workers(args))
        if same is not None and not preset.study.adaptive:
            estimate = eta.Estimate(same[1], "as the same study here before")
        line = _size_line(preset, plan, estimate, runs, _workers(args))
        if same is not None and preset.study.adaptive:
            line += f"; {actions.likely_text(*same)}"
        say(f"{preset.name}: {plan.strategy} study, {line}")
        _check_memory(args, [t.config for t in plan.trials], executor=args.executor,
                      device=args.device,
                      base_dir=preset.base_dir)
        study_id = actions.create_study(store, preset, name=args.name, device=args.device,
                                        plan=plan, executor=args.executor,
                                        ray_address=args.ray_address,
                                        warn=lambda m: say(f"hp-tui: warning: {m}"),
                                        shuffle=actions.shuffle_named(args.shuffle))
        return _launch_and_follow(store, study_id, args)


def _size_line(preset: Any, plan: Any, estimate: Any, runs: list[tuple[float, float]],
               workers: int) -> str:
    """"12 trials (6 configurations x 2 seeds), ETA 30 s"; for seeds = "auto" the range from
    the first round alone to every configuration at max_seeds, and the ETA of both ends."""
    from engine.study import eta, halving, strategies

    study = preset.study
    if study.batched:
        total = strategies.count(preset.config, study)
        every = eta.estimate_batches([t.config for t in plan.trials], study.batches, runs,
                                     workers=workers)
        return (f"{total} trials ({study.samples} configurations x {study.seeds} seeds) in "
                f"{study.batches} sequential batches of {min(study.batch, study.samples)}, "
                f"each asked of the sampler after the last one trained, ETA {every.human()}")
    if not study.adaptive:
        _, halved = halving.planned([t.config for t in plan.trials], study)
        spent = f"; {halved.text()}" if halved else ""
        return (f"{plan.n_trials} trials ({plan.n_configs} configurations x {study.seeds} "
                f"seeds), ETA {estimate.human()}{spent}")
    _, most = strategies.count_range(preset.config, study)
    configs = [t.config for t in plan.trials if t.replicate == 0]
    per_config = most // max(1, plan.n_configs)
    longest = eta.estimate([c for c in configs for _ in range(per_config)], runs,
                           workers=workers)
    return (f"{plan.n_trials} to {most} trials ({plan.n_configs} configurations x "
            f"{study.seeds} to {per_config} seeds, auto), ETA {estimate.human()} to "
            f"{longest.human()}")


def cmd_resume(args: argparse.Namespace) -> int:
    check_workers(args.workers)
    with open_store(args.store) as store:
        study = store.study(args.study)
        lease = store.lease(study.id)
        if lease and lease.get("alive"):
            raise UserError(
                f"study {study.id} is being run by pid {lease['pid']} on {lease['host']}; "
                "follow it with `hp-tui show` or stop that runner first", ExitCode.BUSY)
        trials = store.trials(study.id)
        todo = [t for t in trials if not TrialStatus(t.status).is_kept_on_resume()]
        next_round = rounds.study_next_round(study, trials) if not todo else None
        left = samplers.remaining(study, trials) if not todo else 0
        if not todo and next_round is None and not left:
            say(f"study {study.id}: every trial is finished; nothing to resume")
            return _print_result(store, study.id, args.json)
        if next_round is not None:  # killed between two rounds of an adaptive study
            say(f"study {study.id}: every trial is finished; resuming with {next_round.reason}")
            return _launch_and_follow(store, study.id, args)
        if left:  # killed between two batches of a tpe study
            samplers.require(study.strategy)
            say(f"study {study.id}: every trial is finished; resuming with the next batch "
                 f"({left} configurations of the budget left)")
            return _launch_and_follow(store, study.id, args)
        _check_placement(args.executor or study.executor,
                         args.ray_address or (study.ray_address if not args.executor else None),
                         args.device)
        _check_memory(args, [TrialConfig.from_dict(t.config) for t in todo],
                      executor=args.executor or study.executor,
                      device=args.device or study.device,
                      base_dir=study.base_dir)
        say(f"study {study.id}: resuming {len(todo)} unfinished trial(s) of {len(trials)}")
        return _launch_and_follow(store, study.id, args)


def _launch_and_follow(store: Store, study_id: int, args: argparse.Namespace) -> int:
    from engine.run import RunnerOptions, log_path, start_runner, stop_runner

    prestarted = getattr(args, "prestarted", None)  # `run` starts its runner first thing
    if prestarted is not None:
        proc = prestarted.launch(store.path, study_id)
    else:
        proc = start_runner(store.path, study_id, RunnerOptions.from_args(args))
    if args.detach:
        if args.json:
            print(json.dumps({"study": study_id, "pid": proc.pid,
                              "log": str(log_path(store.path, study_id))}))
        else:
            print(study_id)
        say(f"study {study_id} runs in the background (pid {proc.pid}); "
             f"follow it with `hp-tui show {study_id}`")
        return ExitCode.OK
    try:
        code = _follow(store, study_id, proc)
    except KeyboardInterrupt:
        say("stopping the runner...")
        stop_runner(proc.pid)
        say(f"study {study_id} stopped; `hp-tui resume {study_id}` finishes it")
        return ExitCode.INTERRUPTED
    study = store.study(study_id)
    if code == ExitCode.BUSY:
        raise UserError(f"study {study_id} is busy: another runner holds it", ExitCode.BUSY)
    if study.status != "completed":
        from engine.run import tail

        detail = study.error or tail(log_path(store.path, study_id), 15)
        say(f"study {study_id} {study.status}: {detail}")
        say(f"log: {log_path(store.path, study_id)}")
        if study.status == "interrupted":
            return ExitCode.INTERRUPTED
        return ExitCode.INVALID_INPUT if code == ExitCode.INVALID_INPUT else ExitCode.FAILED
    _print_result(store, study_id, args.json)
    failed = store.trials(study_id, statuses=["failed"])
    if failed:
        # the study finished, but a script must not mistake it for a clean one
        say(f"study {study_id}: {len(failed)} trial(s) failed, e.g. trial {failed[0].number}: "
             f"{failed[0].error}; log: {log_path(store.path, study_id)}")
        return ExitCode.FAILED
    return ExitCode.OK


def _follow(store: Store, study_id: int, proc: Any) -> int:
    """Wait for the runner, showing progress (in trial-epochs) on stderr when it is a terminal."""
    if not sys.stderr.isatty():
        return int(proc.wait())
    trials = store.trials(study_id)
    total = sum(TrialConfig.from_dict(t.config).epochs for t in trials)
    with render.progress(total, len(trials)) as bar:
        while True:
            try:
                return int(proc.wait(timeout=POLL_SECONDS))
            except subprocess.TimeoutExpired:
                trials = store.trials(study_id)
                bar(sum(_epochs_counted(t) for t in trials), trials)


def _epochs_counted(trial: Any) -> int:
    """A trial's progress in trial-epochs: a pruned trial's remaining epochs are done (saved)."""
    if trial.status == TrialStatus.PRUNED:
        return int(TrialConfig.from_dict(trial.config).epochs)
    return int(trial.epochs_done)


def _print_result(store: Store, study_id: int, as_json: bool) -> int:
    study = store.study(study_id)
    data = report.study_dict(store, study)
    if as_json:
        print(json.dumps(data))
    else:
        render.print_study(data)
    return ExitCode.OK


# --- reading ---------------------------------------------------------------------------------

def cmd_studies(args: argparse.Namespace) -> int:
    path = Path(args.store) if args.store else default_store_path()
    if not path.exists():
        if args.json:
            print("[]")
        else:
            say(f"no studies yet ({path} does not exist); start one with `hp-tui run notebook`")
        return ExitCode.OK
    with open_store(args.store, readonly=True) as store:
        rows = [_study_summary(store, s) for s in store.studies()]
    if args.json:
        print(json.dumps(rows))
    else:
        render.print_studies(rows)
    return ExitCode.OK


def _study_summary(store: Store, s: StudyRow) -> dict[str, Any]:
    status, runner = report.study_status(store, s)
    return {"study": s.id, "name": s.name, "preset": s.preset_name, "strategy": s.strategy,
            "status": status, "runner": runner, "created": s.created, "counts": s.counts,
            "trials": sum(s.counts.values())}


def cmd_show(args: argparse.Namespace) -> int:
    with open_store(args.store, readonly=True) as store:
        return _print_result(store, store.study(args.study).id, args.json)


def cmd_export(args: argparse.Namespace) -> int:
    with open_store(args.store, readonly=True) as store:
        data = report.study_dict(store, store.study(args.study))
        store_path = store.path
    text = render.export_text(data, args.format)
    if not args.output:
        sys.stdout.write(text)
        return ExitCode.OK
    out = Path(args.output)
    _check_not_the_store(out, store_path)
    try:
        write_atomically(out, text)
    except NotRegularFile as e:
        raise UserError(f"{out}: will not write the export there: {e.strerror}",
                        ExitCode.INVALID_INPUT) from None
    except OSError as e:
        raise UserError(f"{out}: cannot write the export ({e.strerror or e})",
                        ExitCode.FAILED) from None
    say(f"wrote {out}")
    return ExitCode.OK


def cmd_vault(args: argparse.Namespace) -> int:
    from engine.run import vault
    from engine.store import VaultUsed

    with open_store(args.store) as store:
        study = store.study(args.study)
        existing = store.vault(study.id)
        earlier: list[dict[str, Any]] = []
        try:
            if existing is None:
                trial = store.trial(study.id, args.trial)
                vault.check_can_open(store, study, trial)  # a refusal needs no confirmation
                earlier = vault.earlier_evaluations(store, study, trial)
                if earlier:
                    say(f"hp-tui: warning: {vault.seen_before_message(earlier)}")
                if not args.yes:
                    _confirm_vault(study.id, trial.number, trial.val_acc, bool(earlier))
            record = vault.open_vault(store, study.id, args.trial)
        except vault.VaultRefused as e:
            raise UserError(str(e), ExitCode.VAULT_REFUSED) from None
        except VaultUsed as e:
            if args.json:
                print(json.dumps(e.record))
            else:
                render.print_vault(e.record, already=True)
            raise UserError(str(e), ExitCode.VAULT_REFUSED) from None
    record["earlier_evaluations"] = earlier
    if args.json:
        print(json.dumps(record))
    else:
        render.print_vault(record, already=False)
    return ExitCode.OK


def _confirm_vault(study_id: int, number: int, val_acc: float | None,
                   seen_before: bool = False) -> None:
    if not sys.stdin.isatty():
        heed = "; read the warning above first" if seen_before else ""
        raise UserError(f"the vault needs confirmation: pass --yes (no terminal to ask on){heed}",
                        ExitCode.VAULT_REFUSED)
    acc = f" (validation accuracy {val_acc:.2%})" if val_acc is not None else ""
    anyway = "This test split was seen before (see above). " if seen_before else ""
    prompt = (f"{anyway}Evaluate trial {number}{acc} of study {study_id} on the test split? "
              "This can be done once per study. [y/N] ")
    try:
        answer = input(prompt)
    except EOFError:
        answer = ""
    if answer.strip().lower() not in ("y", "yes"):
        raise UserError("vault not opened", ExitCode.VAULT_REFUSED)


def cmd_presets(args: argparse.Namespace) -> int:
    from engine.presets import find_presets
    from engine.study import strategies

    rows = []
    for info in find_presets():
        row: dict[str, Any] = {"name": info.name, "path": str(info.path), "source": info.source,
                               "description": info.description}
        if info.preset is not None:
            p = info.preset
            fewest, most = strategies.count_range(p.config, p.study)
            row.update(strategy=p.study.strategy, seeds=p.study.seeds, trials=fewest,
                       adaptive=p.study.adaptive, trials_max=most,
                       batches=p.study.batches if p.study.batched else None)
        else:
            row["error"] = str(info.error)
        rows.append(row)
    if args.json:
        print(json.dumps(rows))
    else:
        render.print_presets(rows)
    return ExitCode.OK


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run, "resume": cmd_resume, "studies": cmd_studies, "show": cmd_show,
    "export": cmd_export, "vault": cmd_vault, "presets": cmd_presets,
}


# --- helpers ---------------------------------------------------------------------------------

def say(message: str) -> None:
    print(printable(message, keep=MESSAGE_WHITESPACE), file=sys.stderr, flush=True)


def _check_not_the_store(out: Path, store: Path) -> None:
    """An export written over the store (or its -wal/-shm) would destroy every study in it."""
    files = {Path(os.path.realpath(f"{store}{suffix}")) for suffix in ("", "-wal", "-shm")}
    if Path(os.path.realpath(out)) in files:
        raise UserError(f"{out}: is the store itself ({store}); will not write an export over "
                        "it. Choose another file.", ExitCode.INVALID_INPUT)


def max_workers() -> int:
    """The most training processes --workers may ask for: one per core of this machine (more
    only slows training down, and a typo must not fork hundreds of processes)."""
    return os.cpu_count() or 1


def check_workers(workers: int | None) -> None:
    if workers is not None and not 1 <= workers <= max_workers():
        raise UserError(f"--workers {workers}: expected 1 to {max_workers()} (one per CPU core "
                        "of this machine at most)", ExitCode.INVALID_INPUT)


def _check_name(name: str | None) -> None:
    """Refuse a --name that would drive the terminal wherever it is printed (ESC, BEL, ...)."""
    bad = control_character(name or "")
    if bad is not None:
        raise UserError(f"--name '{printable(name or '')}': contains the control character "
                        f"{bad}; use printable text", ExitCode.INVALID_INPUT)


def _workers(args: argparse.Namespace) -> int:
    return int(args.workers) if getattr(args, "workers", None) else actions.workers()


def _check_memory(args: argparse.Namespace, configs: list[TrialConfig], *, executor: str,
                  device: str | None, base_dir: Path | None) -> None:
    """Refuse a study whose estimated peak memory exceeds what this machine has, before
    anything is written: the kernel would kill the runner mid-study, or a neighbour."""
    if args.ignore_memory:
        return
    refusal = actions.memory_refusal(configs, workers=_workers(args), device=device,
                                     executor=executor, base_dir=base_dir)
    if refusal is not None:
        raise UserError(f"{refusal}; or pass --ignore-memory to start it anyway",
                        ExitCode.INVALID_INPUT)


def _check_placement(executor: str, ray_address: str | None, device: str | None) -> None:
    """Refuse an executor or device that cannot work before anything is written."""
    from engine.run import ExecutorError, check_executor, check_ray_device

    try:
        check_executor(executor, ray_address)
        if executor == "ray":
            check_ray_device(device)  # the cluster's GPUs are the runner's to check, connected
            return
    except ExecutorError as e:
        raise UserError(str(e), ExitCode.INVALID_INPUT) from None
    check_device(device)


def check_device(device: str | None) -> None:
    """Refuse an absent device before anything is written, without importing torch.

    The runner checks again with torch; this catches the common mistakes early and cheaply.
    """
    if not device or device in ("auto", "cpu"):
        return
    if device == "mps":
        if sys.platform != "darwin":
            raise UserError("--device mps: Apple's MPS is only available on macOS",
                            ExitCode.INVALID_INPUT)
        return
    if device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit()):
        has_gpu = any(Path("/dev").glob("nvidia[0-9]*"))
        if not has_gpu and not os.environ.get("CUDA_VISIBLE_DEVICES"):
            raise UserError(f"--device {device}: no CUDA GPU on this machine; use --device cpu "
                            "or auto", ExitCode.INVALID_INPUT)
        return
    raise UserError(f"--device {device!r}: expected auto, cpu, cuda, cuda:N or mps",
                    ExitCode.INVALID_INPUT)
