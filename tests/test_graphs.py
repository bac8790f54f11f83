"""GraphStep, the eager step that CUDA graphs capture: on the CPU it runs uncaptured, which
checks what capture relies on (FlatStep's numbers, bit for bit, and no tensor that moves from
step to step, epoch to epoch, or between the full steps and the partial last batch)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import torch

from engine.spec import SHUFFLE_KEYED, DataConfig, TrialConfig
from engine.train import Trial, load_splits, train_population
from engine.train.population import graphs
from engine.train.population.graphs import GraphStep, graphs_wanted
from tests.trainer_helpers import assert_identical

pytestmark = pytest.mark.numerics

DATA = DataConfig(train_size=205, val_size=100)


@pytest.fixture(scope="module")
def splits():
    return load_splits(DATA)


def trials() -> list[Trial]:
    """Four optimizers, two activations and losses, momentum, a trial that diverges in its
    third epoch, differing epochs, a partial last batch (205 = 20 * 10 + 5), both shuffle
    recipes."""
    out = []
    for i, (opt, act, lr) in enumerate([("sgd", "relu", 0.1), ("adam", "tanh", 0.01),
                                        ("rmsprop", "relu", 0.003), ("sgd", "relu", 2.0),
                                        ("adamw", "relu", 0.01), ("sgd", "relu", 0.05)]):
        config = TrialConfig(data=DATA, hidden=(6,), optimizer=opt, activation=act, lr=lr,
                             momentum=0.9 if i == 5 else 0.0, epochs=3 if i == 3 else 2 + i % 2,
                             loss="bce_with_logits" if i == 3 else "mse")
        out.append(Trial(config, 0 if i == 3 else 10 + i, SHUFFLE_KEYED if i % 2 else 1))
    return out


def test_graph_steps_give_flat_steps_numbers_bit_for_bit(splits):
    eager = train_population(trials(), splits, compile=False, graphs=False)
    graphed = train_population(trials(), splits, compile=False, graphs=True)
    assert {o.status for o in eager} == {"completed", "diverged"}
    for a, b in zip(eager, graphed, strict=True):
        assert_identical(a, b)


def test_no_tensor_moves(splits, monkeypatch):
    """What a replay reads and writes stays where the capture found it: every call of every
    GraphStep sharing a FlatStep sees the same addresses, over every step and epoch."""
    seen: dict[int, set[tuple[int, ...]]] = {}
    inputs: dict[int, set[tuple[int, ...]]] = {}
    run = GraphStep._run

    def recording(self: GraphStep) -> None:
        run(self)
        flat, pop = self.flat, self.pop
        state = [flat.p, flat.g, *(t for t in (flat.m, flat.v, flat.u) if t is not None),
                 pop.active, pop.loss_sum]
        seen.setdefault(id(flat), set()).add(tuple(t.data_ptr() for t in state))
        assert self.inputs is not None
        inputs.setdefault(id(self), set()).add(tuple(t.data_ptr() for t in self.inputs))

    monkeypatch.setattr(GraphStep, "_run", recording)
    train_population(trials(), splits, compile=False, graphs=True)
    assert seen and all(len(ptrs) == 1 for ptrs in seen.values())
    assert len(inputs) == 2 * len(seen)  # the full steps' and the last batch's, per FlatStep
    assert all(len(ptrs) == 1 for ptrs in inputs.values())


class HalfAtEpochOne:
    """A pruner that stops every other trial after the first epoch (the population is then
    compacted and its steps built again)."""

    rungs = (1,)

    def stop(self, epochs: int, trials: Sequence[Trial], curves: Sequence[Sequence[float]]
             ) -> set[int]:
        return set(range(0, len(trials), 2))


def test_compaction_builds_graph_steps_again(splits):
    many = [Trial(t.config.replace(epochs=3), t.seed + k, t.shuffle)
            for k in range(0, 40, 8) for t in trials()[:3]]
    eager = train_population(many, splits, compile=False, graphs=False, pruner=HalfAtEpochOne())
    graphed = train_population(many, splits, compile=False, graphs=True, pruner=HalfAtEpochOne())
    assert "pruned" in {o.status for o in eager}
    for a, b in zip(eager, graphed, strict=True):
        assert_identical(a, b)


def test_graphs_are_asked_for_or_set_in_the_environment(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert graphs_wanted(True, cpu) and not graphs_wanted(False, cuda)
    monkeypatch.delenv("HP_TUI_CUDA_GRAPHS", raising=False)
    assert not graphs_wanted(None, cuda)
    monkeypatch.setenv("HP_TUI_CUDA_GRAPHS", "1")
    assert graphs_wanted(None, cuda) and not graphs_wanted(None, cpu)


def test_nothing_is_captured_off_cuda(splits):
    from engine.train.population.grouping import group_trials
    from engine.train.population.state import FlatStep, Population

    pop = Population(group_trials(trials())[0], splits.n_features, torch.device("cpu"))
    step = GraphStep(FlatStep(pop), capture=True)
    assert not step.capture and graphs.WARMUP >= 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="capture needs a CUDA GPU")
def test_captured_steps_on_cuda_give_eager_numbers(splits):  # pragma: no cover - GPU only
    eager = train_population(trials(), splits, device="cuda", compile=False, graphs=False)
    graphed = train_population(trials(), splits, device="cuda", compile=False, graphs=True)
    for a, b in zip(eager, graphed, strict=True):
        assert_identical(a, b)
