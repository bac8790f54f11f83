"""The learning-rate schedules, in closed form: the lr a trial trains with in each epoch.

Schedules are stepped per epoch (as torch's schedulers usually are): every step of epoch e uses
`lr_at(config, e)`. A warm-up of W epochs comes first, then the schedule proper counts its own
epochs k = e - W from 0:

    warm-up (e < W)   lr * (e + 1) / (W + 1)
    constant          lr
    step              lr * gamma ** (k // step_epochs)
    cosine            min_lr + (lr - min_lr) * (1 + cos(pi * k / T)) / 2,  T = max(1, epochs - W)

These are the formulas of torch.optim.lr_scheduler's LinearLR (start_factor 1 / (W + 1)), StepLR
and CosineAnnealingLR (T_max = T) chained by SequentialLR, which the reference loop uses; the
population trainer computes them here, in float64, once per epoch. Standard library only: the
app draws the schedule too.
"""

from __future__ import annotations

import math

from engine.spec.config import TrialConfig


def lr_at(config: TrialConfig, epoch: int) -> float:
    """The learning rate of every step of `epoch` (0-based)."""
    lr, warm = config.lr, config.warmup_epochs
    if epoch < warm:
        return lr * (epoch + 1) / (warm + 1)
    k = epoch - warm
    if config.schedule == "step":
        return lr * config.gamma ** (k // config.step_epochs)
    if config.schedule == "cosine":
        span = cosine_span(config)
        return config.min_lr + (lr - config.min_lr) * (1 + math.cos(math.pi * k / span)) / 2
    return lr


def cosine_span(config: TrialConfig) -> int:
    """T of the cosine schedule: the epochs after the warm-up (at least 1)."""
    return max(1, config.epochs - config.warmup_epochs)


def lr_curve(config: TrialConfig) -> list[float]:
    """The learning rate of each epoch of the trial."""
    return [lr_at(config, e) for e in range(config.epochs)]


def describe_schedule(config: TrialConfig) -> str:
    """A short label: "constant", "step x0.1/5", "cosine to 0", with "+ warm-up 2" if any."""
    if config.schedule == "step":
        text = f"step x{config.gamma:g}/{config.step_epochs}"
    elif config.schedule == "cosine":
        text = f"cosine to {config.min_lr:g}"
    else:
        text = "constant"
    return text + (f" + warm-up {config.warmup_epochs}" if config.warmup_epochs else "")
