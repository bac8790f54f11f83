"""Which shuffle recipe a new study records (engine.spec.seeds), without importing torch.

Both recipes give a trial the same numbers on every device; they differ in speed. Recipe 1
(randperm on the host) costs about half of recipe 2 on a CPU core (N = 512 notebook trials:
~17 ms an epoch against ~33 ms, ~8% of an eager epoch against ~15%), while on a GPU recipe 1
draws every trial's shuffle on the host and copies it over, which at 10^5 trials takes longer
than the epoch's training. So a study that may train on a GPU takes recipe 2, and one that
trains on this machine's CPU recipe 1. The choice is recorded with the study: a resume, here
or on another machine, shuffles as the study began.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping
from pathlib import Path

from engine.spec import SHUFFLE_DRAWN, SHUFFLE_KEYED

__all__ = ["gpu_visible", "shuffle_for"]


def gpu_visible(dev: Path = Path("/dev"), env: Mapping[str, str] = os.environ) -> bool:
    """Whether this machine shows a GPU torch could train on: an NVIDIA or ROCm device node
    (unless CUDA_VISIBLE_DEVICES hides them all), or Apple silicon (mps). A guess that errs
    costs speed only, never numbers."""
    if env.get("CUDA_VISIBLE_DEVICES") in ("", "-1"):
        return False
    if any(dev.glob("nvidia[0-9]*")) or (dev / "kfd").exists():
        return True
    return sys.platform == "darwin" and platform.machine() == "arm64"


def shuffle_for(device: str | None, *, gpu: bool | None = None) -> int:
    """The recipe for a new study that trains with `--device device`: keyed where a GPU may
    train it (cuda, cuda:N, mps, or auto on a machine that shows a GPU), else drawn. `gpu`:
    whether this machine shows one (default: `gpu_visible()`).

    The executor does not enter: a study on a Ray cluster takes the recipe the same study
    would take here, so that both give the same numbers (a CPU-only head with GPU nodes
    draws on the nodes' hosts: slower there, never different)."""
    text = (device or "auto").strip().lower()
    if text == "cpu":
        return SHUFFLE_DRAWN
    if text != "auto":
        return SHUFFLE_KEYED
    return SHUFFLE_KEYED if (gpu_visible() if gpu is None else gpu) else SHUFFLE_DRAWN
