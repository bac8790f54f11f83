"""What the `ray` executor costs against the local one, on this machine, in one run.

    .venv/bin/python benchmarks/bench_ray.py              # three studies, ~1-2 min here
    .venv/bin/python benchmarks/bench_ray.py --quick      # a smoke run (< 30 s)
    .venv/bin/python benchmarks/bench_ray.py --repeats 5  # more timed calls per row

The same studies train on (a) `LocalExecutor(2)` (two forked workers) and (b)
`RayExecutor("local", cpus=2)` (a private Ray instance with 2 CPUs; each population is one Ray
task), through the executors' own `train`, as the runner calls it:

- `notebook`: presets/notebook.toml's one-at-a-time study (30 trials, 6 populations, up to 30
  epochs of the notebook's 4,000 points);
- `random`: presets/random_search.toml (40 trials in ~19 small populations: random batch sizes);
- `many-small`: 80 trials of 200 points and 2 epochs in 40 populations (8 batch sizes x 5
  architectures), where training takes milliseconds and the per-task cost is nearly all there is.

--quick runs `many-small` and the notebook study on 400 points, once each.

Columns: `local s` / `ray s` are the best of --repeats timed calls after a warm-up call (the
median is printed beside it); `first s` is that warm-up call: Ray's first one includes starting
the workers, shipping the engine package (`py_modules`) and importing torch in them, the local
one forking the pool. `overhead` = (ray - local) / populations, in ms: what each Ray task costs
on top of a local worker's task. `same` says whether both executors gave bit-identical outcomes
(status, every epoch's metrics, final weights) and each trial's epochs were each reported once.
Ray's connect time (ray.init) and shutdown are printed on their own lines. No timing is asserted.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import struct
import sys
import time
from collections.abc import Sequence
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from engine.run.pool import schedule  # noqa: E402
from engine.spec import DataConfig, TrialConfig  # noqa: E402
from engine.train import Splits, Trial, TrialOutcome, load_splits  # noqa: E402

CPUS = 2  # LocalExecutor(2) against RayExecutor("local", cpus=2)
CPU = torch.device("cpu")


@dataclass
class Study:
    name: str
    trials: list[Trial]
    splits: Splits
    tasks: int  # populations after splitting for CPUS slots: the Ray tasks of one call


@dataclass
class Call:
    seconds: float
    outcomes: dict[int, TrialOutcome]
    epochs: dict[int, int]  # epochs reported through on_epoch, per trial


@dataclass
class Row:
    study: Study
    first: dict[str, float]  # executor -> the warm-up call's seconds
    times: dict[str, list[float]]  # executor -> the timed calls' seconds
    same: bool


def preset_trials(name: str) -> list[Trial]:
    from engine.presets import load_preset
    from engine.study import strategies

    preset = load_preset(ROOT / "presets" / f"{name}.toml")
    return [Trial(t.config, t.seed) for t in strategies.plan(preset.config, preset.study).trials]


def many_small() -> list[Trial]:
    """40 populations of 2 trials: every (batch size, depth, width) is a population of its own."""
    data = DataConfig(train_size=200, val_size=100)
    return [Trial(TrialConfig(data=data, hidden=hidden, batch_size=batch, lr=0.05, epochs=2), seed)
            for batch in (10, 16, 20, 25, 32, 40, 50, 100)
            for hidden in ((4,), (4, 4), (16, 16), (4, 4, 4), (16, 16, 16))
            for seed in range(2)]


def studies(quick: bool) -> list[Study]:
    if quick:
        small = DataConfig(train_size=400, val_size=200)
        built = {"many-small": many_small(),
                 "notebook@400": [Trial(t.config.replace(train_size=small.train_size,
                                                         val_size=small.val_size), t.seed)
                                  for t in preset_trials("notebook")]}
    else:
        built = {"notebook": preset_trials("notebook"), "random": preset_trials("random_search"),
                 "many-small": many_small()}
    out = []
    for name, trials in built.items():
        data = {t.config.data for t in trials}
        assert len(data) == 1, f"{name}: one data set per study (the runner splits by data)"
        out.append(Study(name, trials, load_splits(data.pop()), len(schedule(trials, CPU, CPUS))))
    return out


def train(executor: Any, study: Study) -> Call:
    outcomes: dict[int, TrialOutcome] = {}
    epochs = dict.fromkeys(range(len(study.trials)), 0)

    def on_epoch(report: list[tuple[int, Any, str]]) -> None:
        for index, _, _ in report:
            epochs[index] += 1

    def on_done(indices: list[int], done: list[TrialOutcome]) -> None:
        outcomes.update(zip(indices, done, strict=True))

    start = time.perf_counter()
    executor.train(study.trials, study.splits, CPU, on_epoch, lambda: False, on_done)
    return Call(time.perf_counter() - start, outcomes, epochs)


def _bits(values: Sequence[float]) -> bytes:
    return struct.pack(f"{len(values)}d", *values)  # NaN == NaN here, -0.0 != 0.0


def differences(study: Study, a: Call, b: Call) -> list[str]:
    """Why two calls' results differ (empty: bit-identical, every epoch reported once)."""
    problems = []
    for i in range(len(study.trials)):
        x, y = a.outcomes.get(i), b.outcomes.get(i)
        if x is None or y is None:
            problems.append(f"trial {i}: no outcome")
            continue
        if (x.status, x.diverged_epoch) != (y.status, y.diverged_epoch):
            problems.append(f"trial {i}: {x.status}/{x.diverged_epoch} vs "
                            f"{y.status}/{y.diverged_epoch}")
        if _bits([v for m in x.history for v in astuple(m)]) != \
                _bits([v for m in y.history for v in astuple(m)]):
            problems.append(f"trial {i}: histories differ")
        if len(x.weights) != len(y.weights) or any(
                wx.numpy().tobytes() != wy.numpy().tobytes()
                or bx.numpy().tobytes() != by.numpy().tobytes()
                for (wx, bx), (wy, by) in zip(x.weights, y.weights, strict=False)):
            problems.append(f"trial {i}: weights differ")
        for call in (a, b):
            if call.epochs[i] != len(call.outcomes[i].history):
                problems.append(f"trial {i}: {call.epochs[i]} epochs reported, "
                                f"{len(call.outcomes[i].history)} in its history")
    return problems


