"""`hp-tui race PRESET`: several search strategies on one space, at one budget of trial-epochs.

Every (strategy, study seed) is an ordinary study in the store, named
`race:<preset>:<strategy>:<seed>`, trained by the same runner process `hp-tui run` starts
(several at once, one worker each: on a few cores, separate studies side by side train faster
than one study spread over the cores). What is raced and how the curves are read is
`engine.study.race`; this module creates, runs, reads and prints.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from engine.spec import ExitCode
from engine.store import Store
from engine.study import race, race_store
from tui.cli.errors import UserError

POLL_SECONDS = 0.2


def cmd_race(args: argparse.Namespace) -> int:
    from engine.presets import load_preset, resolve_preset_arg
    from tui import services as actions
    from tui.cli import commands

    commands.check_workers(args.workers)
    commands.check_device(args.device)
    if args.seeds < 1:
        raise UserError(f"--seeds {args.seeds}: expected 1 or more study seeds",
                        ExitCode.INVALID_INPUT)
    try:
        names = race.parse_strategies(args.strategies)
        preset = load_preset(resolve_preset_arg(args.preset))
        budget = args.budget if args.budget is not None else race.default_budget(
            preset.config, preset.study)
        race.check(preset.config, preset.study, budget)
    except race.RaceError as e:
        raise UserError(str(e), ExitCode.INVALID_INPUT) from None
    seeds = [preset.study.seed + i for i in range(args.seeds)]
    entrants, skipped = race.entrants(names, preset.config, preset.study, budget, seeds)
    for name in names:
        if name in skipped:
            commands.say(f"race: skipping {race.STRATEGIES[name]}: {skipped[name]}")
        else:
            commands.say(f"race: {race.STRATEGIES[name]}: "
                         f"{race.plan_line(entrants[name][0], budget)}")
    if not entrants:
        raise UserError("no strategy can run on this space (see above)", ExitCode.INVALID_INPUT)
    with commands.open_store(args.store) as store:
        run = race_store.free_run((s.name for s in store.studies()), preset.name, entrants,
                                  seeds)
        ids: dict[str, list[int]] = {}
        for name, studies in entrants.items():
            ids[name] = [actions.create_study(
                store, _as_preset(preset, e), name=race.study_name(preset.name, name, s, run),
                device=args.device, plan=e.plan, shuffle=actions.shuffle_named(args.shuffle))
                for e, s in zip(studies, seeds, strict=True)]
        failed = _train(store, [i for group in ids.values() for i in group], args)
        result = race_store.race_result(store, preset.name, budget, seeds, ids)
    for name, studies in entrants.items():
        result["strategies"][name]["note"] = studies[0].note
    result["skipped"] = skipped
    if args.json:
        print(json.dumps(result))
    else:
        print_race(result)
    if failed:
        commands.say(f"race: {len(failed)} studies did not complete: {failed}; "
                     "`hp-tui resume STUDY` finishes one")
        return ExitCode.FAILED
    return ExitCode.OK


def _as_preset(preset: Any, e: race.Entrant) -> Any:
    import dataclasses

    return dataclasses.replace(preset, study=e.spec)


def _train(store: Store, study_ids: list[int], args: argparse.Namespace) -> list[int]:
    """Run the studies, `--workers` runner processes at a time; the ids that did not complete."""
    from engine.run import RunnerOptions, start_runner, stop_runner
    from tui import services as actions
    from tui.cli import commands

    lanes = args.workers or actions.workers()
    options = RunnerOptions(device=args.device, workers=1)
    waiting, done = list(study_ids), 0
    running: dict[int, Any] = {}
    started = time.monotonic()
    try:
        while waiting or running:
            while waiting and len(running) < lanes:
                sid = waiting.pop(0)
                running[sid] = start_runner(store.path, sid, options)
            time.sleep(POLL_SECONDS)
            for sid, proc in list(running.items()):
                if proc.poll() is not None:
                    del running[sid]
                    done += 1
                    if sys.stderr.isatty() or done == len(study_ids):
                        commands.say(f"race: {done} of {len(study_ids)} studies trained "
                                     f"({time.monotonic() - started:.0f} s)")
    except KeyboardInterrupt:
        for proc in running.values():
            stop_runner(proc.pid)
        for proc in running.values():
            proc.wait()
        commands.say("race stopped; its studies are in the store (`hp-tui studies`)")
        raise
    return [sid for sid in study_ids if store.study(sid).status != "completed"]


# --- printing --------------------------------------------------------------------------------

def print_race(result: dict[str, Any]) -> None:
    """The curves as a plotext plot (mean best so far, one line per strategy) and the table."""
    import shutil

    import plotext as plt

    from tui.render import race_table

    width, _ = shutil.get_terminal_size((100, 30))
    plt.clear_data()
    plt.clear_figure()
    plt.plotsize(min(width, 110), 22)
    plt.theme("clear")
    plt.title(f"race on {result['preset']}: best validation accuracy (%) so far, mean over "
              f"{len(result['seeds'])} study seed(s)")
    plt.xlabel("trial-epochs spent")
    markers = dict(zip(race.STRATEGIES, ("x", "o", "+", "*", "#"), strict=True))
    for name, data in result["strategies"].items():
        xs = [x for x, y in zip(data["budget"], data["best"], strict=True) if y is not None]
        ys = [100 * y for y in data["best"] if y is not None]
        if xs:
            plt.plot(xs, ys, label=data["label"], marker=markers.get(name, "."))
    text = plt.build()
    print(text if sys.stdout.isatty() else plt.uncolorize(text))
    race_table(result)
