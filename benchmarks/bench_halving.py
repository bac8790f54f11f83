"""Successive halving against the same random study without it, whole process, in one run.

    python benchmarks/bench_halving.py [--samples 50] [--epochs 27] [--train-size 4000]
    python benchmarks/bench_halving.py --quick        # seconds (a test runs it)

The study: random search over lr (log), optimizer and activation with [64, 64]-class widths
(one bracket), 2 seeds. `hp-tui run STUDY.toml --json` once with `pruner = "none"` and once
with `pruner = "halving"` (reduction 3), startup included, each in its own store. Prints:

- trial-epochs with halving / without (goal <= 40%);
- wall time with halving / without (goal <= 60% when the populations are arithmetic-bound:
  wide layers, many trials; a dispatch-bound population costs per step about the same at 8
  trials as at 32, so there halving saves trial-epochs, not time);
- whether halving's best fully trained configuration is among the full study's three best
  (by mean validation accuracy over seeds at the last epoch).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

STUDY = """\
name = "bench-halving-{pruner}"
[data]
train_size = {train_size}
val_size = {val_size}
[model]
hidden = [64, 64]
[train]
optimizer = "adam"
epochs = {epochs}
batch_size = {batch_size}
[study]
strategy = "random"
samples = {samples}
seeds = 2
seed = 1
pruner = "{pruner}"
min_epochs = {min_epochs}
[study.vary]
lr = {{ min = 0.0003, max = 0.3, log = true }}
optimizer = ["sgd", "adam", "rmsprop"]
activation = ["tanh", "relu"]
hidden = [[64, 64], [48, 48], [40, 40]]
"""


def run(folder: Path, pruner: str, sizes: dict[str, int]) -> tuple[float, dict]:
    folder.mkdir()
    preset = folder / "study.toml"
    preset.write_text(STUDY.format(pruner=pruner, **sizes))
    env = dict(os.environ, HP_TUI_STORE=str(folder / "store.db"), PYTHONPATH=str(ROOT))
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "tui.cli", "run", str(preset), "--json"],
                         env=env, check=True, capture_output=True, text=True, cwd=folder)
    return time.perf_counter() - start, json.loads(out.stdout)


def ranked_configs(data: dict) -> list[tuple[float, str]]:
    """Configurations trained to the end, best first: (mean val acc over seeds, key)."""
    accs: dict[str, list[float]] = {}
    for t in data["trials"]:
        if t["status"] in ("completed", "diverged"):
            accs.setdefault(json.dumps(t["config"], sort_keys=True), []).append(
                t["val_acc"] or 0.0)
    return sorted(((-sum(v) / len(v), k) for k, v in accs.items()), key=lambda p: p)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=27)
    parser.add_argument("--train-size", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--min-epochs", type=int, default=3,
                        help="the first rung's earliest epoch (1 ranks after one epoch)")
    parser.add_argument("--quick", action="store_true", help="a tiny study: a smoke run")
    args = parser.parse_args()
    sizes = dict(samples=args.samples, epochs=args.epochs, train_size=args.train_size,
                 val_size=max(100, args.train_size // 4), batch_size=args.batch_size,
                 min_epochs=args.min_epochs)
    if args.quick:
        sizes.update(samples=9, epochs=9, train_size=200, val_size=100, min_epochs=1)
    with tempfile.TemporaryDirectory() as tmp:
        full_s, full = run(Path(tmp) / "full", "none", sizes)
        halved_s, halved = run(Path(tmp) / "halving", "halving", sizes)
    best_full = [k for _, k in ranked_configs(full)[:3]]
    best_halved = ranked_configs(halved)[0][1]
    epochs_ratio = halved["trial_epochs"] / full["trial_epochs"]
    print(f"study: {sizes['samples']} configurations x 2 seeds, {sizes['epochs']} epochs, "
          f"{sizes['train_size']} training points, batch {sizes['batch_size']}; rungs after "
          f"epochs {halved['rungs']}, {halved['pruned']} trials pruned")
    print(f"trial-epochs: {halved['trial_epochs']} / {full['trial_epochs']} = "
          f"{epochs_ratio:.0%} (goal <= 40%)")
    print(f"wall time: {halved_s:.1f} s / {full_s:.1f} s = {halved_s / full_s:.0%} "
          "(goal <= 60% when arithmetic-bound)")
    order = [k for _, k in ranked_configs(full)]
    place = order.index(best_halved) + 1 if best_halved in order else None
    print(f"halving's best configuration among the full study's three best: "
          f"{best_halved in best_full} (its place in the full study: {place} of {len(order)}; "
          f"mean val acc {-ranked_configs(halved)[0][0]:.1%} against the full study's best "
          f"{-ranked_configs(full)[0][0]:.1%})")


if __name__ == "__main__":
    main()
