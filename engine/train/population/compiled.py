"""Compiling a population's step: when it pays, how, and the compiled programs' cache.

`compile_available` and `should_compile` decide; `_compile` traces a step program (or the
validation program) to one FX graph and compiles it with Inductor, cached per shapes in
`_COMPILED`; `steppers` hands the epoch loop its step functions: the compiled program (and the
eager `Program` for a partial last batch), or `FlatStep`. Separate because it is the only part
that touches torch's compiler internals.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Sequence
from typing import Any

import torch

from engine.spec import parameters
from engine.train.data import Splits
from engine.train.population.batching import batch_slice, epoch_data, segment_steps
from engine.train.population.graphs import GraphStep
from engine.train.population.program import Program, StepFn, ValProgram
from engine.train.population.state import FlatStep, Population, Stepper, functional_step
from engine.train.population.validation import val_chunk

# Auto-compile: only where the time it saves exceeds what it costs. Measured here (notebook
# network, 41 parameters, one core): a step takes ~110 us + ~0.7 us per trial eager and
# ~20 us + ~0.2 us per trial compiled; a compile ~4 s with a warm Inductor cache, ~15 s cold.
# On a GPU a compiled step mostly saves kernel launches (a few hundred us), and Triton compiles
# take longer. See docs/performance.md.
COMPILE_COST_S = {"cpu": 10.0, "cuda": 30.0}
SAVED_PER_STEP_S = {"cpu": (90e-6, 0.5e-6), "cuda": (300e-6, 0.0)}  # fixed, per 41-param trial


# --- compiling ------------------------------------------------------------------------------

_COMPILED: dict[tuple[Any, ...], StepFn] = {}
_COMPILE_BROKEN: list[str] = []  # the first failure's message: do not try again in this process


def compile_available(device: torch.device) -> bool:
    """Whether compiling can work here: Inductor needs a C++ compiler on CPU (Triton on CUDA);
    HP_TUI_NO_COMPILE=1 turns compiling off."""
    if _COMPILE_BROKEN or os.environ.get("HP_TUI_NO_COMPILE") == "1":
        return False
    if device.type == "cpu":
        return any(shutil.which(c) for c in (os.environ.get("CXX", "g++"), "c++", "clang++"))
    return device.type == "cuda"


def should_compile(n_trials: int, steps: int, device: torch.device,
                   params_per_trial: int = 41) -> bool:
    """Whether compiling saves more time than it costs (see COMPILE_COST_S): a small study
    never waits on the compiler."""
    return compile_saving(n_trials, device, params_per_trial, steps) is not None


def compile_saving(n_trials: int, device: torch.device, params_per_trial: int = 41,
                   steps: int | None = None) -> tuple[float, float] | None:
    """(seconds a compiled step saves, seconds the compile costs) for a population of n_trials
    on `device`, or None where it would not be compiled (no compiler; with `steps`, when the
    saving does not pay for the compile). What `--device auto` predicts with."""
    if not compile_available(device):
        return None
    kind = "cuda" if device.type == "cuda" else "cpu"
    fixed, per_trial = SAVED_PER_STEP_S[kind]
    per_step = fixed + per_trial * n_trials * params_per_trial / 41
    if steps is not None and steps * per_step < COMPILE_COST_S[kind]:
        return None
    return per_step, COMPILE_COST_S[kind]


def _compile(program: Program | ValProgram, args: Sequence[torch.Tensor]) -> StepFn:
    """The step program traced to one FX graph and compiled by Inductor for these shapes.

    Called directly rather than through torch.compile: at N = 512 a call costs ~56 us this way
    (the fused kernel ~40 us) and ~77 us through torch.compile's guards and wrappers.
    """
    key = (type(program).__name__, program.spec, program.keys,
           tuple((tuple(a.shape), a.stride(), a.dtype, str(a.device)) for a in args))
    if key not in _COMPILED:
        with warnings.catch_warnings():  # torch's own use of torch.jit, nothing for our users
            warnings.simplefilter("ignore", DeprecationWarning)
            import torch._inductor.config as inductor_config
            from torch._inductor.compile_fx import compile_fx
            from torch.fx.experimental.proxy_tensor import make_fx

            # one small kernel: a pool of compile subprocesses costs more (~1.5 s) than it saves
            inductor_config.compile_threads = 1
            graph = make_fx(program)(*args)
            compiled: Any = compile_fx(graph, list(args))
        _COMPILED[key] = compiled
    return _COMPILED[key]


def steppers(pop: Population, splits: Splits, device: torch.device, compile: bool | None,
             graphs: bool = False) -> tuple[Stepper, Stepper]:
    """(full steps, the partial last batch): the compiled step program and the eager one when
    compiling is wanted and possible, else FlatStep for both; with `graphs`, the eager
    FlatStep through GraphStep (captured on CUDA for the full steps)."""
    compiled = None if graphs else _compiled_step(pop, splits, device, compile)
    if compiled is None:
        flat = FlatStep(pop)
        if graphs:
            return GraphStep(flat, capture=True), GraphStep(flat, capture=False)
        return flat, flat
    return functional_step(pop, compiled), functional_step(pop, pop.program)


def _compiled_step(pop: Population, splits: Splits, device: torch.device,
                   compile: bool | None) -> StepFn | None:
    """The compiled step program when wanted and possible, else None."""
    batch = pop.configs[0].batch_size
    steps = max(pop.epochs) * (len(splits.train) // batch)
    wanted = (should_compile(pop.np, steps, device, parameters(pop.sizes)) if compile is None
              else compile)
    if not wanted or steps == 0 or not compile_available(device):
        return None
    # example inputs with the shapes and strides of every full step of this group
    x_t = splits.train.x.t().contiguous().to(device)
    perms = torch.zeros(pop.np, len(splits.train), dtype=torch.long, device=device)
    k = segment_steps(pop, batch, len(splits.train) // batch, x_t.shape[0]) * batch
    xs, ys = epoch_data(pop, x_t, splits.train.y.to(device), perms[:, :k])
    xb, yb = batch_slice(pop, xs, ys, 0, batch)
    eta, bc2s = pop.step_sizes(1)
    weight = torch.tensor(batch / len(splits.train), dtype=torch.float64, device=device)
    try:
        step = _compile(pop.program, [*pop.state, *pop.consts, xb, yb, eta[0], bc2s[0], weight])
        if pop.narrow:
            chunk = val_chunk(pop, len(splits.val))
            x_val = splits.val.x[:chunk].to(device).unsqueeze(-1)
            y_val = splits.val.y[:chunk].to(device).view(-1, 1, 1)
            pop.val_compiled = _compile(pop.val_program, [*pop.params, *pop.consts, x_val, y_val])
        return step
    except Exception as e:  # Inductor raises many kinds; all of them mean: train eagerly
        _COMPILE_BROKEN.append(str(e))
        warnings.warn(f"torch.compile is not usable here, training eagerly: {e}", stacklevel=4)
        return None
