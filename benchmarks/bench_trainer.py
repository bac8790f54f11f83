"""Trials per second: the notebook's per-trial loop against the population trainer.

    .venv/bin/python benchmarks/bench_trainer.py            # the full table (a few minutes)
    .venv/bin/python benchmarks/bench_trainer.py --quick    # a smoke run (seconds)

Rows: the reference loop (a few trials) and the population trainer at N = 1, 8,
64, 256, 512, eager and compiled, on the notebook's configuration (spirals 4000/1000, batch 10,
10 epochs, [2, 10, 1] relu, sgd lr 0.01, mse), on batch 100, and on a wide Adam configuration
([64, 64] tanh, adam lr 0.01; fewer epochs, it is slow), plus N = 512 over worker processes.

Each row runs in a forked child of this process (torch already imported), so that its memory is
its own and no compiled program carries over between rows: "peak MB" is the child's peak resident
memory during the row (Linux VmHWM, reset at the row's start), "+MB" that peak minus the resident
memory at the row's start (with workers: of the pool's parent only). --inline runs the rows in
this process instead (for CUDA, which cannot be forked) and adds the GPU's peak allocation.

A compiled row runs twice: "first" is the first call with the compile (from Inductor's on-disk
cache when warm), trials/s is from the second call. "x ref" is trials/s over the reference's
trials/s on the same configuration; "auto" is what compile=None would choose.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import multiprocessing as mp
import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from engine.run import shuffle_for
from engine.spec import SHUFFLE_DRAWN, SHUFFLE_RECIPES, DataConfig, TrialConfig
from engine.train import (
    LANES,
    Splits,
    Trial,
    group_trials,
    load_splits,
    resolve_device,
    should_compile,
    train_population,
    train_reference,
)

SHUFFLE = SHUFFLE_DRAWN  # the trials' shuffle recipe (--shuffle)


@dataclass
class Row:
    config: str
    mode: str  # reference | eager | compiled | workers=K (compiled or eager)
    n: int
    seconds: float  # the timed call
    trials_per_s: float
    first_s: float | None  # first call, compile included (compiled rows)
    peak_rss_mb: float  # peak resident memory of the process during the row
    added_rss_mb: float  # that peak minus the RSS when the row started (torch etc. excluded)
    auto: str = ""  # what compile=None would choose for this size
    x_ref: float | None = None
    gpu_peak_mb: float | None = None  # torch.cuda.max_memory_allocated (--inline runs)


def configs(args: argparse.Namespace) -> dict[str, TrialConfig]:
    data = DataConfig(train_size=args.train_size, val_size=args.val_size)
    base = TrialConfig(data=data, epochs=args.epochs)
    return {
        "notebook": base,
        "batch100": base.replace(batch_size=100),
        "wide-adam": base.replace(hidden=(64, 64), activation="tanh", optimizer="adam",
                                  lr=0.01, epochs=args.wide_epochs),
    }


def _status_mb(field: str) -> float | None:
    """VmRSS / VmHWM from /proc/self/status (Linux), in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _peak_rss_mb() -> float:
    peak = _status_mb("VmHWM")
    if peak is not None:
        return peak
    # ru_maxrss is in kilobytes on Linux, bytes on macOS
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def _reset_peak_rss() -> float:
    """Start a fresh peak-RSS window (Linux: clear_refs 5); returns the RSS now, in MB."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    return _status_mb("VmRSS") or 0.0


def _measure(fn: Callable[[], dict[str, Any]], inline: bool) -> dict[str, Any]:
    """fn's result plus its peak memory: RSS, and the GPU's peak allocation where CUDA is used."""
    if not inline:
        return _in_child(fn)
    start_rss = _reset_peak_rss()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    out = fn()
    out["peak_rss_mb"] = _peak_rss_mb()
    out["added_rss_mb"] = out["peak_rss_mb"] - start_rss
    if torch.cuda.is_available():
        out["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def _in_child(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run fn in a forked child; its result plus the child's own peak RSS."""
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)

    def target() -> None:
        try:
            start_rss = _reset_peak_rss()
            out = fn()
            out["peak_rss_mb"] = _peak_rss_mb()
            out["added_rss_mb"] = out["peak_rss_mb"] - start_rss
            child.send(out)
        except BaseException as e:  # report, do not hang the parent
            child.send({"error": repr(e)})

    proc = ctx.Process(target=target)
    proc.start()
    result = parent.recv()
    proc.join()
    if "error" in result:
        raise RuntimeError(result["error"])
    return result


