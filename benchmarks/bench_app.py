"""What the app costs while it shows a study: its own CPU, as a share of one core.

    python benchmarks/bench_app.py [--store PATH] [--seconds 10] [--follow N]

Without --store, a 192-trial study is trained first into a scratch store. The app then runs
headless (Textual's test driver renders every frame as a terminal would) on the presets screen
and on the study's Run screen, each measured over the same seconds with the process's CPU time;
the ratio of the two says what following a finished study costs beyond the app's own idle.

With --launch, the notebook preset is launched from the form twice, with the form's warm runner
and without it, timing ctrl+l to the first epoch on the Run screen.

With --follow N, the same 192-trial study (100 epochs) is also trained N times headless and N
times while the app follows it on the Run screen, alternating; the runner's own training time
(what it records for the ETA) is compared, best of N each.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PRESET = """\
name = "bench-192"
[data]
train_size = 400
val_size = 200
[train]
epochs = 20
[study]
strategy = "grid"
seeds = 8
[study.vary]
lr = [0.001, 0.003, 0.01, 0.03, 0.05, 0.1, 0.3, 1.0]
activation = ["relu", "tanh", "sigmoid"]
"""


def trained_store(folder: Path) -> Path:
    store, preset = folder / "store.db", folder / "bench-192.toml"
    preset.write_text(PRESET)
    subprocess.run([sys.executable, "-m", "tui.cli", "run", str(preset), "--store", str(store),
                    "--json"], cwd=ROOT, check=True, capture_output=True)
    return store


async def cpu_share(store_path: Path, seconds: float, run_screen: bool) -> float:
    from engine.store import Store
    from tui.app import HpTuiApp
    from tui.screens.run import RunScreen

    with Store(store_path) as store:
        app = HpTuiApp(store=store)
        async with app.run_test(size=(80, 24)) as pilot:
            if run_screen:
                app.push_screen(RunScreen(store.studies()[-1].id))
            await pilot.pause(2.0)  # first reads and draws done
            cpu, wall = time.process_time(), time.monotonic()
            await pilot.pause(seconds)
            return (time.process_time() - cpu) / (time.monotonic() - wall)


def training_seconds(store_path: Path, study_id: int) -> float:
    from engine.store import Store

    with Store(store_path, readonly=True) as store:
        return float(next(r["seconds"] for r in store.runs(limit=50)
                          if r["study_id"] == study_id))


def headless(store: Path, preset: Path) -> float:
    out = subprocess.run([sys.executable, "-m", "tui.cli", "run", str(preset), "--store",
                          str(store), "--json"], cwd=ROOT, check=True, capture_output=True,
                         text=True)
    import json

    return training_seconds(store, int(json.loads(out.stdout)["study"]))


async def followed(store_path: Path, preset: Path) -> float:
    from engine.store import Store
    from tui.app import HpTuiApp
    from tui.screens.run import RunScreen

    out = subprocess.run([sys.executable, "-m", "tui.cli", "run", str(preset), "--store",
                          str(store_path), "--detach"], cwd=ROOT, check=True,
                         capture_output=True, text=True)
    study_id = int(out.stdout.strip())
    with Store(store_path) as store:
        app = HpTuiApp(store=store)
        async with app.run_test(size=(80, 24)) as pilot:
            app.push_screen(RunScreen(study_id))
            while store.study(study_id).status != "completed" or store.lease(study_id):
                await pilot.pause(0.2)
    return training_seconds(store_path, study_id)


def follow_overhead(folder: Path, rounds: int) -> tuple[float, float]:
    preset = folder / "follow.toml"
    preset.write_text(PRESET.replace("epochs = 20", "epochs = 100").replace(
        'name = "bench-192"', 'name = "bench-follow"'))
    store = folder / "follow.db"
    alone, watched = [], []
    for _ in range(rounds):
        alone.append(headless(store, preset))
        watched.append(asyncio.run(followed(store, preset)))
    return min(alone), min(watched)


async def first_epoch(store_path: Path, warm: bool) -> float:
    from engine.presets import load_preset, resolve_preset_arg
    from engine.store import Store
    from tui.app import HpTuiApp
    from tui.screens.form import FormScreen
    from tui.screens.run import RunScreen

    with Store(store_path) as store:
        app = HpTuiApp(store=store)
        if not warm:
            app.warm_runner.warm = lambda: None  # type: ignore[method-assign]
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            app.push_screen(FormScreen(load_preset(resolve_preset_arg("notebook"))))
            await pilot.pause(3.0)  # a person reads the form for longer than the runner warms
            start = time.monotonic()
            await pilot.press("ctrl+l")
            while not (isinstance(app.screen, RunScreen) and app.screen.metrics):
                await pilot.pause(0.02)
            seconds = time.monotonic() - start
            while store.study(store.studies()[-1].id).status != "completed":
                await pilot.pause(0.2)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", type=Path)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--follow", type=int, default=0, metavar="N",
                        help="also train a study N times headless and N times followed")
    parser.add_argument("--launch", action="store_true",
                        help="also time ctrl+l to the first epoch, with and without a warm runner")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = args.store or trained_store(Path(tmp))
        presets = asyncio.run(cpu_share(store, args.seconds, run_screen=False))
        run = asyncio.run(cpu_share(store, args.seconds, run_screen=True))
        follow = follow_overhead(Path(tmp), args.follow) if args.follow else None
        launch = None
        if args.launch:
            launches = Path(tmp) / "launch.db"
            cold = asyncio.run(first_epoch(launches, warm=False))
            launch = (cold, asyncio.run(first_epoch(launches, warm=True)))
    print(f"app idle on the presets screen:           {presets:6.1%} of a core")
    print(f"app on a finished 192-trial Run screen:   {run:6.1%} of a core"
          f"  ({run / max(presets, 1e-9):.1f}x the presets screen)")
    if launch is not None:
        print(f"ctrl+l to the first epoch (notebook): {launch[0]:.2f} s starting a runner, "
              f"{launch[1]:.2f} s with the form's warm runner")
    if follow is not None:
        alone, watched = follow
        print(f"192 trials x 100 epochs, training time headless: {alone:5.2f} s (best of "
              f"{args.follow})")
        print(f"                       followed by the app:      {watched:5.2f} s "
              f"({watched / alone:.2f}x headless)")


if __name__ == "__main__":
    main()
