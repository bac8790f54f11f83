"""The adaptive notebook study, whole process, against the notebook's own loop, in one run.

    python benchmarks/bench_decisions.py [--reference-sample K]

1. `hp-tui run notebook --json` (the shipped preset: seeds = "auto", rounds of seeds until every
   row is decided or 64 seeds), startup included; prints each row's decision, interval and the
   seeds it took.
2. The notebook's per-trial loop (`engine.train.reference`) on the same study at 2 seeds (the
   workshop's own budget), timed on a sample of K trials and scaled (all of them without -K).

Prints the ratio; the goal: the adaptive study, which decides its rows, takes less time than
the reference loop needs for the 2-seed study, which decides none.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def adaptive_study(folder: Path) -> tuple[float, dict]:
    env = dict(os.environ, HP_TUI_STORE=str(folder / "store.db"), PYTHONPATH=str(ROOT))
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "tui.cli", "run", "notebook", "--json"],
                         env=env, check=True, capture_output=True, text=True, cwd=folder)
    return time.perf_counter() - start, json.loads(out.stdout)


def reference_seconds(sample: int | None) -> tuple[float, int]:
    from engine.presets import load_preset, resolve_preset_arg
    from engine.study import strategies
    from engine.train import Trial, load_splits, train_reference

    preset = load_preset(resolve_preset_arg("notebook"))
    spec = dataclasses.replace(preset.study, seeds=2)
    if hasattr(spec, "adaptive"):
        spec = dataclasses.replace(spec, adaptive=False)
    trials = strategies.plan(preset.config, spec).trials
    timed = trials if sample is None else trials[:: max(1, len(trials) // sample)][:sample]
    splits = load_splits(preset.config.data)
    start = time.perf_counter()
    for t in timed:
        train_reference(Trial(t.config, t.seed), splits)
    return (time.perf_counter() - start) * len(trials) / len(timed), len(trials)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference-sample", type=int, default=None, metavar="K",
                        help="time K reference trials and scale (default: all of them)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        adaptive, data = adaptive_study(Path(tmp))
    trials = len(data["trials"])
    print(f"hp-tui run notebook (seeds auto): {trials} trials in {adaptive:.1f} s")
    for row in data["impact"]:
        interval = row.get("interval") or [None, None]
        shown = ("-" if interval[0] is None
                 else f"[{100 * interval[0]:.1f}, {100 * interval[1]:.1f}]")
        print(f"  {row['param']:<12} {row['decision']:<10} effect {100 * row['effect']:5.1f} "
              f"{shown:>14}  best {row['best']!s:<8} claimed {row['best_claimed']!s:<5} "
              f"seeds {row.get('decided_at') or '-'}")
    reference, n = reference_seconds(args.reference_sample)
    print(f"reference loop, the same study at 2 seeds: {n} trials in {reference:.1f} s")
    print(f"ratio (reference / adaptive): {reference / adaptive:.2f}x (goal: > 1)")


if __name__ == "__main__":
    main()
