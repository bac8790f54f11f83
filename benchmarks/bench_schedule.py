"""What a learning-rate schedule costs the population trainer: cosine against constant.

    .venv/bin/python benchmarks/bench_schedule.py             # N = 512, the notebook (a minute)
    .venv/bin/python benchmarks/bench_schedule.py --epochs 2  # a shorter run

The notebook's configuration (spirals 4000/1000, batch 10, [2, 10, 1] relu, sgd lr 0.01, mse),
N trials in one population, eager, on one CPU thread as the trainer runs; the rows alternate
(constant, cosine, constant, ...) and each keeps its fastest repeat, so that other load on the
machine hits both alike. A schedule only changes the per-epoch vector of learning rates the step
reads (computed once per epoch), so the ratio should stay within a few percent of 1.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.spec import DataConfig, TrialConfig
from engine.train import Trial, load_splits, train_population


def seconds(cfg: TrialConfig, n: int, compile: bool) -> float:
    splits = load_splits(cfg.data)
    trials = [Trial(cfg, seed) for seed in range(n)]
    start = time.perf_counter()
    train_population(trials, splits, compile=compile)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=512)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--train-size", type=int, default=4000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--schedule", default="cosine", choices=("step", "cosine"))
    p.add_argument("--warmup", type=int, default=0, help="warm-up epochs of the scheduled row")
    p.add_argument("--compile", action="store_true", help="compiled steps (default: eager)")
    args = p.parse_args(argv)
    data = DataConfig(train_size=args.train_size, val_size=1000)
    base = TrialConfig(data=data, epochs=args.epochs)
    scheduled = base.replace(schedule=args.schedule, warmup_epochs=args.warmup)
    label = args.schedule + (f" + warm-up {args.warmup}" if args.warmup else "")
    best = {"constant": float("inf"), label: float("inf")}
    for _ in range(args.repeats):
        for name, cfg in (("constant", base), (label, scheduled)):
            best[name] = min(best[name], seconds(cfg, args.n, args.compile))
    for name, s in best.items():
        print(f"{name:>20}: {s:7.2f} s  {args.n * args.epochs / s:8.0f} trial-epochs/s")
    ratio = best[label] / best["constant"]
    print(f"{label} / constant time: {ratio:.3f} (N = {args.n}, {args.epochs} epochs, "
          f"train_size {args.train_size}, {'compiled' if args.compile else 'eager'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
