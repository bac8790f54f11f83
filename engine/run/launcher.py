"""Starting and stopping runner processes, without importing torch (the CLI and the app use it).

A runner is started in its own session with stdin from /dev/null and its output in a log file
beside the store, so closing the terminal, a dropped SSH connection or quitting the app never
stops it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.spec import pid_alive


def logs_dir(store_path: Path) -> Path:
    """Where the store's processes log: beside the store, in a folder named after the store
    file, so that two stores in one folder (whose studies share numbers) never share a log."""
    return store_path.parent / "logs" / store_path.name


def log_path(store_path: Path, study_id: int) -> Path:
    """The study's runner log."""
    return logs_dir(store_path) / f"study-{study_id}.log"


def start_detached(cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
    """Start `cmd` in its own session (a closed terminal or a dropped connection never stops
    it), stdin from /dev/null, its output appended to `log`, able to import this checkout."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                start_new_session=True, env=_runner_env(), close_fds=True)


@dataclass(frozen=True)
class RunnerOptions:
    """The runner's command-line overrides; None keeps what the study was created with."""

    device: str | None = None
    workers: int | None = None
    executor: str | None = None
    ray_address: str | None = None

    @classmethod
    def from_args(cls, args: Any) -> RunnerOptions:
        """From `hp-tui run`'s or `resume`'s parsed options."""
        return cls(*(getattr(args, name, None)
                     for name in ("device", "workers", "executor", "ray_address")))

    def args(self) -> list[str]:
        pairs = [("--device", self.device), ("--workers", self.workers),
                 ("--executor", self.executor), ("--ray-address", self.ray_address)]
        return [text for flag, value in pairs if value for text in (flag, str(value))]


def start_runner(store_path: Path, study_id: int,
                 options: RunnerOptions | None = None) -> subprocess.Popen[bytes]:
    """Start `python -m engine.run.runner` detached; its output goes to the study's log file."""
    return start_detached(_runner_cmd(store_path, ["--study", str(study_id)], options),
                          log_path(store_path, study_id))


class Prestarted:
    """A runner started before its study exists, so that its imports (torch: ~1 s) overlap the
    caller's own imports, planning and study creation instead of following them.

    The runner is detached from the start (own session) but waits, having written nothing, for
    the study's number on a pipe: `launch(study_id)` sends it and closes the pipe; the runner
    then points its stdin at /dev/null and its output at the study's log file, and is from there
    on the runner `start_runner` would have started. `cancel()` ends it when no study comes (a
    bad preset, a store error, Ctrl-C). If it died before the handshake, `launch` falls back to
    `start_runner`, whose log then shows why.
    """

    def __init__(self, store_path: Path | None, options: RunnerOptions | None = None) -> None:
        """store_path None: the default store, which the runner finds as the caller would."""
        self.options = options
        self.proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            _runner_cmd(store_path, ["--study-from-stdin"], options),
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, env=_runner_env(), close_fds=True)

    def launch(self, store_path: Path, study_id: int) -> subprocess.Popen[bytes]:
        proc, self.proc = self.proc, None
        if proc is not None and proc.stdin is not None:
            try:
                proc.stdin.write(f"{study_id}\n".encode())
                proc.stdin.close()
                return proc
            except OSError:  # it died during its imports
                proc.wait()
        return start_runner(store_path, study_id, self.options)

    def cancel(self) -> None:
        """End the waiting runner (it has not touched the store) and collect it."""
        proc, self.proc = self.proc, None
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            if proc.stdin is not None:
                proc.stdin.close()


def _runner_cmd(store_path: Path | None, study: list[str],
                options: RunnerOptions | None) -> list[str]:
    cmd = [sys.executable, "-m", "engine.run.runner", *study]
    if store_path is not None:
        cmd += ["--store", str(store_path.resolve())]
    return cmd + (options or RunnerOptions()).args()


def _runner_env() -> dict[str, str]:
    env = dict(os.environ)
    # The runner must find the engine package even when hp-tui runs from a checkout (the
    # repository root, two folders above engine/run/).
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return env


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
