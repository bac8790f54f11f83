"""Where a study trains: the executor names and the checks that need neither torch nor Ray.

`local` (the default) trains on this machine's cores or GPU; `ray` sends each population to a Ray
cluster as a task (`engine.run.ray_cluster`). The CLI and the app import this module to refuse a bad
choice before a study is written, so it stays standard library only.
"""

from __future__ import annotations

import importlib.util
import os
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.train import OnDone, OnEpoch

EXECUTORS = ("local", "ray")
LOCAL_RAY = "local"  # Ray's own name for "start a private instance in this process"
PROBE_TIMEOUT_S = 5.0

INSTALL_RAY = ("Ray is not installed: `pip install 'hp-tui[ray]'` installs it (on this machine, "
               "and with hp-tui's torch on every node of the cluster)")


class ExecutorError(ValueError):
    """A bad executor choice or an unusable cluster, worded for the user."""


def ray_installed() -> bool:
    try:
        return importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):  # a broken or blocked install
        return False


def ray_address(given: str | None) -> str:
    """The cluster a study should use: --ray-address, else $RAY_ADDRESS, else a private local
    instance that lives as long as the runner."""
    return (given or os.environ.get("RAY_ADDRESS") or LOCAL_RAY).strip()


def where(executor: str | None, address: str | None) -> str:
    """Where a study trains, for status lines: '' (this machine), 'on a private Ray' or
    'on Ray HOST:PORT'."""
    if executor != "ray":
        return ""
    return "on a private Ray" if address in (None, LOCAL_RAY) else f"on Ray {address}"


def check_ray_device(device: str | None) -> None:
    """Refuse a --device that a Ray task cannot be given: Ray picks each task's GPU itself."""
    text = (device or "auto").strip().lower()
    if text.startswith("cuda:"):
        raise ExecutorError(f"--device {device}: with --executor ray use --device cuda; Ray "
                            "gives each task a GPU of the node it runs on")
    if text not in ("auto", "cpu", "cuda"):
        raise ExecutorError(f"--device {device}: the ray executor trains on auto, cpu or cuda")


def check_executor(executor: str, address: str | None) -> None:
    """Refuse what is sure to fail: an unknown executor, Ray missing, or a cluster that does not
    answer (Ray itself would wait minutes on a wrong address before saying so)."""
    if executor not in EXECUTORS:
        raise ExecutorError(f"--executor {executor!r}: expected one of {', '.join(EXECUTORS)}")
    if executor == "local":
        if address:
            raise ExecutorError("--ray-address needs --executor ray")
        return
    if not ray_installed():
        raise ExecutorError(f"--executor ray: {INSTALL_RAY}")
    probe(ray_address(address))


def probe(address: str) -> None:
    """Check that something listens at a `host:port` or `ray://host:port` address."""
    if address in (LOCAL_RAY, "auto"):
        return  # Ray finds (or starts) these on this machine
    hostport = address.removeprefix("ray://")
    host, sep, port_text = hostport.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ExecutorError(f"--ray-address {address!r}: expected HOST:PORT (the head node's "
                            "address that `ray start --head` prints), ray://HOST:PORT or auto")
    try:
        with socket.create_connection((host.strip("[]"), int(port_text)), PROBE_TIMEOUT_S):
            pass
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise ExecutorError(
            f"--ray-address {address}: nothing answers there ({reason}). Is the head node up "
            "(`ray start --head` on it) and reachable from this machine?") from None


class Executor(ABC):
    """Where populations train: `engine.run.local.LocalExecutor`, or
    `engine.run.ray_cluster.RayExecutor`.

    `train` reports every epoch through on_epoch and each finished population through
    on_done(indices, outcomes) as soon as it ends, so the runner keeps finished trials while
    others still train; it raises the trainer's `Stopped` when should_stop() turns true. A
    `pruner` (engine.train's Pruner) goes to every population: successive halving's rungs.
    `resolve_device` turns --device into the device the populations will train on, raising
    `DeviceError` (engine.train) or `ExecutorError` (engine.run.executors) for one it cannot offer.
    `place` splits a data group's trials among the devices that one stands for (`--device auto`
    on a machine with a GPU: each population where it is predicted faster); by default all of
    them train on it.
    """

    @abstractmethod
    def resolve_device(self, name: str | None) -> Any: ...

    @abstractmethod
    def describe(self) -> str: ...

    def place(self, trials: Sequence[Any], splits: Any, device: Any, *, whole: bool = False
              ) -> list[tuple[Any, list[int], list[str]]]:
        """(device, indices into trials, a line for the log per choice made) for each device
        that gets trials; `whole`: populations must hold whole halving brackets."""
        return [(device, list(range(len(trials))), [])]

    @abstractmethod
    def label(self, device: Any) -> str: ...

    @abstractmethod
    def train(self, trials: Sequence[Any], splits: Any, device: Any, on_epoch: OnEpoch,
              should_stop: Callable[[], bool], on_done: OnDone, *, pruner: Any = None
              ) -> None: ...

    @abstractmethod
    def close(self) -> None: ...
