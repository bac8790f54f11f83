"""The `hp-tui` entry point: the terminal app with no arguments, headless commands otherwise.

Start-up stays fast because nothing heavy is imported here: torch lives only in the runner process
(and in `vault`, which needs the model), textual only in the app. Every user mistake becomes one
clear line on stderr and a distinct exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from engine.spec import SHUFFLE_NAMES, ExitCode, space
from tui.cli.errors import UserError

COMMANDS_HELP = """\
commands:
  run PRESET        plan a study from a preset, train it, print the impact table
  resume STUDY      finish what a stopped or killed study left undone
  studies           list the studies in the store
  show STUDY        a study's trials and impact table
  export STUDY      write a study as csv, json or markdown
  vault STUDY       evaluate one trial on the locked test split, once per study
  presets           list the shipped presets and yours
  race PRESET       race search strategies on a preset's space at one budget of trial-epochs

Run `hp-tui` alone to open the terminal app. STUDY is a study's number or its --name.
exit codes: 0 ok, 1 runner failure, 2 usage, 3 invalid preset or data (or a study too
            big for this machine's memory), 4 store error, 5 study busy (another runner
            holds it), 6 vault refused, 130 interrupted
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hp-tui",
        description="Hyperparameter studies for small PyTorch models, in the terminal.",
        epilog=COMMANDS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("--store", dest="app_store", metavar="PATH",
                        help="the app's store (default: $HP_TUI_STORE or ./.hp-tui/store.db)")
    parser.add_argument("--executor", dest="app_executor", choices=("local", "ray"),
                        default="local", help="where studies launched from the app train")
    parser.add_argument("--ray-address", dest="app_ray_address", metavar="ADDR",
                        help="with --executor ray: the cluster's head, HOST:PORT")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        return p

    def store_opt(p: argparse.ArgumentParser) -> None:
        p.add_argument("--store", metavar="PATH",
                       help="store file (default: $HP_TUI_STORE or ./.hp-tui/store.db)")

    def executor_opts(p: argparse.ArgumentParser, resuming: bool = False) -> None:
        p.add_argument("--executor", choices=("local", "ray"), default=None,
                       help="the study's executor, to change it" if resuming else
                       "where populations train: this machine (local, the default) or a Ray "
                       "cluster (ray; pip install 'hp-tui[ray]')")
        p.add_argument("--ray-address", metavar="ADDR",
                       help="the Ray cluster's head, HOST:PORT as `ray start --head` prints it "
                            "(default: $RAY_ADDRESS, else a private Ray on this machine)")

    def memory_opt(p: argparse.ArgumentParser) -> None:
        p.add_argument("--ignore-memory", action="store_true",
                       help="start even when the study's estimated peak memory exceeds what "
                            "this machine has available (refused otherwise, exit code 3)")

    def shuffle_opt(p: argparse.ArgumentParser) -> None:
        p.add_argument("--shuffle", choices=list(SHUFFLE_NAMES),
                       help="how trials shuffle their rows each epoch: randperm (on the host) "
                            "or keyed (computed on the device); both give the same numbers on "
                            "every device (default: keyed where a GPU may train the study, "
                            "else randperm; give it to reproduce a study made elsewhere)")

    def json_opt(p: argparse.ArgumentParser) -> None:
        p.add_argument("--json", action="store_true", help="print one JSON object on stdout")

    run = add("run", "plan a study from a preset, train it, and print the results")
    run.add_argument("preset", metavar="PRESET", help="a preset file, or a shipped preset's name")
    run.add_argument("--strategy", choices=space.STRATEGIES)
    run.add_argument("--seeds", type=_seeds, metavar="N",
                     help="seeds per configuration, or auto (add seeds in rounds to the "
                          "configurations still undecided, up to study.max_seeds)")
    run.add_argument("--samples", type=int, metavar="K",
                     help="configurations (random and tpe strategies)")
    run.add_argument("--batch", type=int, metavar="B",
                     help="configurations a tpe study trains at once, between two asks of "
                          "its sampler")
    run.add_argument("--name", help="a name to refer to the study by")
    run.add_argument("--device", default="auto",
                     help="auto, cpu, cuda, cuda:N or mps (default auto: with a GPU, each "
                          "population on the device predicted faster, CPU or GPU)")
    run.add_argument("--workers", type=int, metavar="N",
                     help="training processes, 1 to the number of cores (default: one per "
                          "core, CPU only); with --executor ray and no cluster address, the "
                          "local Ray's CPUs")
    shuffle_opt(run)
    executor_opts(run)
    memory_opt(run)
    run.add_argument("--detach", action="store_true",
                     help="start the study in the background, print its number and return")
    store_opt(run)
    json_opt(run)

    resume = add("resume", "train what a stopped or killed study left unfinished")
    resume.add_argument("study", metavar="STUDY")
    resume.add_argument("--device", help="override the study's device")
    resume.add_argument("--workers", type=int, metavar="N",
                        help="training processes, 1 to the number of cores")
    executor_opts(resume, resuming=True)
    memory_opt(resume)
    resume.add_argument("--detach", action="store_true")
    store_opt(resume)
    json_opt(resume)

    studies = add("studies", "list the studies in the store")
    store_opt(studies)
    json_opt(studies)

    show = add("show", "show a study's trials and impact table")
    show.add_argument("study", metavar="STUDY")
    store_opt(show)
    json_opt(show)

    export = add("export", "write a study's trials and impact table to a file or stdout")
    export.add_argument("study", metavar="STUDY")
    export.add_argument("--format", required=True, choices=("csv", "json", "md"))
    export.add_argument("-o", "--output", metavar="FILE", help="file to write (default: stdout)")
    store_opt(export)

    vault = add("vault", "evaluate one trial on the locked test split (once per study)")
    vault.add_argument("study", metavar="STUDY")
    vault.add_argument("--trial", required=True, type=int, metavar="ID",
                       help="the trial's number within the study")
    vault.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    store_opt(vault)
    json_opt(vault)

    presets = add("presets", "list the shipped presets and your own")
    json_opt(presets)

    race = add("race", "race search strategies on a preset's space at the same budget of "
                       "trial-epochs: best validation accuracy so far against trial-epochs spent")
    race.add_argument("preset", metavar="PRESET", help="a preset file, or a shipped preset's name")
    race.add_argument("--strategies", metavar="A,B",
                      help="comma-separated, of grid, random, sensitivity, halving (random "
                           "search with successive halving), tpe (default: all)")
    race.add_argument("--seeds", type=int, default=3, metavar="N",
                      help="study seeds per strategy: the spread of the curves (default 3)")
    race.add_argument("--budget", type=int, metavar="TRIAL_EPOCHS",
                      help="trial-epochs per study (default: the preset's samples x epochs)")
    race.add_argument("--workers", type=int, metavar="N",
                      help="studies trained at once, one runner process each (default: one "
                           "per core)")
    race.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    shuffle_opt(race)
    store_opt(race)
    json_opt(race)
    return parser


