"""One epoch's shuffles of a population, each recipe, on each device, in one run.

    python benchmarks/bench_shuffles.py [--sizes 512,8192,100000] [--rows 4000] [--device cuda]

For each N: recipe 1 (randperm per trial from its generator, on the host, on up to 16 threads
for a GPU population, then copied to the device) and recipe 2 (the keyed bijection, computed on
the device), best of 3 after a warm-up, as `Population.perms` draws them for the notebook's
network (4,000 training rows). Prints milliseconds per epoch, the ratio recipe 2 / recipe 1,
and checks that recipe 2 on the device equals recipe 2 on the CPU, row for row.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.spec import DataConfig, TrialConfig
from engine.train import Trial, group_trials
from engine.train.population.state import Population


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_ms(pop: Population, rows: int, device: torch.device, repeats: int = 3) -> float:
    training = [True] * pop.n
    pop.perms(training, rows, 0)  # warm-up
    times = []
    for epoch in range(1, repeats + 1):
        _sync(device)
        start = time.perf_counter()
        pop.perms(training, rows, epoch)
        _sync(device)
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="512,8192")
    p.add_argument("--rows", type=int, default=4000, help="training rows (the notebook: 4000)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    config = TrialConfig(data=DataConfig(train_size=args.rows, val_size=10))
    print(f"torch {torch.__version__}, device {device}, {args.rows} rows, "
          f"{torch.get_num_threads()} threads")
    print(f"{'N':>7} {'recipe 1 ms':>12} {'recipe 2 ms':>12} {'2 / 1':>6}  recipe 2 as on the CPU")
    failed = 0
    for n in (int(s) for s in args.sizes.split(",")):
        times, keyed = {}, None
        for recipe in (1, 2):
            trials = [Trial(config, seed, recipe) for seed in range(n)]
            group = max(group_trials(trials, device), key=lambda g: len(g.indices))
            pop = Population(group, 2, device)
            times[recipe] = best_ms(pop, args.rows, device)
            if recipe == 2:
                keyed = pop.perms([True] * pop.n, args.rows, 7)[: pop.n].cpu()
                cpu_pop = Population(group, 2, torch.device("cpu"))
                same = torch.equal(keyed, cpu_pop.perms([True] * pop.n, args.rows, 7)[: pop.n])
                failed += not same
            del pop
        print(f"{n:>7} {times[1]:>12.1f} {times[2]:>12.1f} {times[2] / times[1]:>6.2f}  "
              f"{'identical' if same else 'DIFFERENT'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
