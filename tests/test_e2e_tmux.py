"""End to end in a real terminal: tmux runs `hp-tui` on a fresh store; keys open the tiny preset,
launch it, wait for the runner to finish, open the results and quit. Each step is asserted on what
`tmux capture-pane` shows, i.e. on what a user would see."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.presets import find_presets
from engine.store import Store

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.tmux,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None,
                       reason="tmux is not installed (apt-get install tmux)"),
]


class Tmux:
    def __init__(self, name: str) -> None:
        self.name = name

    def send(self, *keys: str) -> None:
        for key in keys:
            # One key per call and a pause: an escape followed at once by a letter would
            # arrive as alt+letter.
            subprocess.run(["tmux", "send-keys", "-t", self.name, key], check=True)
            time.sleep(0.15)

    def screen(self) -> str:
        out = subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name],
                             capture_output=True, text=True)
        return out.stdout

    def wait_for(self, *texts: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if all(t in screen for t in texts):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"waited {timeout:.0f} s for {texts!r}; the screen shows:\n{screen}")

    def alive(self) -> bool:
        return subprocess.run(["tmux", "has-session", "-t", self.name],
                              capture_output=True).returncode == 0


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    name = f"hp-tui-e2e-{uuid.uuid4().hex[:8]}"
    env = {"HP_TUI_STORE": str(tmp_path / "store.db"), "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
           "TERM": "xterm-256color"}
    exports = " ".join(f"{k}={v}" for k, v in env.items())
    command = f"cd {ROOT} && env {exports} {sys.executable} -m tui.cli"
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "100", "-y", "30", command],
                   check=True, env={**os.environ, "TMUX": ""})
    try:
        yield Tmux(name)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)


def test_open_tiny_launch_follow_read_results_quit(tmux: Tmux, tmp_path: Path) -> None:
    screen = tmux.wait_for("Presets", "tiny", "Studies in the store")
    assert "sensitivity, 4 trials" in screen
    names = [p.name for p in find_presets()]
    tmux.send(*["Down"] * names.index("tiny"), "Enter")
    screen = tmux.wait_for("preset tiny", "data.train_size")
    assert "sensitivity: 4 trials" in screen
    tmux.send("C-l")
    tmux.wait_for("study 1", "val loss, all trials")
    screen = tmux.wait_for("completed, 4/4 trials", timeout=60)
    assert "100%" in screen
    tmux.send("o")
    screen = tmux.wait_for("study 1: results", "val acc")
    assert screen.count("completed") >= 4
    tmux.send("i")
    tmux.wait_for("impact of each hyperparameter")
    tmux.send("w")
    tmux.wait_for("val loss, all trials")  # the run screen again, in the results' place
    tmux.send("Escape")
    # the studies list polls again once shown, and lists the study as completed
    tmux.wait_for("Presets", "Studies in the store", "completed")
    tmux.send("q")
    deadline = time.monotonic() + 10
    while tmux.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not tmux.alive(), "q on the first screen should quit"
    with Store(tmp_path / "store.db", readonly=True) as store:
        (study,) = store.studies()
        assert study.status == "completed" and study.counts["completed"] == 4