def bench_reference(cfg: TrialConfig, splits: Splits, count: int, device: torch.device
                    ) -> dict[str, Any]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    train_reference(Trial(cfg.replace(epochs=1), 0, SHUFFLE), splits, device)  # first-call set-up
    start = time.perf_counter()
    for seed in range(count):
        train_reference(Trial(cfg, seed, SHUFFLE), splits, device)
    seconds = time.perf_counter() - start
    torch.set_num_threads(threads)
    return {"seconds": seconds}


def bench_population(cfg: TrialConfig, splits: Splits, n: int, compile: bool,
                     device: torch.device, workers: int) -> dict[str, Any]:
    trials = [Trial(cfg, seed, SHUFFLE) for seed in range(n)]
    if workers > 1:
        from engine.run.pool import WorkerPool

        start = time.perf_counter()
        with WorkerPool(workers, device) as pool:
            pool.train(trials, splits, compile=compile)
            first = time.perf_counter() - start
            start = time.perf_counter()
            pool.train(trials, splits, compile=compile)
            return {"seconds": time.perf_counter() - start, "first_s": first}
    start = _now(device)
    train_population(trials, splits, device=device, compile=compile)
    first = _now(device) - start
    if not compile:
        return {"seconds": first, "first_s": None}
    start = _now(device)
    train_population(trials, splits, device=device, compile=compile)
    return {"seconds": _now(device) - start, "first_s": first}


