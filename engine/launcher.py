"""Starting and stopping runner processes, without importing torch (the CLI and the app use it).

A runner is started in its own session with stdin from /dev/null and its output in a log file
beside the store, so closing the terminal, a dropped SSH connection or quitting the app never
stops it (DESIGN.md section 2).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from engine.store import pid_alive


def log_path(store_path: Path, study_id: int) -> Path:
    return store_path.parent / "logs" / f"study-{study_id}.log"


def start_runner(store_path: Path, study_id: int, *, device: str | None = None,
                 workers: int | None = None) -> subprocess.Popen[bytes]:
    """Start `python -m engine.runner` detached; its output goes to the study's log file."""
    log = log_path(store_path, study_id)
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "engine.runner", "--store", str(store_path.resolve()),
           "--study", str(study_id)]
    if device:
        cmd += ["--device", device]
    if workers:
        cmd += ["--workers", str(workers)]
    env = dict(os.environ)
    # The runner must find the engine package even when hp-tui runs from a checkout.
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                start_new_session=True, env=env, close_fds=True)


def stop_runner(pid: int, timeout: float = 10.0) -> bool:
    """SIGTERM a runner and wait for it to exit. Returns whether it exited in time."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


def _reap(pid: int) -> None:
    """Collect a runner that is our own child, so a finished one does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
