"""A study's peak memory, estimated from its plan before it starts (torch-free: the CLI and the
app call it), so that a study that cannot fit is refused instead of being killed by the kernel
hours in, or taking the machine down with it.

The model follows what the runner allocates on this machine: the runner itself (torch
imported), every trial's rows, configs and outcomes, each data group's splits (the runner keeps
up to `DATA_CACHE` of them), and per population the trainer's stacked parameters with their
gradients, optimizer state and step temporaries, its activations, the per-epoch shuffles (an
int64 index per trial and training point) and the gathered epoch data. Populations train one at
a time in the runner, or `workers` at a time in forked worker processes, each with its own copy
of the splits (engine.run.pool). The constants were measured on this project's 2-core machine
(see docs/performance.md); a test checks the estimate against a measured peak within 2x.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from engine.datasets import csv_file
from engine.spec import DataConfig, TrialConfig, parameters

# the population trainer's constants, which need torch to import (a test
# checks that they agree)
LANES = 32
WIDE_QUANTUM = 16
NARROW_MAX = 16
SHALLOW_NARROW_MAX = 64
POP_STATE_BYTES = 12 << 20
EPOCH_DATA_BYTES = 64 << 20
SPLIT_MIN_TRIALS = 64  # engine.run.pool's
DATA_CACHE = 8  # engine.train.data keeps this many data configurations' splits

FLOAT, INDEX = 4, 8
RUNNER_BYTES = 230 << 20  # the runner with torch and the trainer imported (measured: ~222 MB)
WORKER_BYTES = 40 << 20  # what a forked worker adds to the pages it shares with the runner
TRIAL_BYTES = 10 << 10  # per trial: the CLI's plan, the runner's rows, configs and outcomes
EPOCH_BYTES = 250  # per trial-epoch: the metrics the trainer keeps and sends
GENERATE_FLOATS = 10  # floats per point alive while a synthetic split is generated
CSV_PARSE_FACTOR = 32  # bytes alive per byte of a CSV file while it is parsed (measured: 32)


@dataclass(frozen=True)
class Estimate:
    """Peak bytes, and the parts that make it up."""

    total: int
    parts: dict[str, int] = field(default_factory=dict)

    def breakdown(self) -> str:
        """The three largest parts: "training 1.2 GB, runner 230.0 MB, data 4.6 MB"."""
        shown = sorted(self.parts.items(), key=lambda kv: -kv[1])[:3]
        return ", ".join(f"{k} {human(v)}" for k, v in shown)


def human(n: float) -> str:
    for unit, size in (("TB", 1 << 40), ("GB", 1 << 30), ("MB", 1 << 20)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n / (1 << 10):.0f} kB"


# --- populations, as the trainer's group_trials forms them ---------------------------


@dataclass(frozen=True)
class Population:
    """One population's shape: what its tensors' sizes depend on."""

    trials: int
    sizes: tuple[int, ...]  # inputs, padded hidden widths, 1
    narrow: bool
    batch: int
    n_train: int
    state_slots: int  # optimizer state tensors per parameter (Adam 2, momentum 1, ...)

    @property
    def lanes(self) -> int:
        return -(-self.trials // LANES) * LANES

    @property
    def params(self) -> int:
        return parameters(self.sizes)

    def peak_bytes(self, features: int) -> int:
        """The trainer's peak while this population trains (its data split excluded)."""
        n = self.lanes
        # parameters, gradients, optimizer state and the update's temporaries
        state = self.params * n * FLOAT * (5 + 3 * self.state_slots)
        widths = sum(self.sizes[1:])
        activations = 4 * self.batch * widths * n * FLOAT  # kept for the backward pass
        if self.narrow:  # a broadcast product [batch, out, in, trials] at a time
            products = max(o * i for i, o in zip(self.sizes[:-1], self.sizes[1:], strict=True))
            activations += self.batch * products * n * FLOAT
        shuffles = n * self.n_train * INDEX + self.n_train * INDEX
        full = max(1, self.n_train // self.batch)
        seg = max(1, min(full, EPOCH_DATA_BYTES // (n * self.batch * (features + 1) * FLOAT)))
        # a segment's gathered inputs and labels (the previous one's still alive while the next
        # is gathered), its flat indices and one feature's index_select
        gathered = n * seg * self.batch * (2 * (features + 1) * FLOAT + INDEX + FLOAT)
        inputs_t = self.n_train * features * FLOAT  # the transposed training inputs
        return state + activations + shuffles + gathered + inputs_t


def _layout_narrow(hidden: tuple[int, ...]) -> bool:
    return max(hidden) <= (SHALLOW_NARROW_MAX if len(hidden) == 1 else NARROW_MAX)


def _state_slots(c: TrialConfig) -> int:
    if c.optimizer in ("adam", "adamw"):
        return 2
    if c.optimizer == "rmsprop":
        return 1 + (c.momentum > 0)
    return int(c.momentum > 0)


def populations(configs: Sequence[TrialConfig], features: int = 2) -> list[Population]:
    """The populations of one data group: by batch size, depth and width bucket, capped on CPU
    so that a population's state stays within POP_STATE_BYTES."""
    groups: dict[tuple[int, int, int], list[TrialConfig]] = defaultdict(list)
    for c in configs:
        bucket = 1 << max(0, max(c.hidden) - 1).bit_length()
        groups[(c.batch_size, len(c.hidden), bucket)].append(c)
    out = []
    for (batch, depth, bucket), members in groups.items():
        params = 2 * bucket + bucket + (depth - 1) * (bucket * bucket + bucket) + bucket + 1
        cap = max(LANES, POP_STATE_BYTES // (params * 20) // LANES * LANES)
        narrow = _layout_narrow(members[0].hidden)
        for k in range(0, len(members), cap):
            part = members[k : k + cap]
            hidden = [max(w) for w in zip(*(c.hidden for c in part), strict=True)]
            if not narrow:
                hidden = [-(-w // WIDE_QUANTUM) * WIDE_QUANTUM for w in hidden]
            out.append(Population(
                trials=len(part), sizes=(features, *hidden, 1), narrow=narrow, batch=batch,
                n_train=part[0].data.train_size,
                state_slots=max(_state_slots(c) for c in part)))
    return out


def _tasks(pops: list[Population], workers: int) -> list[Population]:
    """engine.run.pool.schedule's tasks: a population of SPLIT_MIN_TRIALS or more trials is
    split over the workers."""
    out = []
    for p in pops:
        pieces = workers if p.trials >= SPLIT_MIN_TRIALS else 1
        share = -(-p.trials // pieces)
        out += [Population(share, p.sizes, p.narrow, p.batch, p.n_train, p.state_slots)] * pieces
    return out


# --- data ------------------------------------------------------------------------------------


def features_of(data: DataConfig, base_dir: Path | None = None) -> int:
    """Input features: 2 for the synthetic sets; a CSV's columns minus its label (read from its
    first line; 2 when it cannot be read)."""
    path = csv_file(data, base_dir)
    if path is None:
        return 2
    try:
        with open(path, newline="", encoding="utf-8") as f:
            first = next(csv.reader(f), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return 2
    return max(1, len(first) - 1)


def split_bytes(data: DataConfig, features: int) -> int:
    """The training and validation splits of one data configuration, as the runner holds them."""
    return (data.train_size + data.val_size) * (features + 1) * FLOAT


def generate_bytes(data: DataConfig, base_dir: Path | None = None) -> int:
    """What making the splits needs while it runs: generating the largest synthetic split, or
    parsing the CSV file (Python lists of its cells)."""
    path = csv_file(data, base_dir)
    if path is None:
        return max(data.train_size, data.val_size) * GENERATE_FLOATS * FLOAT
    try:
        return path.stat().st_size * CSV_PARSE_FACTOR
    except OSError:
        return 0


# --- the estimate ----------------------------------------------------------------------------


def estimate(configs: Iterable[TrialConfig], workers: int = 1, *, device: str | None = "cpu",
             base_dir: Path | None = None) -> Estimate:
    """Peak memory of training `configs` on this machine with `workers` processes (CPU), or on
    a GPU (`device` cuda or mps: only what stays on the host is counted)."""
    by_data: dict[DataConfig, list[TrialConfig]] = defaultdict(list)
    for c in configs:
        by_data[c.data].append(c)
    if not by_data:
        return Estimate(0)
    n_trials = sum(len(v) for v in by_data.values())
    trial_epochs = sum(c.epochs for v in by_data.values() for c in v)
    features = {d: features_of(d, base_dir) for d in by_data}
    splits = {d: split_bytes(d, features[d]) for d in by_data}
    cached = sum(sorted(splits.values(), reverse=True)[:DATA_CACHE])
    parts = {"runner": RUNNER_BYTES, "trials": n_trials * TRIAL_BYTES + trial_epochs * EPOCH_BYTES,
             "data": cached}
    on_gpu = bool(device) and str(device).split(":")[0] in ("cuda", "mps")
    local_pool = workers > 1 and not on_gpu
    training = 0
    for data, members in by_data.items():
        pops = populations(members, features[data])
        # final weights: kept for every trial of the group until it ends (twice in a pool:
        # the workers' packed copy and the runner's)
        weights = sum(p.params * p.trials for p in pops) * FLOAT * (2 if local_pool else 1)
        generating = generate_bytes(data, base_dir)
        if on_gpu:
            group = weights
        elif local_pool and len(members) > 1:
            tasks = sorted((p.peak_bytes(features[data]) for p in _tasks(pops, workers)),
                           reverse=True)[:workers]
            # each busy worker: its own copy of the splits (unpickled from the runner's)
            per_copy = WORKER_BYTES + 2 * splits[data]
            group = weights + sum(tasks) + len(tasks) * per_copy + len(tasks) * splits[data]
        else:
            group = weights + max(p.peak_bytes(features[data]) for p in pops)
        training = max(training, group, generating)
    parts["training"] = training
    return Estimate(sum(parts.values()), parts)


def available_bytes(meminfo: Path = Path("/proc/meminfo"),
                    cgroups: Path = Path("/sys/fs/cgroup"),
                    own: Path = Path("/proc/self/cgroup")) -> int | None:
    """Memory a new process can use without swapping: MemAvailable, lowered to what this
    process's memory cgroup leaves under its limit (a container's MemAvailable is the host's);
    None where neither is known (not Linux)."""
    found = [n for n in (_mem_available(meminfo), _cgroup_room(cgroups, own)) if n is not None]
    return min(found) if found else None


def _mem_available(meminfo: Path) -> int | None:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_room(cgroups: Path, own: Path) -> int | None:
    """Limit minus usage of this process's memory cgroup (v2 memory.max, v1
    memory.limit_in_bytes); None when it has no limit or none can be read."""
    try:
        lines = own.read_text().splitlines()
    except OSError:
        return None
    rooms = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            where, limit, usage = cgroups / path.lstrip("/"), "memory.max", "memory.current"
        elif "memory" in controllers.split(","):
            where, limit, usage = (cgroups / "memory" / path.lstrip("/"),
                                   "memory.limit_in_bytes", "memory.usage_in_bytes")
        else:
            continue
        try:
            cap, used = ((where / name).read_text().strip() for name in (limit, usage))
        except OSError:
            continue
        # v2 writes "max" for no limit, v1 a number near 2^63
        if cap.isdigit() and used.isdigit() and int(cap) < 1 << 60:
            rooms.append(max(0, int(cap) - int(used)))
    return min(rooms) if rooms else None


def refusal(configs: Iterable[TrialConfig], workers: int, *, device: str | None = "cpu",
            base_dir: Path | None = None, available: int | None = None) -> str | None:
    """Why the study cannot fit this machine's memory, or None when it can (or when the
    available memory is unknown)."""
    free = available if available is not None else available_bytes()
    if free is None:
        return None
    need = estimate(configs, workers, device=device, base_dir=base_dir)
    if need.total <= free:
        return None
    return (f"this study would need ~{human(need.total)} of memory at its peak "
            f"({need.breakdown()}), and this machine has {human(free)} available; lower "
            "train_size, the hidden widths, the seeds or the number of trials (or the workers)")

