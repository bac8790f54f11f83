"""How true the ETA shown before a launch is, on the shipped presets, once one study has run.

    python benchmarks/bench_eta.py [--presets notebook,tuned,...] [--quick]

For each preset, in a fresh store: one `hp-tui run PRESET` (the calibration run), then the ETA
the form and the CLI would show now (`tui.services.cost` with the store's calibration; for
seeds = "auto" the likely time, else the estimate), then a second run, timed as a whole process
(start-up included, as the user waits for it). Prints the ETA, the measured time and their
ratio per preset; the goal is within 30% (ratio 0.7-1.3). Both runs start a runner from
scratch, like `hp-tui run`; the app's warm runner would only make the start-up shorter.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SHIPPED = ["tuned", "lr_x_architecture", "random_search", "exercise3_loss",
           "exercise2_architecture", "exercise1_optimizer", "notebook", "exercise4_schedule",
           "halving_search", "tpe_search", "race"]
QUICK = ["tiny", "tuned"]


def timed_run(preset: str, store: Path) -> float:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tui.cli", "--store", str(store), "run", preset,
                    "--json"], env=env, check=True, capture_output=True, text=True)
    return time.perf_counter() - start


def shown_eta(preset_name: str, store_path: Path) -> float:
    from engine.presets import load_preset, resolve_preset_arg
    from engine.store import Store
    from tui import services

    preset = load_preset(resolve_preset_arg(preset_name))
    with Store(store_path) as store:
        cost = services.cost(preset, services.calibration(store, on_ray=False,
                                                          preset=preset.name))
    return cost.seconds_likely if cost.seconds_likely is not None else cost.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", default=None, help="comma-separated preset names")
    parser.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    args = parser.parse_args()
    names = args.presets.split(",") if args.presets else (QUICK if args.quick else SHIPPED)
    print(f"{'preset':24} {'first s':>8} {'ETA s':>7} {'second s':>9} {'ETA/real':>9}")
    worst = 0.0
    for name in names:
        with tempfile.TemporaryDirectory() as tmp:
            store = Path(tmp) / "store.db"
            first = timed_run(name, store)
            predicted = shown_eta(name, store)
            second = timed_run(name, store)
        ratio = predicted / second
        worst = max(worst, abs(ratio - 1))
        print(f"{name:24} {first:8.1f} {predicted:7.1f} {second:9.1f} {ratio:8.2f}x",
              flush=True)
    print(f"largest error: {worst:.0%} (goal: within 30%)")


if __name__ == "__main__":
    main()
