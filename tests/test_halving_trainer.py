"""Successive halving inside the population trainer: rungs stop trials, the population is
compacted, and a surviving trial's numbers are bitwise those of the same trial trained without
halving (one process, one machine: both runs see the same CPU)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pytest
import torch

from engine.spec.config import DataConfig, TrialConfig
from engine.study import halving
from engine.train import LANES, Trial, load_splits, train_population
from engine.train.population import loop, state

pytestmark = pytest.mark.numerics

DATA = DataConfig(train_size=200, val_size=100)


@dataclass
class ConfigPruner:
    """Ranks configurations (their seeds together) with engine.study.halving.decide."""

    rungs: tuple[int, ...]
    reduction: int

    def stop(self, epochs: int, trials: Sequence[Trial], curves: Sequence[Sequence[float]]
             ) -> set[int]:
        by_config: dict[TrialConfig, list[Sequence[float]]] = {}
        for t, c in zip(trials, curves, strict=True):
            by_config.setdefault(t.config, []).append(c)
        stopped = halving.decide(self.rungs, self.reduction, by_config, epochs)
        return {n for n, t in enumerate(trials) if stopped.get(t.config) == epochs}


def population(hidden: tuple[int, ...], configs: int, seeds: int = 2) -> list[Trial]:
    opts = ("adam", "sgd", "rmsprop", "adamw")
    out = []
    for c in range(configs):
        opt = opts[c % len(opts)]
        lr = (0.002 + 0.003 * c) if opt != "sgd" else 0.05 + 0.02 * c
        cfg = TrialConfig(data=DATA, hidden=hidden, optimizer=opt, lr=lr, momentum=0.9,
                          epochs=4, activation="tanh" if c % 3 else "relu")
        out += [Trial(cfg, 1000 + s) for s in range(seeds)]
    return out


@pytest.fixture(scope="module")
def splits():
    return load_splits(DATA)


@pytest.mark.parametrize("hidden", [(10,), (20, 20)], ids=["narrow", "wide"])
def test_survivors_are_bitwise_those_trained_without_halving(splits, hidden, monkeypatch):
    trials = population(hidden, configs=20)  # 40 trials: 64 lanes, 32 after the first rung
    pruner = ConfigPruner(halving.rungs(4, 2), 2)
    assert pruner.rungs == (1, 2)
    compacted: list[int] = []
    original = state.Population.compact

    def spy(self, keep):
        compacted.append(len(keep))
        original(self, keep)

    monkeypatch.setattr(state.Population, "compact", spy)
    full = train_population(trials, splits, compile=False)
    halved = train_population(trials, splits, compile=False, pruner=pruner)
    assert compacted and compacted[0] <= LANES  # the population really shrank
    statuses = [o.status for o in halved]
    # 20 configurations, reduction 2: 10 go on after epoch 1, 5 after epoch 2
    assert statuses.count("completed") + statuses.count("diverged") == 5 * 2
    assert [len(o.history) for o in halved].count(1) == 10 * 2
    for t, a, b in zip(trials, full, halved, strict=True):
        n = len(b.history)
        assert [m.val_acc for m in a.history[:n]] == [m.val_acc for m in b.history]
        assert [m.val_loss for m in a.history[:n]] == [m.val_loss for m in b.history]
        assert [m.train_loss for m in a.history[:n]] == [m.train_loss for m in b.history]
        if b.status == "completed":
            for (wa, ba), (wb, bb) in zip(a.weights, b.weights, strict=True):
                assert torch.equal(wa, wb) and torch.equal(ba, bb)
        else:
            assert b.status == "pruned" and n in pruner.rungs and b.weights, t


def test_seeds_of_a_configuration_stop_together(splits):
    trials = population((10,), configs=9, seeds=3)
    pruner = ConfigPruner(halving.rungs(4, 3), 3)  # one rung, after epoch 1: 3 of 9 go on
    out = train_population(trials, splits, compile=False, pruner=pruner)
    by_config: dict[TrialConfig, set[str]] = {}
    for t, o in zip(trials, out, strict=True):
        by_config.setdefault(t.config, set()).add(o.status)
    assert all(len(s) == 1 for s in by_config.values())
    assert sum(s == {"completed"} for s in by_config.values()) == 3
    assert all(len(o.history) == (4 if o.status == "completed" else 1) for o in out)


def test_a_rung_is_reported_with_the_pruned_status(splits):
    trials = population((10,), configs=4, seeds=1)
    seen: list[tuple[int, str]] = []
    train_population(trials, splits, compile=False, pruner=ConfigPruner((2,), 4),
                     on_epoch=lambda rep: seen.extend((i, s) for i, _, s in rep))
    assert sum(s == "pruned" for _, s in seen) == 3
    assert sum(s == "completed" for _, s in seen) == 1
    assert len(seen) == 4 * 2 + 2  # everyone to the rung, one trial on to epoch 4


def test_compaction_keeps_every_per_trial_tensor_in_step(splits):
    trials = population((10,), configs=20)
    pop = state.Population(loop.group_trials(trials, "cpu")[0], splits.n_features,
                           torch.device("cpu"))
    step = state.FlatStep(pop)
    keep = list(range(0, 40, 3))
    before = [t.clone() for t in pop.params]
    step.put_back()
    pop.compact(keep)
    assert pop.np == LANES and pop.n == len(keep)
    assert pop.origin == keep and len(pop.generators) == len(keep)
    for old, new in zip(before, pop.params, strict=True):
        assert torch.equal(old[..., keep], new[..., : len(keep)])
        assert not new[..., len(keep):].any()
    assert all(v.shape[-1] == LANES for v in pop.hp.values())
