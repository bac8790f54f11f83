"""A node of the cluster dies mid-study: only its population is lost, that population is rerun on
another node, and the study completes with each epoch reported once (Ray's multi-node test
cluster, every node a set of processes on this machine)."""

from __future__ import annotations

import logging
import os
import signal
from typing import Any

import pytest

ray = pytest.importorskip("ray")
from ray._private import ray_constants
from ray.cluster_utils import Cluster

from engine.run.local import LocalExecutor
from engine.run.ray_cluster import RayExecutor
from engine.spec.config import DataConfig, TrialConfig
from engine.train import Trial, load_splits
from tests.proc_helpers import population_pids
from tests.ray_helpers import CPU, Recorder, assert_same

DATA = DataConfig(train_size=200, val_size=100)
pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture
def cluster():
    """A head that runs nothing (0 CPUs) and two 1-CPU worker nodes."""
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    nodes = [c.add_node(num_cpus=1) for _ in range(2)]
    c.wait_for_nodes()
    ray.init(address=c.address, logging_level=logging.WARNING)
    try:
        yield c, nodes
    finally:
        ray.shutdown()
        c.shutdown()


def test_a_dead_node_costs_only_its_population(cluster, caplog):
    c, nodes = cluster
    splits = load_splits(DATA)
    # two populations (one and two hidden layers), a few seconds each: one per node
    trials = [Trial(TrialConfig(data=DATA, hidden=hidden, epochs=150, batch_size=8), seed)
              for hidden in ((10,), (8, 4)) for seed in (1, 2)]
    expected = Recorder()
    LocalExecutor(1).train(trials, splits, CPU, expected.on_epoch, lambda: False,
                           expected.on_done)
    executor = RayExecutor(c.address)  # uses the connection made above
    assert "3 node(s), 2 CPUs" in executor.describe()
    removed: list[Any] = []
    rec = Recorder()

    def on_epoch(report: list[tuple[int, Any, str]]) -> None:
        rec.on_epoch(report)
        if not removed and len(rec.epochs) == len(trials):  # both populations are training
            removed.append(nodes[0])
            kill_machine(c, nodes[0])

    with caplog.at_level(logging.WARNING, logger="hp-tui.ray"):
        executor.train(trials, splits, CPU, on_epoch, lambda: False, rec.on_done)
    assert removed
    assert caplog.text.count("rerunning it, attempt 2") == 1  # the other population went on
    assert_same(rec, expected, len(trials))


def kill_machine(c: Cluster, node: Any) -> None:
    """The node vanishes as a machine would: its workers too (a worker outliving its raylet can
    finish its task and stream the results, as nothing was lost)."""
    raylet = node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid
    workers = population_pids(raylet)
    assert workers, "the node runs no population"
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    c.remove_node(node, allow_graceful=False)
