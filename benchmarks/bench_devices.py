"""`--device auto`'s cost model against real times: calibrate, predict, train, compare.

    .venv/bin/python benchmarks/bench_devices.py                       # CPU only here (~1 min)
    .venv/bin/python benchmarks/bench_devices.py --quick               # smoke run, seconds
    # on a GPU box (rows in-process; CUDA cannot be forked):
    PYTORCH_NVML_BASED_CUDA_CHECK=1 python benchmarks/bench_devices.py --sizes 512,8192,100000

Calibrates every device here afresh (`engine.train.calibrate.measure`, timed; the cache is
neither read nor written), then trains the notebook's configuration (spirals 4000/1000, batch
10, [2, 10, 1], eager) as one population of N trials on each device and prints, per row, the
prediction, the measured time, their ratio, and the device `auto` chooses (one worker: the
population in one piece). The choice is right when the chosen device's measured time is the
lower one; the script exits 1 when a choice is wrong by more than `--slack`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from engine.spec import SHUFFLE_KEYED, DataConfig, TrialConfig
from engine.train import LANES, Trial, choose, load_splits, population_shape, train_population
from engine.train import calibrate as calibration


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="32,512,2048")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--train-size", type=int, default=4000)
    p.add_argument("--slack", type=float, default=0.2,
                   help="a wrong choice within this share of the better time passes")
    p.add_argument("--quick", action="store_true", help="sizes 32,128, 1 epoch of 400 points")
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.epochs, args.train_size = "32,128", 1, 400
    torch.set_num_threads(1)
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(torch.device("cuda", 0))
    speeds = []
    for device in devices:
        started = time.perf_counter()
        speed = calibration.measure(device)
        speeds.append(speed)
        print(f"calibrated {calibration.cache_key(device)} in "
              f"{time.perf_counter() - started:.2f} s: step {speed.step_s * 1e6:.1f} us, "
              f"{speed.work_s * 1e9:.3g} ns per multiply-add, "
              f"set-up {speed.setup_s * 1e6:.1f} us per trial")
    cfg = TrialConfig(data=DataConfig(train_size=args.train_size, val_size=1000),
                      epochs=args.epochs)
    splits = load_splits(cfg.data)
    wrong = 0
    print(f"{'N':>7} {'device':>7} {'predicted s':>11} {'measured s':>10} {'ratio':>6}  chosen")
    for n in (int(s) for s in args.sizes.split(",")):
        trials = [Trial(cfg, seed, SHUFFLE_KEYED) for seed in range(n)]  # as auto's studies
        shape = population_shape([cfg] * n, len(splits.train), splits.n_features, LANES)
        choice = choose(speeds, shape)
        measured = {}
        for device, predicted in zip(devices, choice.predictions, strict=True):
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
            train_population(trials, splits, device=device, compile=False)
            if device.type == "cuda":
                torch.cuda.synchronize()
            measured[str(device)] = seconds = time.perf_counter() - started
            mark = "<-" if str(device) == choice.device else ""
            print(f"{n:>7} {device!s:>7} {predicted.seconds:>11.3f} {seconds:>10.3f} "
                  f"{predicted.seconds / seconds:>6.2f}  {mark}")
        best = min(measured.values())
        if measured[choice.device] > best * (1 + args.slack):
            wrong += 1
            print(f"  wrong choice at N = {n}: {choice.device} took "
                  f"{measured[choice.device]:.3f} s, the other {best:.3f} s")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
