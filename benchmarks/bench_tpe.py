"""TPE against random search at the same budget, on a space of seven knobs, in one run.

    python benchmarks/bench_tpe.py [--quick] [--seeds N] [--samples K --batch B]
                                   [--train-size N --epochs E]

For each study seed, the shipped `tpe_search` preset (lr, momentum, weight decay, batch size,
optimizer, activation, layers) is trained twice through the runner, in process on one worker:
as a tpe study (batches asked of Optuna's TPE sampler) and as a random study with the same
samples and seed. Both start from the same first batch (tpe's first batch is random's first
draws), so they differ only in what TPE learns from it. Prints each study's best mean
validation accuracy (the best configuration, as `show` reports it), the means over study
seeds, and the ratio against random measured in the same run; the goal: tpe at least as good
as random on average (ratio >= 1). `--quick` shrinks the data, the epochs and the budget so
that a test can run it in seconds; its numbers say nothing about the goal. The other flags
shrink the preset to a budget that fits a small machine (the figures in docs/performance.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def preset(args: argparse.Namespace, strategy: str, seed: int):  # -> Preset
    from engine.presets import load_preset, resolve_preset_arg

    base = load_preset(resolve_preset_arg("tpe_search"))
    study = dataclasses.replace(base.study, strategy=strategy, seed=seed)
    config = base.config
    if args.quick:
        study = dataclasses.replace(study, samples=8, batch=4)
        config = config.replace(train_size=300, val_size=200, epochs=3)
    study = dataclasses.replace(study, samples=args.samples or study.samples,
                                batch=args.batch or study.batch)
    config = config.replace(train_size=args.train_size or config.data.train_size,
                            epochs=args.epochs or config.epochs)
    return dataclasses.replace(base, config=config, study=study)


def best_accuracy(folder: Path, chosen) -> tuple[float, float]:
    """(best configuration's mean validation accuracy, seconds) of one study."""
    from engine.run import RunnerOptions
    from engine.run.local import LocalExecutor
    from engine.run.runner import StopFlag, run_study
    from engine.store import Store
    from engine.study import analysis, report
    from tui import services

    with Store(folder / f"{chosen.study.strategy}-{chosen.study.seed}.db") as store:
        sid = services.create_study(store, chosen, device="cpu")
        start = time.perf_counter()
        code = run_study(store, sid, RunnerOptions(device="cpu"), 1, StopFlag(),
                         executor=LocalExecutor(1))
        seconds = time.perf_counter() - start
        if code != 0:
            raise SystemExit(f"study {chosen.study.strategy} seed {chosen.study.seed} failed")
        best = analysis.best_config(report.trial_results(store.trials(sid)))
    return (best.mean if best else 0.0), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny data and budget: a smoke test, not a measurement")
    parser.add_argument("--seeds", type=int, default=None, metavar="N",
                        help="study seeds to average over (default 5, 2 with --quick)")
    parser.add_argument("--samples", type=int, help="configurations per study")
    parser.add_argument("--batch", type=int, help="configurations per tpe batch")
    parser.add_argument("--train-size", type=int, help="training points")
    parser.add_argument("--epochs", type=int, help="epochs per trial")
    args = parser.parse_args()
    seeds = args.seeds or (2 if args.quick else 5)
    results: dict[str, list[float]] = {"random": [], "tpe": []}
    seconds: dict[str, float] = {"random": 0.0, "tpe": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(seeds):
            line = []
            for strategy in ("random", "tpe"):
                chosen = preset(args, strategy, seed)
                acc, took = best_accuracy(Path(tmp), chosen)
                results[strategy].append(acc)
                seconds[strategy] += took
                line.append(f"{strategy} {100 * acc:5.1f}% ({took:.1f} s)")
            print(f"study seed {seed}: " + ", ".join(line), flush=True)
    study = preset(args, "tpe", 0).study
    print(f"{study.samples} configurations x {study.seeds} seed(s) per study, tpe in "
          f"{study.batches} batches of {study.batch}, {seeds} study seeds")
    means = {k: statistics.fmean(v) for k, v in results.items()}
    for strategy, mean in means.items():
        print(f"{strategy:<6} mean best validation accuracy {100 * mean:5.1f}% "
              f"(total {seconds[strategy]:.1f} s)")
    wins = sum(t >= r for t, r in zip(results["tpe"], results["random"], strict=True))
    print(f"tpe >= random on {wins} of {seeds} study seeds")
    print(f"ratio (tpe / random): {means['tpe'] / means['random']:.3f}x (goal: >= 1)")


if __name__ == "__main__":
    main()
