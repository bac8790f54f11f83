"""Whole-process speed of `hp-tui run` against the notebook's per-trial loop, in one run.

    python benchmarks/bench_cli.py [--quick]

1. `hp-tui run notebook --strategy single --seeds 256` (startup included) vs 256 sequential
   reference trials (measured on a sample of them and scaled, unless --full-reference).
2. A one-at-a-time study of 26 trials around the notebook (2 seeds; lr, batch size, optimizer,
   activation, width/depth, loss) vs the reference over exactly the same trials.
3. The store's per-epoch writes as a share of training time at N = 512.
4. A reader polling the store 4x/s while the runner writes: the runner's slowdown.

Prints ratios; goals: (1) >= 100x, (2) >= 8x, (3) < 5 %, (4) a few percent at most.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SENSITIVITY_26 = """\
name = "sensitivity-26"
description = "One-at-a-time around the notebook: 2 seeds x (1 + 12 values) = 26 trials."
[study]
strategy = "sensitivity"
seeds = 2
[study.vary]
lr = [0.001, 0.1, 1.0]
batch_size = [32, 128]
optimizer = ["adam", "rmsprop"]
activation = ["tanh", "sigmoid"]
hidden = [[20], [10, 10]]
loss = ["bce_with_logits"]
"""


def hp_run(args: list[str], store: Path) -> float:
    env = dict(os.environ, HP_TUI_STORE=str(store), PYTHONPATH=str(ROOT))
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tui.cli", "run", *args, "--json"], env=env,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=store.parent)
    return time.perf_counter() - start


def reference_seconds(trials: list) -> float:
    from engine.train import Trial, load_splits, train_reference

    start = time.perf_counter()
    for t in trials:
        train_reference(Trial(t.config, t.seed), load_splits(t.config.data))
    return time.perf_counter() - start


def planned(preset_path: Path, **overrides: object) -> list:
    from engine.presets import load_preset, with_overrides
    from engine.study import strategies

    preset = with_overrides(load_preset(preset_path), **overrides)  # type: ignore[arg-type]
    return strategies.plan(preset.config, preset.study).trials


def store_write_share(n: int) -> tuple[float, float]:
    """(training seconds, seconds spent in record_epoch) for one N-trial population."""
    import torch

    from engine.spec import TrialConfig
    from engine.store import EpochRow, Store
    from engine.train import Trial, load_splits, train_population

    torch.set_num_threads(1)
    config = TrialConfig()
    splits = load_splits(config.data)
    trials = [Trial(config, seed) for seed in range(n)]
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "s.db") as store:
        study = store.create_study(name=None, preset_name="bench", preset_path=None,
                                   preset_text="", strategy="single", seed=0,
                                   baseline=config.to_dict(), spec={}, device="cpu",
                                   trials=[(config.to_dict(), s, s) for s in range(n)])
        ids = [t.id for t in store.trials(study)]
        writing = 0.0
        epochs = [0] * n

        def on_epoch(results: list) -> None:
            nonlocal writing
            rows = []
            for index, m, _ in results:
                rows.append(EpochRow(ids[index], epochs[index], m.train_loss, m.val_loss,
                                     m.val_acc))
                epochs[index] += 1
            start = time.perf_counter()
            store.record_epoch(rows)
            writing += time.perf_counter() - start

        start = time.perf_counter()
        train_population(trials, splits, on_epoch=on_epoch)
        return time.perf_counter() - start, writing


def reader_slowdown(preset: Path, tmp: Path) -> tuple[float, float]:
    from engine.store import Store

    alone = hp_run([str(preset)], tmp / "alone.db")
    store_path = tmp / "watched.db"
    stop = threading.Event()
    errors: list[str] = []

    def poll() -> None:
        cursor = None
        while not stop.is_set():
            try:
                if store_path.exists():
                    with Store(store_path, readonly=True) as s:
                        for study in s.studies():
                            s.trials(study.id)
                            cursor = s.metrics_since(study.id, cursor).cursor
            except Exception as e:  # a reader error is exactly what this measures
                errors.append(repr(e))
            time.sleep(0.25)

    reader = threading.Thread(target=poll)
    reader.start()
    watched = hp_run([str(preset)], store_path)
    stop.set()
    reader.join()
    if errors:
        print(f"  reader errors: {errors[:3]}")
    return alone, watched


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke test")
    parser.add_argument("--full-reference", action="store_true",
                        help="time all 256 reference trials instead of a sample")
    args = parser.parse_args()
    seeds = 32 if args.quick else 256
    sample = seeds if args.full_reference else (2 if args.quick else 8)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        notebook = ROOT / "presets" / "notebook.toml"
        print(f"1. notebook config, single strategy, {seeds} seeds (whole process)")
        ours = hp_run([str(notebook), "--strategy", "single", "--seeds", str(seeds)],
                      tmp / "a.db")
        trials = planned(notebook, strategy="single", seeds=seeds)
        ref = reference_seconds(trials[:sample]) * len(trials) / sample
        print(f"   hp-tui {ours:.1f} s; reference {ref:.1f} s ({sample} trials timed, scaled)"
              f" -> {ref / ours:.0f}x (goal >= 100x)")

        preset = tmp / "sensitivity26.toml"
        preset.write_text(SENSITIVITY_26)
        print("2. one-at-a-time study, 26 trials (whole process)")
        ours = hp_run([str(preset)], tmp / "b.db")
        trials = planned(preset)
        if args.quick:
            trials = trials[:4]
        ref = reference_seconds(trials) * (26 / len(trials))
        print(f"   hp-tui {ours:.1f} s; reference {ref:.1f} s -> {ref / ours:.1f}x (goal >= 8x)")

        n = 64 if args.quick else 512
        train, writing = store_write_share(n)
        print(f"3. store writes at N = {n}: {writing * 1000:.0f} ms of {train:.1f} s training"
              f" = {100 * writing / train:.2f} % (goal < 5 %)")

        alone, watched = reader_slowdown(preset, tmp)
        print(f"4. runner alone {alone:.2f} s, with a reader polling 4x/s {watched:.2f} s"
              f" -> {100 * (watched / alone - 1):+.1f} %")


if __name__ == "__main__":
    main()
