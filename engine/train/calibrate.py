"""Measuring `engine.train.speed`'s constants on this machine, once, and caching them.

A calibration trains a synthetic population of the notebook's network ([2, 10, 1], batch 10,
three epochs of 100 steps) eagerly at two sizes on a device, after a warm-up call, the best of
two calls at each, timing each epoch: the faster of the later epochs is the step's time (the
small size, one block of LANES trials, gives the fixed cost of a step, the difference to the
large one the cost per multiply-add), and what the first epoch took beyond that, over the
large size's trials, the set-up per trial. About a second on this 2-core CPU (the GPU's
warm-up call also pays CUDA's start-up, outside the timings).

The constants are cached in a small JSON file (`cache_path()`: `$HP_TUI_DEVICE_CACHE`, else
`$XDG_CACHE_HOME/hp-tui/devices.json`, else `~/.cache/hp-tui/devices.json`), one entry per
key: the device's name (with the GPU's model), torch's version, the CPU's model and this
recipe's version. Another GPU, torch or CPU is another key, so a change measures again; a
cache that cannot be read or written costs a calibration, never a failure.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import platform
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from engine.spec import SHUFFLE_KEYED, DataConfig, TrialConfig
from engine.train.data import Split, Splits
from engine.train.devices import describe
from engine.train.population import LANES, graphs_wanted, train_population
from engine.train.reference import Trial
from engine.train.speed import DeviceSpeed, PopulationShape

RECIPE = 3  # bump when the calibration or the model changes: older entries are then unused
STEPS = 100
BATCH = 10
HIDDEN = (10,)
SIZES = {"cpu": (LANES, 1024), "cuda": (LANES, 32768)}  # trials, small and large
REPEATS = 2
EPOCHS = 3  # the first also sets the population up; the faster of the others is the step


def cache_path() -> Path:
    given = os.environ.get("HP_TUI_DEVICE_CACHE")
    if given:
        return Path(given)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hp-tui" / "devices.json"


def cpu_model() -> str:
    """The CPU's model name ('Intel(R) Xeon(R) ...'), or the platform's best guess."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def cache_key(device: torch.device) -> str:
    graphs = " | cuda graphs" if graphs_wanted(None, device) else ""  # another step's speed
    return (f"{describe(device)} | torch {torch.__version__} | {cpu_model()} | recipe {RECIPE}"
            f"{graphs}")


def speeds(devices: list[torch.device], path: Path | None = None,
           log: Any = None) -> list[DeviceSpeed]:
    """Each device's constants: from the cache when it has this key, else measured now (and
    cached). `log` (a logging.Logger) hears what was measured or reused."""
    path = path or cache_path()
    entries = _read(path)
    out, changed = [], False
    for device in devices:
        key = cache_key(device)
        entry: Any = entries.get(key)
        if not _valid(entry):
            started = time.monotonic()
            measured = measure(device)
            entry = {"step_s": measured.step_s, "work_s": measured.work_s,
                     "setup_s": measured.setup_s,
                     "measured": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                     "calibration_s": round(time.monotonic() - started, 3)}
            entries[key], changed = entry, True
            if log is not None:
                log.info("calibrated %s in %.1f s: %.1f us/step + %.3g ns per multiply-add, "
                         "%.1f us per trial to set up (cached in %s)", key,
                         entry["calibration_s"], measured.step_s * 1e6, measured.work_s * 1e9,
                         measured.setup_s * 1e6, path)
        elif log is not None:
            log.info("device speeds of %s from %s (measured %s)", key, path,
                     entry.get("measured", "?"))
        out.append(DeviceSpeed(_name(device), float(entry["step_s"]), float(entry["work_s"]),
                               float(entry.get("setup_s", 0.0))))
    if changed:
        _write(path, entries, log)
    return out


def measure(device: torch.device) -> DeviceSpeed:
    """Time the synthetic population on `device` (see the module docstring)."""
    small, large = SIZES["cuda" if device.type == "cuda" else "cpu"]
    _time(device, LANES, _synthetic_splits(10), epochs=1)  # warm-up: allocator, kernels, CUDA
    splits = _synthetic_splits(STEPS)
    # the best of REPEATS calls, per part: other work on the machine only ever adds time
    t_small = min(_time(device, small, splits)[0] for _ in range(REPEATS))
    t_large, setup = (min(parts) for parts in zip(*(_time(device, large, splits)
                                                    for _ in range(REPEATS)), strict=True))
    w_small, w_large = (_shape(n).work for n in (small, large))
    work_s = max((t_large - t_small) / (w_large - w_small), 1e-15)
    step_s = max(t_small - work_s * w_small, 1e-7)
    return DeviceSpeed(_name(device), step_s, work_s, max(setup / large, 0.0))


def _shape(n: int) -> PopulationShape:
    return PopulationShape(n, BATCH, (2, *HIDDEN, 1), STEPS)


def _synthetic_splits(steps: int) -> Splits:
    """Two features, a label by quadrant: `steps` batches of training points, 200 to validate."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(steps * BATCH, 2, generator=gen)
    xv = torch.randn(200, 2, generator=gen)
    return Splits(Split(x, (x[:, 0] * x[:, 1] > 0).float()),
                  Split(xv, (xv[:, 0] * xv[:, 1] > 0).float()))


def _time(device: torch.device, n: int, splits: Splits, epochs: int = EPOCHS
          ) -> tuple[float, float]:
    """(seconds per step, seconds of set-up) of one eager call training n synthetic trials:
    the fastest epoch after the first, per step, and what the first took beyond that."""
    data = DataConfig(train_size=len(splits.train), val_size=len(splits.val))
    config = TrialConfig(data=data, hidden=HIDDEN, batch_size=BATCH, epochs=epochs, lr=0.05)
    # auto measures only where a GPU is, and there studies shuffle with the keyed recipe
    trials = [Trial(config, seed, SHUFFLE_KEYED) for seed in range(n)]
    ends: list[float] = []

    def on_epoch(_: object) -> None:
        _sync(device)
        ends.append(time.perf_counter())

    _sync(device)
    started = time.perf_counter()
    train_population(trials, splits, device=device, compile=False, on_epoch=on_epoch)
    steps = len(splits.train) // BATCH
    epoch = min((b - a for a, b in itertools.pairwise(ends)), default=ends[0] - started)
    return epoch / steps, max(0.0, ends[0] - started - epoch)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _name(device: torch.device) -> str:
    return str(device)


def _valid(entry: Any) -> bool:
    return (isinstance(entry, dict)
            and all(isinstance(entry.get(k), (int, float)) and entry[k] > 0
                    for k in ("step_s", "work_s")))


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    entries = data.get("entries") if isinstance(data, dict) else None
    return dict(entries) if isinstance(entries, dict) else {}


def _write(path: Path, entries: dict[str, Any], log: Any) -> None:
    """Atomically (a reader never sees half a file); a failure is only logged."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".devices-", suffix=".json", dir=path.parent)
        with os.fdopen(fd, "w") as f:
            json.dump({"entries": entries}, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except OSError as e:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if log is not None:
            log.warning("could not cache the device speeds in %s: %s", path, e)
