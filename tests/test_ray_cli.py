"""`hp-tui run --executor ray` as a user runs it: against a Ray head started with `ray start --head`
on loopback, with workers killed mid-run, a stopped study's tasks ended, and resume going back to
the cluster."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.run.launcher import log_path
from tests.cli_helpers import env_for, hp, wait_for
from tests.proc_helpers import all_pids, cmdline, parent, population_pids

pytest.importorskip("ray")
pytestmark = [pytest.mark.ray, pytest.mark.slow]
RAY = str(Path(sys.executable).with_name("ray"))

QUICK = """
name = "quick"
[data]
train_size = 200
val_size = 100
test_size = 100
[train]
epochs = 3
[study]
strategy = "sensitivity"
seeds = 2
[study.vary]
lr = [0.01, 0.1]
hidden = [[10], [8, 4]]
"""

# About 5 s of training per population here: long enough to kill or stop it mid-run.
SLOW = """
name = "slow"
[data]
train_size = 400
val_size = 100
test_size = 100
[train]
epochs = 150
batch_size = 8
[study]
strategy = "sensitivity"
seeds = 2
[study.vary]
hidden = [[10], [8, 4]]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def head() -> Iterator[str]:
    """A 2-CPU Ray head on loopback, as `ray start --head` on a cluster's first machine. Ray's
    socket paths must stay short, hence a short temp dir of its own."""
    temp = tempfile.mkdtemp(prefix="hpray", dir="/tmp")
    port = free_port()
    start = subprocess.run(
        [RAY, "start", "--head", "--num-cpus", "2", "--port", str(port),
         "--node-ip-address", "127.0.0.1", "--include-dashboard=false", "--temp-dir", temp,
         "--disable-usage-stats"],
        capture_output=True, text=True, timeout=120)
    assert start.returncode == 0, start.stdout + start.stderr
    try:
        yield f"127.0.0.1:{port}"
    finally:
        for pid in head_pids(temp):  # only this cluster's processes, unlike `ray stop`
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def head_pids(temp: str) -> set[int]:
    """The cluster's processes: those started with its temp dir, and their children (Ray's agents
    rename themselves, `ray::DashboardAgent`, and would outlive a killed raylet)."""
    parents = {pid: parent(pid) for pid in all_pids()}
    found = {pid for pid in parents if temp.encode() in cmdline(pid)}
    grew = True
    while grew:
        more = {pid for pid, ppid in parents.items() if ppid in found} - found
        found |= more
        grew = bool(more)
    return found


def raylets() -> list[int]:
    """The head's raylet: the parent of the workers that run its tasks."""
    return [pid for pid in all_pids()
            if b"/raylet/raylet" in cmdline(pid).split(b"\0")[0] and b"hpray" in cmdline(pid)]


def cluster_population_pids() -> list[int]:
    return [pid for raylet in raylets() for pid in population_pids(raylet)]


@pytest.fixture
def store(tmp_path: Path) -> Path:
    (tmp_path / "st").mkdir()
    return tmp_path / "st" / "store.db"


def preset(tmp_path: Path, text: str) -> str:
    path = tmp_path / "preset.toml"
    path.write_text(text)
    return str(path)


def numbers(data: dict) -> list[tuple]:
    return [(t["id"], t["status"], t["epochs"], t["val_acc"], t["val_loss"], t["train_loss"])
            for t in data["trials"]]


def metric_rows(store: Path) -> dict[int, list[int]]:
    db = sqlite3.connect(store)
    rows = db.execute("SELECT t.number, m.epoch FROM metrics m JOIN trials t ON t.id = m.trial_id"
                      " ORDER BY t.number, m.epoch").fetchall()
    db.close()
    epochs: dict[int, list[int]] = {}
    for number, epoch in rows:
        epochs.setdefault(number, []).append(epoch)
    return epochs


def show(store: Path, study: int = 1) -> dict:
    return hp("show", str(study), "--json", store=store).json()


def start_slow_study(head: str, store: Path, tmp_path: Path) -> tuple[str, int]:
    """`hp-tui run SLOW --detach` on the cluster: the preset's path and the runner's pid."""
    path = preset(tmp_path, SLOW)
    r = hp("run", path, "--detach", "--json", "--executor", "ray", "--ray-address", head,
           store=store)
    assert r.code == 0, r.err
    return path, int(json.loads(r.out)["pid"])


