"""Running `hp-tui` as a user would: a subprocess in a scratch directory with its own store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def env_for(store: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["HP_TUI_STORE"] = str(store)
    env["PYTHONPATH"] = str(ROOT)
    env.pop("NO_COLOR", None)
    return env


def hp(*args: str, store: Path, cwd: Path | None = None, timeout: float = 300,
       stdin: str | None = None) -> Result:
    proc = subprocess.run([sys.executable, "-m", "tui.cli", *args], cwd=cwd or store.parent,
                          env=env_for(store), capture_output=True, text=True, timeout=timeout,
                          input=stdin)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def _as_in_a_terminal() -> None:
    # A suite started in the background (`cmd &` in a script) ignores SIGINT, and children
    # inherit that; a user's `hp-tui` in a terminal gets Ctrl-C, so the tests restore it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_hp(*args: str, store: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tui.cli", *args], cwd=store.parent,
                            env=env_for(store), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=_as_in_a_terminal)


def wait_for(condition: Any, timeout: float = 60.0, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {condition}")


SLOW_PRESET = """\
name = "slow"
description = "Several data groups trained one after another, so a kill lands mid-study."
[data]
train_size = 400
val_size = 100
test_size = 100
[train]
epochs = 150
[study]
strategy = "sensitivity"
seeds = 2
[study.vary]
noise = [0.1, 0.2, 0.3, 0.5, 0.6]
lr = [0.05]
"""
