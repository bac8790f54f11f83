"""Running studies: the runner process and its executors (this machine's worker pool, or Ray), the
launcher that starts and stops runners, the memory check before a launch, the test vault.

Importing this package does not import torch: the CLI and the app use the launcher, the executor
checks and the memory estimate; the runner, the pool, Ray and the vault import torch when they
run."""

from __future__ import annotations

from engine.run.executors import ExecutorError, check_executor, check_ray_device, ray_address
from engine.run.launcher import (
    Prestarted,
    RunnerOptions,
    log_path,
    logs_dir,
    start_detached,
    start_runner,
    stop_runner,
    tail,
)
from engine.run.shuffles import gpu_visible, shuffle_for

__all__ = [
    "ExecutorError",
    "Prestarted",
    "RunnerOptions",
    "check_executor",
    "check_ray_device",
    "gpu_visible",
    "log_path",
    "logs_dir",
    "ray_address",
    "shuffle_for",
    "start_detached",
    "start_runner",
    "stop_runner",
    "tail",
]