def _apply_global_options(args: argparse.Namespace) -> None:
    """`hp-tui --store X run P` means the same as `hp-tui run P --store X`: without this, the
    command's own defaults would silently win over what was given before it (argparse keeps
    the subcommand's value), and the study would land in another store."""
    if getattr(args, "store", "unset") is None:
        args.store = args.app_store
    if getattr(args, "executor", "unset") is None and args.command == "run":
        args.executor = args.app_executor
    elif getattr(args, "executor", "unset") is None and args.app_executor != "local":
        args.executor = args.app_executor  # resume: only when asked to change it
    if getattr(args, "ray_address", "unset") is None:
        args.ray_address = args.app_ray_address


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hp-tui")
    except PackageNotFoundError:
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _apply_global_options(args)
    if args.command is None:
        return _open_app(args.app_store, args.app_executor, args.app_ray_address)
    if args.command == "run":
        args.prestarted = _prestart_runner(args)
    from tui.cli import commands as headless
    from tui.format import MESSAGE_WHITESPACE, printable

    try:
        handler = None
        if args.command == "race":
            from tui.cli.race import cmd_race

            handler = cmd_race
        code = headless.dispatch(args, handler)
        sys.stdout.flush()  # a full disk or a closed pipe shows here, not at the exit's flush
        return code
    except KeyboardInterrupt:
        print("hp-tui: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except UserError as e:
        print(f"hp-tui: {printable(str(e), keep=MESSAGE_WHITESPACE)}", file=sys.stderr)
        return e.code
    except BrokenPipeError:
        # `hp-tui show 1 | head`: the reader left; that is not an error worth a traceback.
        _discard_stdout()
        sys.stderr.close()
        return ExitCode.OK
    except OSError as e:
        if e.filename is not None:  # a file's error; stdout's own carry no file name
            raise
        # `hp-tui show 1 > /dev/full`: the output was lost, which a script must be told
        _discard_stdout()
        print(f"hp-tui: cannot write the output: {e.strerror or e}", file=sys.stderr)
        return ExitCode.FAILED
    finally:
        if getattr(args, "prestarted", None) is not None:
            args.prestarted.cancel()  # the run failed before launching it (no-op once launched)


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush of what could not be
    written fails no second time (with "Exception ignored" and exit code 120)."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _prestart_runner(args: argparse.Namespace) -> Any:
    """Start the runner now, before this process imports and plans anything: its own imports
    (torch, ~1 s) then overlap ours, and it waits for the study's number (engine.run.launcher)."""
    from pathlib import Path

    from engine.run import Prestarted, RunnerOptions

    return Prestarted(Path(args.store) if args.store else None, RunnerOptions.from_args(args))


def _open_app(store: str | None, executor: str, ray_address: str | None) -> int:
    from pathlib import Path

    from tui.app import run_app
    from tui.services import Placement

    return int(run_app(Path(store) if store else None, Placement(executor, ray_address)))


def _seeds(text: str) -> int | str:
    """--seeds N or --seeds auto (the preset's validation judges N)."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seeds or auto, got {text!r}"
                                         ) from None