def test_cluster_study_equals_the_local_one(head: str, store: Path, tmp_path: Path) -> None:
    path = preset(tmp_path, QUICK)
    local = hp("run", path, "--json", store=store)
    assert local.code == 0, local.err
    remote = hp("run", path, "--json", "--executor", "ray", "--ray-address", head, store=store)
    assert remote.code == 0, remote.err
    a, b = local.json(), remote.json()
    assert numbers(a) == numbers(b)
    assert (b["executor"], b["ray_address"]) == ("ray", head)
    assert {t["trained_on"] for t in b["trials"]} == {"ray:cpu"}
    assert {t["trained_on"] for t in a["trials"]} == {"cpu"}
    log = log_path(store, 2).read_text()
    assert f"the Ray cluster {head}: 1 node(s), 2 CPUs" in log
    table = hp("show", "2", store=store).out
    assert f"on Ray {head}" in table
    # the vault reads the stored weights here, whichever machine trained them
    vault = hp("vault", "2", "--trial", "1", "--yes", "--json", store=store)
    assert vault.code == 0, vault.err
    assert 0.0 <= vault.json()["test_acc"] <= 1.0


def test_a_killed_worker_is_rerun_and_the_study_completes(head: str, store: Path,
                                                          tmp_path: Path) -> None:
    path, _runner = start_slow_study(head, store, tmp_path)
    wait_for(lambda: any(t["epochs"] > 2 for t in show(store)["trials"]), timeout=120)
    victims = cluster_population_pids()
    assert victims, "no Ray worker is training the study"
    os.kill(victims[0], signal.SIGKILL)
    wait_for(lambda: show(store)["status"] not in ("pending", "running"), timeout=240)
    data = show(store)
    assert data["status"] == "completed", data
    assert all(t["status"] == "completed" and t["epochs"] == 150 for t in data["trials"])
    # each epoch of each trial stored once, though one population trained twice
    assert all(epochs == list(range(150)) for epochs in metric_rows(store).values())
    log = log_path(store, 1).read_text()
    assert "rerunning it, attempt 2" in log
    # and the numbers are those of an undisturbed run
    local = hp("run", path, "--json", store=store)
    assert numbers(local.json()) == numbers(data)


def test_stop_ends_the_tasks_and_resume_goes_back_to_the_cluster(head: str, store: Path,
                                                                 tmp_path: Path) -> None:
    _path, runner = start_slow_study(head, store, tmp_path)
    wait_for(lambda: any(t["epochs"] > 0 for t in show(store)["trials"]), timeout=120)
    working = wait_for(cluster_population_pids, timeout=30)
    os.kill(runner, signal.SIGTERM)  # what `hp-tui`'s stop and Ctrl-C do
    wait_for(lambda: show(store)["status"] == "interrupted", timeout=60)
    wait_for(lambda: not set(working) & set(cluster_population_pids()), timeout=30)
    resumed = hp("resume", "1", "--json", store=store, timeout=300)
    assert resumed.code == 0, resumed.err
    data = resumed.json()
    assert data["status"] == "completed"
    assert {t["trained_on"] for t in data["trials"]} == {"ray:cpu"}
    assert f"the Ray cluster {head}" in log_path(store, 1).read_text()


def test_without_ray_the_message_says_how_to_install(store: Path) -> None:
    code = ("import sys; sys.modules['ray'] = None; from tui.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", code, "run", "tiny", "--executor", "ray"],
                          cwd=store.parent, env=env_for(store), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 3
    assert "pip install 'hp-tui[ray]'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not store.exists()


@pytest.mark.parametrize(("args", "message", "code"), [
    (["--executor", "ray", "--ray-address", "127.0.0.1:1"], "nothing answers there", 3),
    (["--executor", "ray", "--ray-address", "headnode"], "expected HOST:PORT", 3),
    (["--ray-address", "127.0.0.1:6379"], "--ray-address needs --executor ray", 3),
    (["--executor", "ray", "--device", "cuda:1"], "use --device cuda", 3),
    (["--executor", "ray", "--device", "mps"], "trains on auto, cpu or cuda", 3),
    (["--executor", "dask"], "invalid choice: 'dask'", 2),  # a usage error, as argparse says
])
def test_bad_cluster_options_are_refused_before_anything_is_written(
        store: Path, args: list[str], message: str, code: int) -> None:
    started = time.monotonic()
    r = hp("run", "tiny", *args, store=store)
    assert r.code == code, r.err
    assert message in r.err and "Traceback" not in r.err
    assert not store.exists()
    assert time.monotonic() - started < 60  # Ray itself would retry a dead address for minutes


@pytest.mark.parametrize(("args", "message"), [
    (["--executor", "ray", "--ray-address", "127.0.0.1:1"], "nothing answers there"),
    (["--ray-address", "127.0.0.1:6379"], "--ray-address needs --executor ray"),
])
def test_the_app_refuses_a_bad_cluster_before_it_opens(store: Path, args: list[str],
                                                       message: str) -> None:
    r = hp(*args, store=store)  # no command: the app, which would need a terminal
    assert r.code == 3 and message in r.err and "Traceback" not in r.err
    assert not store.exists()
