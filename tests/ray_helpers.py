"""What the Ray tests share: a recorder of the executor's callbacks, and the comparison of two
recordings bit for bit."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch

from engine.train import Trial

CPU = torch.device("cpu")


class Recorder:
    """on_epoch / on_done as the runner's writer would use them."""

    def __init__(self) -> None:
        self.epochs: dict[int, list[Any]] = defaultdict(list)
        self.outcomes: dict[int, Any] = {}

    def on_epoch(self, report: list[tuple[int, Any, str]]) -> None:
        for i, metrics, _status in report:
            self.epochs[i].append(metrics)

    def on_done(self, indices: list[int], outcomes: list[Any]) -> None:
        for i, outcome in zip(indices, outcomes, strict=True):
            assert i not in self.outcomes, f"trial {i} finished twice"
            self.outcomes[i] = outcome


def run(ex: Any, trials: list[Trial], splits: Any, should_stop: Any = lambda: False,
        recorder: Recorder | None = None) -> Recorder:
    rec = recorder or Recorder()
    ex.train(trials, splits, CPU, rec.on_epoch, should_stop, rec.on_done)
    return rec


def assert_same(a: Recorder, b: Recorder, n: int) -> None:
    assert sorted(a.outcomes) == sorted(b.outcomes) == list(range(n))
    for i in range(n):
        assert a.epochs[i] == b.epochs[i], f"trial {i}: epochs differ"
        assert a.outcomes[i].history == b.outcomes[i].history
        assert a.outcomes[i].status == b.outcomes[i].status
        for (wa, ba), (wb, bb) in zip(a.outcomes[i].weights, b.outcomes[i].weights, strict=True):
            assert torch.equal(wa, wb) and torch.equal(ba, bb)
