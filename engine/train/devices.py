"""Device selection: `--device auto|cpu|cuda|cuda:N|mps`.

Asking for a device this machine does not have is an error with a clear message, never a silent
fallback to the CPU: a study that the user meant to run on a GPU must not quietly take hours.
`resolve_device('auto')` is the device `auto` stands for where there is no CUDA GPU; with one, the
runner's executor chooses per population (`engine.train.auto`).
"""

from __future__ import annotations

import re

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N", "mps")

_CUDA_INDEX = re.compile(r"cuda:(\d+)")


class DeviceError(ValueError):
    """A requested device that is unknown or absent on this machine."""


def resolve_device(name: str) -> torch.device:
    """The torch device for a `--device` value; `auto` picks cuda, then mps, else cpu."""
    text = name.strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", 0)  # the first visible GPU; not initialising CUDA here
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "cuda" or _CUDA_INDEX.fullmatch(text):
        return _cuda(name, text)
    if text == "mps":
        if not _mps_available():
            raise DeviceError(
                f"--device {name}: Apple MPS is not available on this machine "
                f"(torch {torch.__version__}); use --device cpu or auto"
            )
        return torch.device("mps")
    raise DeviceError(
        f"--device {name}: unknown device; expected one of {', '.join(DEVICE_CHOICES)}"
    )


def describe(device: torch.device) -> str:
    """A short human name recorded with each trial, e.g. 'cpu' or 'cuda:0 (NVIDIA H200)'."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return str(device)


def _cuda(name: str, text: str) -> torch.device:
    if not torch.cuda.is_available():
        raise DeviceError(
            f"--device {name}: CUDA is not available on this machine (torch {torch.__version__}); "
            "use --device cpu or auto"
        )
    if text == "cuda":
        return torch.device("cuda", 0)
    index = int(text.split(":", 1)[1])
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceError(
            f"--device {name}: there is no GPU {index}; this machine has {count} "
            f"(cuda:0..cuda:{count - 1})"
        )
    return torch.device("cuda", index)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())
