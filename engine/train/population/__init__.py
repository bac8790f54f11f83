"""The population trainer: many trials as one tensor program.

Trials are tiny, so a per-trial loop spends its time in Python and framework dispatch. Here
trials that share a batch size and a depth are stacked into one population and trained together,
with hand-written gradients (no autograd, no torch.optim) so that a step is a few dozen tensor ops
for the whole population, or one fused kernel when compiled.

Two memory layouts, chosen per trial by its widest layer and its depth:
- narrow (all widths <= NARROW_MAX, or one hidden layer of <= SHALLOW_NARROW_MAX units): the
  trial index is the last, fastest-varying dimension (W [out, in, N], activations
  [batch, width, N]); the tiny matmuls become broadcast products that vectorise across trials;
- wide: trial first (W [N, out, in]) and `torch.bmm`.

A trial's numbers do not depend on its population (size, order, neighbours): N is padded with idle
trials to a multiple of LANES (two AVX-512 vectors; ATen sums a [B, 1, 16] tensor over B in
another order than a [B, 1, 32] one, and vector loops then have no scalar tail, whose
transcendentals round differently), wide layers are padded to a multiple of WIDE_QUANTUM units,
the loss is computed trial-last in both layouts, and training runs on one CPU thread.

Narrower trials are zero-padded to the group's widths; padded units stay exactly zero (their
weights get zero gradients; with sigmoid, whose f(0) != 0, the activations are masked). Mixed
activations, losses and optimizers within a group are selected per trial with `torch.where`. Each
trial keeps its own seed recipe (see `engine.train.reference`), shuffle, hyperparameters and
optimizer state; a trial whose batch loss or weights go non-finite is frozen by `torch.where` at
its last finite weights, so NaNs never reach other trials (no op mixes trials).

Modules, each importing only those before it: `grouping` (which trials train together), `program`
(the step math), `state` (a population's tensors and the eager steps that update them),
`graphs` (the eager step captured as a CUDA graph, behind a flag), `batching` and `validation`
(the data a population trains and validates on), `compiled` (when and how the step is
compiled), `loop` (the epochs and `train_population`).
"""

from engine.train.population.batching import EPOCH_DATA_BYTES
from engine.train.population.compiled import compile_available, compile_saving, should_compile
from engine.train.population.graphs import graphs_wanted
from engine.train.population.grouping import (
    LANES,
    NARROW_MAX,
    POP_STATE_BYTES,
    SHALLOW_NARROW_MAX,
    WIDE_QUANTUM,
    Group,
    group_trials,
)
from engine.train.population.loop import OnDone, OnEpoch, Pruner, Stopped, train_population

__all__ = [
    "EPOCH_DATA_BYTES",
    "LANES",
    "NARROW_MAX",
    "POP_STATE_BYTES",
    "SHALLOW_NARROW_MAX",
    "WIDE_QUANTUM",
    "Group",
    "OnDone",
    "OnEpoch",
    "Pruner",
    "Stopped",
    "compile_available",
    "compile_saving",
    "graphs_wanted",
    "group_trials",
    "should_compile",
    "train_population",
]