def _now(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def run(args: argparse.Namespace) -> list[Row]:
    device = resolve_device(args.device)
    ref_device = resolve_device(args.ref_device or args.device)
    rows: list[Row] = []
    modes = ["eager"] + ([] if args.no_compile else ["compiled"])
    compile_sizes = set(args.compile_sizes or args.sizes)
    for name, cfg in configs(args).items():
        if name not in args.configs:
            continue
        splits = load_splits(cfg.data)
        count = args.ref_trials
        ref = _measure(lambda cfg=cfg, splits=splits, count=count:
                       bench_reference(cfg, splits, count, ref_device), args.inline)
        ref_rate = count / ref["seconds"]
        rows.append(Row(name, "reference", count, ref["seconds"], ref_rate, None,
                        ref["peak_rss_mb"], ref["added_rss_mb"], x_ref=1.0))
        _print(rows[-1])
        steps = cfg.epochs * (cfg.data.train_size // cfg.batch_size)
        for n in args.sizes:
            for mode in modes:
                if mode == "compiled" and n not in compile_sizes:
                    continue
                out = _measure(lambda cfg=cfg, splits=splits, n=n, mode=mode:
                               bench_population(cfg, splits, n, mode == "compiled", device, 1),
                               args.inline)
                auto = _auto(cfg, n, steps, device)
                rows.append(_row(name, mode, n, out, ref_rate, auto))
                _print(rows[-1])
        if name == "notebook" and args.workers > 1:
            n = max(args.sizes)
            for mode in modes:
                out = _measure(lambda cfg=cfg, splits=splits, n=n, mode=mode:
                               bench_population(cfg, splits, n, mode == "compiled", device,
                                                args.workers), args.inline)
                rows.append(_row(name, f"workers={args.workers} {mode}", n, out, ref_rate, ""))
                _print(rows[-1])
    return rows


def _auto(cfg: TrialConfig, n: int, steps: int, device: torch.device) -> str:
    """What compile=None chooses for the largest population that n such trials make."""
    biggest = max(len(g.indices) for g in group_trials([Trial(cfg, 0)] * n, device))
    padded = -(-biggest // LANES) * LANES
    return "compiled" if should_compile(padded, steps, device, _params(cfg)) else "eager"


def _params(cfg: TrialConfig) -> int:
    sizes = cfg.layers(2)
    return sum(o * i + o for i, o in itertools.pairwise(sizes))


def check(device: torch.device, compile: bool, shuffle: int) -> float:
    """Equivalence on `device`: a mixed population against the CPU reference (max abs diff),
    both shuffling with recipe `shuffle` (the keyed one is computed on `device`)."""
    data = DataConfig(train_size=200, val_size=100)
    splits = load_splits(data)
    kinds = [("relu", "sgd", "mse"), ("tanh", "adam", "bce"), ("sigmoid", "rmsprop", "mse"),
             ("gelu", "adamw", "bce_with_logits"), ("silu", "sgd", "bce"),
             ("elu", "adam", "mse"), ("leaky_relu", "sgd", "bce_with_logits")]
    trials = [Trial(TrialConfig(data=data, hidden=hidden, activation=a, optimizer=o, loss=loss,
                                lr=0.01 if o != "sgd" else 0.1, epochs=2), seed, shuffle)
              for seed, (a, o, loss) in enumerate(kinds) for hidden in ((10,), (5, 7), (40,))]
    outcomes = train_population(trials, splits, device=device, compile=compile)
    worst = 0.0
    for t, out in zip(trials, outcomes, strict=True):
        ref = train_reference(t, splits)
        for (w, b), (rw, rb) in zip(out.weights, ref.weights, strict=True):
            worst = max(worst, float((w - rw).abs().max()), float((b - rb).abs().max()))
    return worst


def _row(name: str, mode: str, n: int, out: dict[str, Any], ref_rate: float, auto: str) -> Row:
    rate = n / out["seconds"]
    return Row(name, mode, n, out["seconds"], rate, out["first_s"], out["peak_rss_mb"],
               out["added_rss_mb"], auto, rate / ref_rate, out.get("gpu_peak_mb"))


_HEADER = (f"{'config':<10} {'mode':<20} {'N':>5} {'time s':>8} {'trials/s':>10} {'x ref':>8} "
           f"{'first s':>8} {'peak MB':>8} {'+MB':>6} {'auto':>9}")


def _print(row: Row) -> None:
    first = f"{row.first_s:8.2f}" if row.first_s is not None else f"{'':>8}"
    x_ref = f"{row.x_ref:8.1f}" if row.x_ref is not None else f"{'':>8}"
    print(f"{row.config:<10} {row.mode:<20} {row.n:>5} {row.seconds:8.2f} "
          f"{row.trials_per_s:10.2f} {x_ref} {first} {row.peak_rss_mb:8.0f} "
          f"{row.added_rss_mb:6.0f} {row.auto:>9}"
          + (f" gpu {row.gpu_peak_mb:.0f} MB" if row.gpu_peak_mb is not None else ""),
          flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="smoke run: tiny data, N = 1 and 8, eager only, 2 workers")
    p.add_argument("--device", default="cpu")
    p.add_argument("--ref-device", help="device of the reference loop (default: --device)")
    p.add_argument("--compile-sizes", help="sizes that also get a compiled row (default: all)")
    p.add_argument("--inline", action="store_true",
                   help="run rows in this process (needed for CUDA: no fork after its start)")
    p.add_argument("--sizes", default="1,8,64,256,512")
    p.add_argument("--configs", default="notebook,batch100,wide-adam")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--wide-epochs", type=int, default=2)
    p.add_argument("--train-size", type=int, default=4000)
    p.add_argument("--val-size", type=int, default=1000)
    p.add_argument("--ref-trials", type=int, default=3)
    p.add_argument("--workers", type=int, default=2, help="0 or 1: no worker row")
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--json", type=Path, help="also write the rows here")
    p.add_argument("--shuffle", type=int, choices=SHUFFLE_RECIPES,
                   help="the trials' shuffle recipe (default: a new study's on --device: "
                        "randperm on the cpu, keyed elsewhere)")
    p.add_argument("--graphs", action="store_true",
                   help="eager steps as CUDA graphs (HP_TUI_CUDA_GRAPHS=1; CUDA only)")
    p.add_argument("--check", action="store_true",
                   help="first compare a mixed population on --device with the CPU reference")
    args = p.parse_args(argv)
    global SHUFFLE
    SHUFFLE = args.shuffle or shuffle_for(args.device, gpu=args.device != "cpu")
    if args.graphs:  # read by train_population, here and in the worker processes
        os.environ["HP_TUI_CUDA_GRAPHS"] = "1"
    if args.quick:
        args.sizes, args.epochs, args.wide_epochs = "1,8", 2, 1
        args.train_size, args.val_size, args.ref_trials = 400, 100, 1
        args.no_compile = True
    args.sizes = [int(s) for s in str(args.sizes).split(",")]
    if args.compile_sizes:
        args.compile_sizes = [int(s) for s in str(args.compile_sizes).split(",")]
    args.configs = args.configs.split(",")
    print(f"torch {torch.__version__}, {platform.machine()}, {os.cpu_count()} CPUs, "
          f"device {args.device}, shuffle recipe {SHUFFLE}, graphs {args.graphs}; "
          f"parent RSS {_peak_rss_mb():.0f} MB after importing torch")
    if args.check:
        for compile, shuffle in itertools.product((False, True), SHUFFLE_RECIPES):
            worst = check(resolve_device(args.device), compile, shuffle)
            print(f"check on {args.device} (compile={compile}, shuffle recipe {shuffle}): "
                  f"max |population - reference| = {worst:.2e} over 21 mixed trials", flush=True)
            if worst > 1e-4:
                return 1
    print(_HEADER)
    rows = run(args)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
