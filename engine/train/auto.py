"""`--device auto` on a machine with a GPU: each population trains where it is predicted faster.

`auto_device` returns the CPU itself where there is no CUDA GPU (nothing measured, CUDA never
touched), else an `AutoDevice`: the CPU and the first GPU with their measured constants
(`engine.train.calibrate`, cached). `AutoDevice.place` splits a data group's trials into the
trainer's populations (`group_trials` as on the GPU: uncapped, the small shallow groups
merged), asks `engine.train.speed.choose` for each, and returns the trials for each device
with every choice and its predictions, for the runner's log.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from engine.spec import parameters
from engine.train.calibrate import speeds
from engine.train.devices import resolve_device
from engine.train.population import LANES, compile_saving, group_trials
from engine.train.reference import Trial
from engine.train.speed import Choice, DeviceSpeed, choose, population_shape


@dataclass(frozen=True)
class Placement:
    """Trials (indices into the caller's list) that train on one device, and why."""

    device: torch.device
    indices: list[int]
    choices: list[tuple[int, Choice]] = field(default_factory=list)  # (trials, choice) each


@dataclass
class AutoDevice:
    """The devices `auto` chooses among, CPU first, with their measured speeds."""

    devices: list[torch.device]
    speeds: list[DeviceSpeed]
    type: str = "auto"  # so that code asking `device.type == "cpu"` sees a non-CPU choice

    def __str__(self) -> str:
        return "auto (" + ", ".join(str(d) for d in self.devices) + ")"

    def place(self, trials: Sequence[Trial], n_train: int, n_features: int,
              ways: Callable[[int], int] | None = None, whole: bool = False
              ) -> list[Placement]:
        """One placement per device that gets trials, in the devices' order. `ways(n)` is how
        many shares a CPU population of n trials trains in side by side (the worker pool)."""
        by_name = {str(d): d for d in self.devices}
        placed: dict[str, Placement] = {}
        for group in group_trials(trials, self.devices[-1], whole=whole):
            configs = [t.config for t in group.trials]
            shape = population_shape(configs, n_train, n_features, LANES)
            split = ways(len(group.indices)) if ways is not None else 1
            params = max(parameters(c.layers(n_features)) for c in configs)
            # as the trainer will decide on each device (a CPU share is compiled on its own)
            compiled = {str(d): compile_saving(len(group.indices) // (split if d.type == "cpu"
                                                                      else 1),
                                               d, params, shape.steps)
                        for d in self.devices}
            choice = choose(self.speeds, shape, {"cpu": split}, compiled)
            target = placed.setdefault(choice.device, Placement(by_name[choice.device], []))
            target.indices.extend(group.indices)
            target.choices.append((len(group.indices), choice))
        for p in placed.values():
            p.indices.sort()
        return [placed[str(d)] for d in self.devices if str(d) in placed]


def auto_device(cache: Path | None = None, log: Any = None,
                before_cuda: Callable[[], None] | None = None) -> torch.device | AutoDevice:
    """What `--device auto` means here. Without a CUDA GPU: `resolve_device('auto')` (the CPU,
    or Apple's MPS), with nothing measured. With one: the CPU and cuda:0, calibrated (or read
    from the cache); a GPU whose calibration fails leaves the CPU, with a warning in the log.
    `before_cuda` runs first, before CUDA is initialised in this process (start forked workers
    there: CUDA forbids forking after)."""
    if not torch.cuda.is_available():
        return resolve_device("auto")
    if before_cuda is not None:
        before_cuda()
    devices = [torch.device("cpu"), torch.device("cuda", 0)]
    try:
        return AutoDevice(devices, speeds(devices, cache, log))
    except RuntimeError as e:  # a GPU that torch sees and cannot use is not the faster one
        if log is not None:
            log.warning("--device auto: the GPU could not be measured (%s); training on the "
                        "CPU", e)
        return torch.device("cpu")
