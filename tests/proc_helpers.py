"""Finding processes by command line and ancestry in /proc (Linux), for the Ray tests."""

from __future__ import annotations

import os
from pathlib import Path


def all_pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def descends(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        pid = parent(pid)
    return False


def population_pids(ancestor: int | None = None) -> list[int]:
    """Ray workers executing one of our tasks (Ray names the process after the task), among the
    descendants of `ancestor` (default: this process, which started the private Ray)."""
    ancestor = ancestor or os.getpid()
    return [pid for pid in all_pids()
            if cmdline(pid).startswith(b"ray::hp-tui-population") and descends(pid, ancestor)]