def _version(package: str) -> str:
    """Without importing it: Ray reads its auth mode when imported, and RayExecutor sets that."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller studies, for a smoke test")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed calls per executor and study, after the warm-up "
                             "(default 5, --quick 1)")
    args = parser.parse_args()
    repeats = args.repeats or (1 if args.quick else 5)
    logging.basicConfig(level=logging.WARNING)

    from engine.run.local import LocalExecutor
    from engine.run.ray_cluster import RayExecutor

    todo = studies(args.quick)
    print(f"{CPUS} CPUs: LocalExecutor({CPUS}) vs RayExecutor('local', cpus={CPUS}) "
          f"(ray {_version('ray')}, torch {torch.__version__}); best of {repeats} after a "
          "warm-up call")
    local = LocalExecutor(CPUS)
    remote = None
    rows: list[Row] = []
    connect = 0.0
    all_same = True
    try:
        # The local pool forks its workers on its first call: before ray.init starts threads.
        firsts = {todo[0].name: train(local, todo[0])}
        start = time.perf_counter()
        remote = RayExecutor("local", cpus=CPUS)
        connect = time.perf_counter() - start
        print(f"ray.init (private instance, {CPUS} CPUs): {connect:.2f} s")
        for study in todo:
            local_first = firsts.get(study.name) or train(local, study)
            ray_first = train(remote, study)
            problems = differences(study, local_first, ray_first)
            times: dict[str, list[float]] = {"local": [], "ray": []}
            for _ in range(repeats):  # alternated, so that a busy moment hits both
                for name, executor in (("local", local), ("ray", remote)):
                    call = train(executor, study)
                    times[name].append(call.seconds)
                    problems += [f"{name} repeat: {p}" for p in
                                 differences(study, local_first, call)]
            all_same &= not problems
            rows.append(Row(study, {"local": local_first.seconds, "ray": ray_first.seconds},
                            times, not problems))
            for p in problems[:5]:
                print(f"  {study.name}: {p}")
    finally:
        local.close()
        if remote is not None:
            start = time.perf_counter()
            remote.close()
            print(f"ray.shutdown: {time.perf_counter() - start:.2f} s")

    print()
    print(f"{'study':<13} {'trials':>6} {'pops':>4} {'local s':>14} {'ray s':>14} {'ray/loc':>7} "
          f"{'overhead':>11} {'first: local':>12} {'ray':>6} {'same':>4}")
    for row in rows:
        best_l, best_r = min(row.times["local"]), min(row.times["ray"])
        med_l, med_r = statistics.median(row.times["local"]), statistics.median(row.times["ray"])
        per_pop = (best_r - best_l) / row.study.tasks * 1000
        print(f"{row.study.name:<13} {len(row.study.trials):>6} {row.study.tasks:>4} "
              f"{best_l:>6.3f} ({med_l:.3f}) {best_r:>6.3f} ({med_r:.3f}) "
              f"{best_r / best_l:>6.2f}x {per_pop:>+7.1f} ms/p {row.first['local']:>11.2f}s "
              f"{row.first['ray']:>5.2f}s {'yes' if row.same else 'NO':>4}")
    print("\n(best (median) of the timed calls; overhead = (ray - local) / pops, best times; "
          "first = the warm-up call, start-up included)")
    first, warm = rows[0].first, {k: min(v) for k, v in rows[0].times.items()}
    print(f"start-up: ray.init {connect:.2f} s, then Ray's first call {first['ray']:.2f} s "
          f"against {warm['ray']:.2f} s warm ({rows[0].study.name}): "
          f"{first['ray'] - warm['ray']:+.2f} s (workers start, get the engine package, import "
          f"torch); the local pool's first call {first['local']:.2f} s against "
          f"{warm['local']:.2f} s warm")
    print("identical results on both executors:", "yes" if all_same else "NO")
    if not all_same:
        sys.exit(1)


if __name__ == "__main__":
    main()
