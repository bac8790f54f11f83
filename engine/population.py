"""The population trainer: many trials as one tensor program (DESIGN.md section 4).

Trials are tiny, so a per-trial loop spends its time in Python and framework dispatch. Here
trials that share a batch size and a depth are stacked into one population and trained together,
with hand-written gradients (no autograd, no torch.optim) so that a step is a few dozen tensor ops
for the whole population, or one fused kernel when compiled.

Two memory layouts, chosen per trial by its widest layer and its depth:
- narrow (all widths <= NARROW_MAX, or one hidden layer of <= SHALLOW_NARROW_MAX units): the
  trial index is the last, fastest-varying dimension
  (W [out, in, N], activations [batch, width, N]); the tiny matmuls become broadcast products
  that vectorise across trials;
- wide: trial first (W [N, out, in]) and `torch.bmm`.

A trial's numbers do not depend on its population (size, order, neighbours): N is padded with idle
trials to a multiple of LANES (two AVX-512 vectors; ATen sums a [B, 1, 16] tensor over B in
another order than a [B, 1, 32] one, and vector loops then have no scalar tail, whose
transcendentals round differently), wide layers are padded to a multiple of WIDE_QUANTUM units,
the loss is computed trial-last in both layouts, and training runs on one CPU thread.

Narrower trials are zero-padded to the group's widths; padded units stay exactly zero (their weights
get zero gradients; with sigmoid, whose f(0) != 0, the activations are masked). Mixed
activations, losses and optimizers within a group are selected per trial with `torch.where`. Each
trial keeps its own seed recipe (see `engine.reference`), shuffle, hyperparameters and optimizer
state; a trial whose batch loss or weights go non-finite is frozen by `torch.where` at its last
finite weights, so NaNs never reach other trials (no op mixes trials).
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import math
import os
import shutil
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch

from engine.config import TrialConfig
from engine.data import Split, Splits
from engine.reference import EpochMetrics, Trial, TrialOutcome, init_weights

NARROW_MAX = 16  # widest layer for the trial-last layout
# ... and with one hidden layer: no [width, width] layer, so the trial-last products grow only
# linearly with the width ([B, W, F, N] and [B, 1, W, N])
SHALLOW_NARROW_MAX = 64
WIDE_QUANTUM = 16  # wide layers are padded to a multiple of this many units
LANES = 32  # pad narrow populations to a multiple of this (see the module docstring)
VAL_BYTES = 2 << 20  # one validation chunk's widest activation on CPU: stays in cache
VAL_BYTES_GPU = 256 << 20  # on a GPU, fewer and larger chunks
POP_STATE_BYTES = 12 << 20  # cap of a CPU population's parameters and optimizer state
PERM_THREADS = 16  # threads drawing the shuffles of a GPU population
EPOCH_DATA_BYTES = 64 << 20  # shuffled training data gathered at once (a whole epoch, mostly)
POLL_S = 0.2  # how often should_stop is asked

# Auto-compile: only where the time it saves exceeds what it costs. Measured here (notebook
# network, 41 parameters, one core): a step takes ~110 us + ~0.7 us per trial eager and
# ~20 us + ~0.2 us per trial compiled; a compile ~4 s with a warm Inductor cache, ~15 s cold.
# On a GPU a compiled step mostly saves kernel launches (a few hundred us), and Triton compiles
# take longer. See docs/performance.md.
COMPILE_COST_S = {"cpu": 10.0, "cuda": 30.0}
SAVED_PER_STEP_S = {"cpu": (90e-6, 0.5e-6), "cuda": (300e-6, 0.0)}  # fixed, per 41-param trial

OnEpoch = Callable[[list[tuple[int, EpochMetrics, str]]], None]

_ADAM_BETAS = (0.9, 0.999)
_RMS_ALPHA = 0.99
_EPS = 1e-8


class Stopped(Exception):
    """Raised by `train_population` when `should_stop()` said so; nothing is returned."""


# --- the static program of a group ------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """What a group's step program depends on; one compiled program per distinct Spec."""

    layout: str  # "narrow" (trial last) | "wide" (trial first, bmm)
    depth: int  # number of Linear layers
    activations: tuple[str, ...]  # kinds present, sorted
    losses: tuple[str, ...]
    optimizers: tuple[str, ...]  # among "adam" (adam and adamw), "rmsprop", "sgd"
    momentum: bool  # some sgd/rmsprop trial has momentum > 0
    l2: bool  # some trial has coupled weight decay (sgd, adam, rmsprop)
    decoupled: bool  # some adamw trial has weight decay
    unit_mask: bool  # padded units and a sigmoid activation: mask the padded activations


def _spec_for(configs: Sequence[TrialConfig], layout: str, padded: bool) -> Spec:
    optims = {"adam" if c.optimizer == "adamw" else c.optimizer for c in configs}
    acts = tuple(sorted({c.activation for c in configs}))
    return Spec(
        layout=layout,
        depth=len(configs[0].hidden) + 1,
        activations=acts,
        losses=tuple(sorted({c.loss for c in configs})),
        optimizers=tuple(sorted(optims)),
        momentum=any(c.momentum > 0 and c.optimizer in ("sgd", "rmsprop") for c in configs),
        l2=any(c.weight_decay > 0 and c.optimizer != "adamw" for c in configs),
        decoupled=any(c.weight_decay > 0 and c.optimizer == "adamw" for c in configs),
        unit_mask=padded and "sigmoid" in acts,
    )


# --- elementwise math (layout-agnostic: per-trial vectors are pre-shaped to broadcast) --------


def _act(kind: str, h: torch.Tensor) -> torch.Tensor:
    if kind == "relu":
        return torch.relu(h)
    if kind == "sigmoid":
        return torch.sigmoid(h)
    if kind == "tanh":
        return torch.tanh(h)
    if kind == "leaky_relu":
        return torch.where(h > 0, h, h * 0.01)
    if kind == "elu":
        return torch.where(h > 0, h, torch.expm1(h))
    if kind == "gelu":
        return h * 0.5 * (1.0 + torch.erf(h * math.sqrt(0.5)))
    if kind == "silu":
        return h * torch.sigmoid(h)
    raise ValueError(f"unknown activation {kind!r}")


def _act_grad(kind: str, da: torch.Tensor, h: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """d(loss)/dh from d(loss)/da; formulas follow ATen's backward kernels, which are called
    where they give the same numbers as the formula (one op instead of two or three; relu's,
    a compare and a select, was ~20% of the notebook's eager step)."""
    if kind == "relu":  # where(a > 0, da, 0)
        return torch.ops.aten.threshold_backward(da, a, 0)
    if kind == "sigmoid":  # da * (1 - a) * a
        return torch.ops.aten.sigmoid_backward(da, a)
    if kind == "tanh":
        return da * (1 - a * a)
    if kind == "leaky_relu":  # where(h > 0, da, da * 0.01)
        return torch.ops.aten.leaky_relu_backward(da, h, 0.01, False)
    if kind == "elu":
        return torch.where(h > 0, da, da * torch.exp(h))
    if kind == "gelu":
        cdf = 0.5 * (1.0 + torch.erf(h * math.sqrt(0.5)))
        pdf = torch.exp(-0.5 * h * h) * (2 / math.sqrt(math.pi) * math.sqrt(0.5) * 0.5)
        return da * (cdf + h * pdf)
    if kind == "silu":
        s = torch.sigmoid(h)
        return da * s * (1 + h * (1 - s))
    raise ValueError(f"unknown activation {kind!r}")


def _select(kinds: tuple[str, ...], masks: dict[str, torch.Tensor],
            fn: Callable[[str], torch.Tensor]) -> torch.Tensor:
    """fn(kind) for the kinds present, each trial taking its own (where-selected)."""
    out = fn(kinds[0])
    for kind in kinds[1:]:
        out = torch.where(masks[kind], fn(kind), out)
    return out


def _loss_elems(kind: str, z: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-sample loss, d(loss)/dz per sample before the 1/batch mean)."""
    if kind == "bce_with_logits":
        loss = (1 - y) * z - torch.nn.functional.logsigmoid(z)
        return loss, torch.sigmoid(z) - y
    p = torch.sigmoid(z)
    sigmoid_backward = torch.ops.aten.sigmoid_backward  # g * (1 - p) * p, in one op
    if kind == "mse":
        d = p - y
        return d * d, sigmoid_backward(2 * d, p)
    if kind == "bce":
        loss = -(y * torch.clamp(torch.log(p), min=-100)
                 + (1 - y) * torch.clamp(torch.log(1 - p), min=-100))
        # BCELoss's backward divides by max(p(1-p), 1e-12): zero gradient once sigmoid saturates
        return loss, sigmoid_backward((p - y) / torch.clamp((1 - p) * p, min=1e-12), p)
    raise ValueError(f"unknown loss {kind!r}")


def _loss_value(kind: str, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return _loss_elems(kind, z, y)[0]


# --- layouts --------------------------------------------------------------------------------


class _Narrow:
    """Trial index last: x [B, I, N], W [O, I, N], b [O, N], per-trial vectors [N]."""

    @staticmethod
    def linear(a: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a.unsqueeze(1) * w).sum(2) + b

    @staticmethod
    def grads(d: torch.Tensor, a: torch.Tensor, out: Tensors | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
        if out is not None:  # the eager step's flat gradient buffer
            return (torch.sum(d.unsqueeze(2) * a.unsqueeze(1), 0, out=out[0]),
                    torch.sum(d, 0, out=out[1]))
        return (d.unsqueeze(2) * a.unsqueeze(1)).sum(0), d.sum(0)

    @staticmethod
    def back(d: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if w.shape[0] == 1:  # from the output layer: the same products, no sum of one term
            return d * w
        return (d.unsqueeze(2) * w).sum(1)

    @staticmethod
    def batch_sum(t: torch.Tensor) -> torch.Tensor:  # [B, 1, N] -> [N]
        return t.sum((0, 1))

    @staticmethod
    def trial_sum(t: torch.Tensor) -> torch.Tensor:  # param -> [N]
        return t.reshape(-1, t.shape[-1]).sum(0)


class _Wide:
    """Trial index first: x [N, B, I], W [N, O, I], b [N, 1, O], per-trial vectors [N, 1, 1]."""

    @staticmethod
    def linear(a: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(b, a, w.transpose(1, 2))

    @staticmethod
    def grads(d: torch.Tensor, a: torch.Tensor, out: Tensors | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
        # the output layer (one unit): a product summed over the batch, half of bmm's cost for
        # these tiny matrices
        gw = ((d * a).sum(1, keepdim=True) if d.shape[2] == 1
              else torch.bmm(d.transpose(1, 2), a))
        if out is not None:  # the eager step's flat buffer (bmm into its strided views: 3x slower)
            return out[0].copy_(gw), torch.sum(d, 1, keepdim=True, out=out[1])
        return gw, d.sum(1, keepdim=True)

    @staticmethod
    def back(d: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if w.shape[1] == 1:  # from the output layer: the products bmm would form, ~10x cheaper
            return d * w
        return torch.bmm(d, w)

    @staticmethod
    def batch_sum(t: torch.Tensor) -> torch.Tensor:  # [N, B, 1] -> [N, 1, 1]
        return t.sum((1, 2), keepdim=True)

    @staticmethod
    def trial_sum(t: torch.Tensor) -> torch.Tensor:  # param -> [N, 1, 1]
        return t.sum((1, 2), keepdim=True)


_LAYOUTS: dict[str, type[_Narrow] | type[_Wide]] = {"narrow": _Narrow, "wide": _Wide}


# --- one training step ------------------------------------------------------------------------

Tensors = list[torch.Tensor]


class Program:
    """The step program of a Spec: forward, hand-written backward, optimizer update, freezing.

    It works on flat tensor arguments so that a compiled version is called with no pytree work:
        step(*state, *consts, x, y, eta, bc2s, weight) -> new state (a tuple)
    state = params [W0, b0, W1, b1, ...] + m + v + u (optimizer state, each present only when a
    kind of the group needs it) + [active, acc]; consts = the per-trial hyperparameter tensors in
    `hp_keys` order; x, y = this step's batch (x [B, F, N] narrow, [N, B, F] wide; y [B, 1, N]
    in both); eta = this step's per-trial step size; bc2s = Adam's
    sqrt(1 - beta2^t); weight = the batch's share of the epoch (acc += batch loss * weight).
    """

    def __init__(self, spec: Spec, hp_keys: Sequence[str]) -> None:
        self.spec, self.keys = spec, tuple(hp_keys)
        self.lay = _LAYOUTS[spec.layout]
        n_params = 2 * spec.depth
        uses_v = "adam" in spec.optimizers or "rmsprop" in spec.optimizers
        counts = [n_params, n_params * ("adam" in spec.optimizers), n_params * uses_v,
                  n_params * spec.momentum]
        ends = [sum(counts[: i + 1]) for i in range(4)]
        self.slices = [slice(a, b) for a, b in zip([0, *ends[:-1]], ends, strict=True)]
        self.n_state = ends[-1] + 2

    def __call__(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        spec, lay = self.spec, self.lay
        params, m, v, u = (list(args[s]) for s in self.slices)
        active, acc = args[self.n_state - 2], args[self.n_state - 1]
        k = self.n_state + len(self.keys)
        hp = dict(zip(self.keys, args[self.n_state : k], strict=True))
        x, y, eta, bc2s, weight = args[k : k + 5]
        batch_loss, grads = self._loss_and_grads(params, hp, x, y)
        new_p, new_m, new_v, new_u = [], [], [], []
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            p2, m2, v2, u2 = _update(spec, p, g, m[i] if m else None, v[i] if v else None,
                                     u[i] if u else None, hp, eta, bc2s)
            new_p.append(p2)
            new_m += [m2] if m2 is not None else []
            new_v += [v2] if v2 is not None else []
            new_u += [u2] if u2 is not None else []
        # a trial whose loss or new weights are non-finite stops here, keeping its old weights
        total = batch_loss
        for p2 in new_p:
            total = total + lay.trial_sum(p2)
        still = active & torch.isfinite(total)
        out_p = [torch.where(still, p2, p) for p2, p in zip(new_p, params, strict=True)]
        acc = acc + batch_loss.to(acc.dtype) * weight
        return (*out_p, *new_m, *new_v, *new_u, still, acc)

    def _loss_and_grads(self, params: Tensors, hp: dict[str, torch.Tensor], x: torch.Tensor,
                        y: torch.Tensor, grad_out: Tensors | None = None
                        ) -> tuple[torch.Tensor, Tensors]:
        """Per-trial mean batch loss and the gradients of every parameter (written into
        grad_out when given)."""
        spec, lay = self.spec, self.lay
        ins, pre = [x], []
        a, z = x, x
        for layer in range(spec.depth):
            z = lay.linear(a, params[2 * layer], params[2 * layer + 1])
            if layer < spec.depth - 1:
                h = z
                a = _select(spec.activations, hp, partial(_act, h=h))
                if spec.unit_mask:
                    a = a * hp[f"units{layer}"]
                pre.append(h)
                ins.append(a)
        # the loss is computed trial-last in both layouts ([B, 1, N], N a multiple of LANES), so
        # that its transcendental ops never hit a scalar tail whose rounding depends on N
        if spec.layout == "wide":
            z = z.permute(1, 2, 0).contiguous()
        batch = z.shape[0]
        elems = [_loss_elems(kind, z, y) for kind in spec.losses]
        loss_e, dz = elems[0]
        for kind, (le, dk) in zip(spec.losses[1:], elems[1:], strict=True):
            loss_e, dz = torch.where(hp[kind], le, loss_e), torch.where(hp[kind], dk, dz)
        d = dz * (1.0 / batch)
        if spec.layout == "wide":
            d = d.permute(2, 0, 1).contiguous()
        grads: Tensors = [z] * len(params)  # placeholders, all replaced below
        for layer in reversed(range(spec.depth)):
            outs = grad_out[2 * layer : 2 * layer + 2] if grad_out is not None else None
            grads[2 * layer], grads[2 * layer + 1] = lay.grads(d, ins[layer], outs)
            if layer > 0:
                da = lay.back(d, params[2 * layer])
                d = _select(spec.activations, hp,
                            partial(_act_grad, da=da, h=pre[layer - 1], a=ins[layer]))
        batch_loss = loss_e.sum((0, 1)) / batch
        return batch_loss.view(-1, *([1] * (x.dim() - 1))) if spec.layout == "wide" \
            else batch_loss, grads


class ValProgram:
    """Validation of one chunk of samples for every lane of a narrow population:
        val(*params, *consts, x [c, F, 1], y [c, 1, 1]) -> (loss sum [N], hits [N]) (float64)
    Compiled alongside the step when the step is, since eagerly it costs ~15% of an epoch."""

    def __init__(self, spec: Spec, hp_keys: Sequence[str]) -> None:
        self.spec, self.keys = spec, tuple(hp_keys)
        self.n_params = 2 * spec.depth

    def __call__(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        params = list(args[: self.n_params])
        k = self.n_params + len(self.keys)
        hp = dict(zip(self.keys, args[self.n_params : k], strict=True))
        a, ys = args[k], args[k + 1]
        z = _forward_spec(self.spec, params, a, hp)
        le = _select(self.spec.losses, hp, partial(_loss_value, z=z, y=ys))
        hits = (torch.round(torch.sigmoid(z)) == ys).sum((0, 1), dtype=torch.float64)
        return le.sum((0, 1), dtype=torch.float64), hits


def _forward_spec(spec: Spec, params: Tensors, a: torch.Tensor, hp: dict[str, torch.Tensor]
                  ) -> torch.Tensor:
    """Logits of a population on inputs `a` in its layout. Padded units need no mask here:
    their outgoing weights are zero."""
    lay = _LAYOUTS[spec.layout]
    z = a
    for layer in range(spec.depth):
        z = lay.linear(a, params[2 * layer], params[2 * layer + 1])
        if layer < spec.depth - 1:
            a = _select(spec.activations, hp, partial(_act, h=z))
    return z


def _update(
    spec: Spec, p: torch.Tensor, g: torch.Tensor, m: torch.Tensor | None, v: torch.Tensor | None,
    u: torch.Tensor | None, hp: dict[str, torch.Tensor], eta: torch.Tensor, bc2s: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """torch.optim's single-tensor updates, per trial; p - eta * direction."""
    kinds = spec.optimizers
    if spec.l2:
        g = g + hp["wd"] * p
    root_v: torch.Tensor | None = None
    if v is not None:  # adam's exp_avg_sq and rmsprop's square_avg play the same role
        v = torch.addcmul(v * hp["beta2"], g * g, hp["omb2"])  # v * beta2 + g^2 * (1 - beta2)
        root_v = v.sqrt()
    direction: torch.Tensor | None = None
    if "adam" in kinds:
        assert m is not None and root_v is not None
        m = torch.lerp(m, g, hp["omb1"])  # exp_avg.lerp_(grad, 1 - beta1), as torch.optim
        direction = m / (root_v / bc2s + _EPS)
    if "sgd" in kinds or "rmsprop" in kinds:
        if "rmsprop" not in kinds:
            q = g
        else:
            assert root_v is not None
            rms = g / (root_v + _EPS)
            q = torch.where(hp["rmsprop"], rms, g) if "sgd" in kinds else rms
        if spec.momentum:
            assert u is not None
            u = u * hp["momentum"] + q
            q = u
        direction = q if direction is None else torch.where(hp["adam"], direction, q)
    assert direction is not None
    base = p * hp["decay"] if spec.decoupled else p
    return base - eta * direction, m, v, u


# --- the eager step on flat buffers -------------------------------------------------------------


def _flatten(tensors: Tensors, narrow: bool) -> tuple[torch.Tensor, Tensors]:
    """One buffer holding `tensors` (copied) and views of it shaped like them: [P, N] with the
    trial last (narrow), [N, P] with the trial first (wide)."""
    n = tensors[0].shape[-1] if narrow else tensors[0].shape[0]
    rows = [t.numel() // n for t in tensors]
    flat = (torch.cat([t.reshape(-1, n) for t in tensors]) if narrow
            else torch.cat([t.reshape(n, -1) for t in tensors], dim=1))
    views, start = [], 0
    for t, r in zip(tensors, rows, strict=True):
        part = flat[start : start + r] if narrow else flat[:, start : start + r]
        views.append(part.view(t.shape))
        start += r
    return flat, views


class FlatStep:
    """The eager step: Program's math, with the parameters, their gradients and the optimizer
    state each in one flat buffer, updated in place.

    Eagerly a step costs mostly per-op dispatch (~2 us an op at these sizes), so the optimizer
    update, the finiteness check and the freezing run once over all parameters instead of once
    per parameter tensor (with the other changes of issue 3, the notebook's step went from 69
    ops to 47, a group mixing three optimizers, three activations and two losses from 153 to
    77). The numbers are Program's, bit for bit (a test checks it); only the finiteness sum
    adds the parameters in another order (it only decides finite or not).

    It takes over the population's parameters: pop.state's parameters become views of its
    buffer, so validation and weights_of read them as before; the optimizer state lives here.
    Called as step(x, y, eta, bc2s, weight), it updates pop.state in place.
    """

    def __init__(self, pop: _Population) -> None:
        self.pop, self.program, self.spec = pop, pop.program, pop.spec
        n_params = 2 * pop.spec.depth
        self.p, views = _flatten(pop.state[:n_params], pop.narrow)
        pop.state[:n_params] = views
        self.params = views
        self.g, self.grad_views = _flatten([torch.zeros_like(v) for v in views], pop.narrow)
        m_slot, v_slot, u_slot = (pop.program.slices[i] for i in (1, 2, 3))
        self.m, self.v, self.u = (torch.zeros_like(self.p) if sl.stop > sl.start else None
                                  for sl in (m_slot, v_slot, u_slot))
        self.hp = dict(zip(pop.program.keys, pop.consts, strict=True))
        # per-trial vectors broadcast against [P, N] as they are; against [N, P] as [N, 1]
        self.hp_flat = self.hp if pop.narrow else {
            k: t.view(pop.np, 1) for k, t in self.hp.items() if t.shape[1:] == (1, 1)}
        self.trial_dim = 0 if pop.narrow else 1  # the flat buffer's parameter dimension

    def __call__(self, x: torch.Tensor, y: torch.Tensor, eta: torch.Tensor, bc2s: torch.Tensor,
                 weight: torch.Tensor) -> None:
        pop = self.pop
        batch_loss, _ = self.program._loss_and_grads(self.params, self.hp, x, y, self.grad_views)
        if not pop.narrow:
            batch_loss, eta = batch_loss.view(pop.np), eta.view(pop.np, 1)
        new_p, self.m, self.v, self.u = _update(self.spec, self.p, self.g, self.m, self.v,
                                                self.u, self.hp_flat, eta, bc2s)
        # a trial whose loss or new weights are non-finite stops here, keeping its old weights
        total = new_p.sum(self.trial_dim) + batch_loss
        still = pop.state[-2].view(pop.np) & torch.isfinite(total)
        torch.where(still if pop.narrow else still.view(pop.np, 1), new_p, self.p, out=self.p)
        pop.state[-2] = still.view(pop.vshape)
        pop.state[-1].add_(batch_loss.view(pop.vshape).to(torch.float64) * weight)


# --- a group: stacked state -------------------------------------------------------------------


@dataclass
class Group:
    """Trials (indices into the caller's list) trained as one population."""

    indices: list[int]
    trials: list[Trial]
    layout: str


def group_trials(trials: Sequence[Trial], device: torch.device | str | None = None
                 ) -> list[Group]:
    """Split trials into populations by (batch size, depth, width class); order is kept.

    Widths are bucketed by the next power of two so that a [10] trial is not padded to [4096].
    On CPU a population is also capped so that its state stays within POP_STATE_BYTES: past the
    caches, wide trials train slower per trial in a larger population (measured: [64, 64] Adam,
    270 trial-epochs/s at N = 128, 150 at N = 512). Small one-hidden-layer groups are then
    merged (`_merge_small_shallow`).
    """
    groups: dict[tuple[int, int, int], Group] = {}
    for i, t in enumerate(trials):
        widest = max(t.config.hidden)
        bucket = 1 << max(0, widest - 1).bit_length()
        key = (t.config.batch_size, len(t.config.hidden), bucket)
        groups.setdefault(key, Group([], [], _layout(t.config.hidden)))
        groups[key].indices.append(i)
        groups[key].trials.append(t)
    if device is not None and torch.device(device).type != "cpu":
        return _merge_small_shallow(list(groups.values()))
    out = []
    for (_, depth, bucket), g in groups.items():
        # parameters of the widest trial of the bucket (2 input features: an estimate)
        params = 2 * bucket + bucket + (depth - 1) * (bucket * bucket + bucket) + bucket + 1
        cap = max(LANES, POP_STATE_BYTES // (params * 20) // LANES * LANES)  # ~5 floats/param
        out += [Group(g.indices[k : k + cap], g.trials[k : k + cap], g.layout)
                for k in range(0, len(g.indices), cap)]
    return _merge_small_shallow(out)


def _layout(hidden: tuple[int, ...]) -> str:
    """A trial's layout, from its own widths only (its numbers must not depend on neighbours)."""
    narrow = max(hidden) <= (SHALLOW_NARROW_MAX if len(hidden) == 1 else NARROW_MAX)
    return "narrow" if narrow else "wide"


def _merge_small_shallow(groups: list[Group]) -> list[Group]:
    """Narrow one-hidden-layer groups of one batch size and epoch count that fit one block of
    LANES trials together train as one population.

    Each would be padded to LANES trials anyway, and such a population's step costs its op
    dispatch (~0.1 ms), hardly its width: a one-at-a-time study varying the width ([10] and
    [20]) trains one population of 4,000 steps instead of two. A trial's hidden layer is then
    zero-padded to the widest of the population, which leaves its numbers unchanged bit for
    bit in the narrow layout (a test checks it). Only groups of as many epochs merge: a group
    trains for its longest trial, and every step of a merged one costs a little more.
    """
    out: list[Group] = []
    open_: dict[tuple[int, int], Group] = {}  # (batch size, epochs) -> the group open to more
    for g in groups:
        cfg = g.trials[0].config
        if g.layout != "narrow" or len(cfg.hidden) != 1 or len(g.indices) > LANES:
            out.append(g)
            continue
        key = (cfg.batch_size, max(t.config.epochs for t in g.trials))
        host = open_.get(key)
        if host is not None and len(host.indices) + len(g.indices) <= LANES:
            pairs = sorted([*zip(host.indices, host.trials, strict=True),
                            *zip(g.indices, g.trials, strict=True)],
                           key=lambda pair: pair[0])  # the caller's order
            host.indices[:] = [i for i, _ in pairs]
            host.trials[:] = [t for _, t in pairs]
            continue
        host = Group(list(g.indices), list(g.trials), "narrow")
        open_[key] = host
        out.append(host)
    return out


class _Population:
    """The stacked tensors of one group on one device (np >= n: padded with idle trials)."""

    def __init__(self, group: Group, n_features: int, device: torch.device) -> None:
        self.group, self.device = group, device
        self.configs = [t.config for t in group.trials]
        self.n = len(self.configs)
        self.narrow = group.layout == "narrow"
        self.np = -(-self.n // LANES) * LANES
        self.vshape = (self.np,) if self.narrow else (self.np, 1, 1)
        hidden = [max(w) for w in zip(*(c.hidden for c in self.configs), strict=True)]
        if not self.narrow:  # whole vectors per activation row (see the module docstring)
            hidden = [-(-w // WIDE_QUANTUM) * WIDE_QUANTUM for w in hidden]
        self.sizes = [n_features, *hidden, 1]
        padded = any(list(c.hidden) != hidden for c in self.configs)
        self.spec = _spec_for(self.configs, group.layout, padded)
        self.generators = [torch.Generator().manual_seed(t.seed) for t in group.trials]
        self.hp = self._hyper()
        self.program = Program(self.spec, sorted(self.hp))
        self.val_program = ValProgram(self.spec, self.program.keys)
        self.val_compiled: StepFn | None = None
        self.consts = [self.hp[k] for k in self.program.keys]
        params = self._initial_params()
        n_extra = self.program.n_state - 2 - len(params)  # optimizer state, zero as torch.optim's
        self.state = params + [torch.zeros_like(params[i % len(params)]) for i in range(n_extra)]
        self.state += [torch.zeros(self.vshape, dtype=torch.bool, device=device),
                       torch.zeros(self.vshape, dtype=torch.float64, device=device)]
        self.epochs = [c.epochs for c in self.configs]
        self.alive = [True] * self.n
        self.steps_done = 0

    def vec(self, values: Sequence[float] | Sequence[bool], dtype: torch.dtype = torch.float32
            ) -> torch.Tensor:
        """A per-trial vector (padded to np) shaped to broadcast in this layout; floats are
        computed in float64 and rounded once, as torch.optim's Python scalars are."""
        full = torch.zeros(self.np, dtype=torch.float64)
        full[: len(values)] = torch.tensor([float(v) for v in values], dtype=torch.float64)
        return full.to(dtype).view(self.vshape).to(self.device)

    def _initial_params(self) -> Tensors:
        """The seed recipe's weights of each trial, zero-padded and stacked in this layout."""
        layers = list(zip(self.sizes[:-1], self.sizes[1:], strict=True))
        stacked: Tensors = []
        for i, o in layers:
            stacked += [torch.zeros(self.np, o, i), torch.zeros(self.np, o)]
        for n, (cfg, g) in enumerate(zip(self.configs, self.generators, strict=True)):
            for layer, (w, b) in enumerate(init_weights(cfg.layers(self.sizes[0]), g)):
                stacked[2 * layer][n, : w.shape[0], : w.shape[1]] = w
                stacked[2 * layer + 1][n, : b.shape[0]] = b
        out = []
        for k, t in enumerate(stacked):
            if self.narrow:
                t = t.movedim(0, -1)  # [O, I, N] / [O, N]
            elif k % 2 == 1:
                t = t.unsqueeze(1)  # [N, 1, O]
            out.append(t.contiguous().to(self.device))
        return out

    @property
    def params(self) -> Tensors:
        return self.state[: 2 * self.spec.depth]

    def weights_of(self, n: int, params: Tensors) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Trial n's unpadded weights, CPU float32, from `params` (the population's, on CPU:
        one device-to-host copy for all the trials that finish together)."""
        out = []
        layers = self.configs[n].layers(self.sizes[0])
        for layer, (i, o) in enumerate(itertools.pairwise(layers)):
            w, b = params[2 * layer], params[2 * layer + 1]
            w_n, b_n = (w[:o, :i, n], b[:o, n]) if self.narrow else (w[n, :o, :i], b[n, 0, :o])
            out.append((w_n.to("cpu", torch.float32).clone(), b_n.to("cpu", torch.float32).clone()))
        return out

    def _hyper(self) -> dict[str, torch.Tensor]:
        """Per-trial hyperparameters and kind masks, named as the step program reads them."""
        cfgs, spec = self.configs, self.spec
        self.is_adam = [c.optimizer in ("adam", "adamw") for c in cfgs]
        hp = {kind: self.vec([c.activation == kind for c in cfgs], torch.bool)
              for kind in spec.activations}
        hp.update({kind: self.vec([c.loss == kind for c in cfgs], torch.bool).view(-1)
                   for kind in spec.losses})  # the loss is computed trial-last in any layout
        hp["adam"] = self.vec(self.is_adam, torch.bool)
        hp["rmsprop"] = self.vec([c.optimizer == "rmsprop" for c in cfgs], torch.bool)
        hp["momentum"] = self.vec([c.momentum if c.optimizer in ("sgd", "rmsprop") else 0.0
                                   for c in cfgs])
        hp["wd"] = self.vec([c.weight_decay if c.optimizer != "adamw" else 0.0 for c in cfgs])
        hp["decay"] = self.vec([1 - c.lr * c.weight_decay if c.optimizer == "adamw" else 1.0
                                for c in cfgs])
        beta2 = [_ADAM_BETAS[1] if a else _RMS_ALPHA for a in self.is_adam]
        hp["beta2"] = self.vec(beta2)
        hp["omb2"] = self.vec([1 - b for b in beta2])
        hp["omb1"] = self.vec([1 - _ADAM_BETAS[0]] * self.n)
        if spec.unit_mask:
            for layer, width in enumerate(self.sizes[1:-1]):
                mask = torch.zeros(self.np, width)
                for n, c in enumerate(cfgs):
                    mask[n, : c.hidden[layer]] = 1.0
                hp[f"units{layer}"] = (mask.T.contiguous() if self.narrow
                                       else mask.unsqueeze(1)).to(self.device)
        return hp

    def step_sizes(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The next `count` steps' eta [count, *vshape] (lr, or lr / (1 - beta1^t) for Adam)
        and Adam's sqrt(1 - beta2^t) [count]: float64 first, as torch.optim, then float32."""
        t = torch.arange(self.steps_done + 1, self.steps_done + count + 1, dtype=torch.float64)
        lr = torch.zeros(self.np, dtype=torch.float64)
        lr[: self.n] = torch.tensor([c.lr for c in self.configs], dtype=torch.float64)
        adam = torch.zeros(self.np, dtype=torch.bool)
        adam[: self.n] = torch.tensor(self.is_adam)
        eta = torch.where(adam, lr / (1 - _ADAM_BETAS[0] ** t)[:, None], lr)
        bc2s = (1 - _ADAM_BETAS[1] ** t).sqrt()
        return (eta.to(torch.float32).view(count, *self.vshape).to(self.device),
                bc2s.to(torch.float32).to(self.device))

    def perms(self, training: list[bool], n_train: int) -> torch.Tensor:
        """[np, n_train] shuffles: each training trial draws one from its own generator."""
        perms = torch.empty(self.np, n_train, dtype=torch.long)

        def fill(rows: range) -> None:
            for n in rows:
                if n < self.n and training[n]:
                    torch.randperm(n_train, generator=self.generators[n], out=perms[n])
                else:
                    perms[n] = torch.arange(n_train)

        threads = min(PERM_THREADS, os.cpu_count() or 1) if self.device.type != "cpu" else 1
        if threads > 1 and self.np * n_train >= 1 << 22:
            # a GPU population of 10^5 trials spends seconds per epoch here on one core;
            # randperm releases the GIL, and each row has its own generator
            step = -(-self.np // threads)
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(fill, (range(i, min(i + step, self.np))
                                     for i in range(0, self.np, step))))
        else:
            fill(range(self.np))
        return perms.to(self.device, non_blocking=True)


# --- validation -----------------------------------------------------------------------------


@torch.no_grad()
def _validate(pop: _Population, val: Split, which: list[int]) -> list[tuple[float, float]]:
    """(val loss, val acc) of trials `which`, in cache-sized chunks."""
    if not which:
        return []
    loss_sum, hits = (_validate_narrow if pop.narrow else _validate_wide)(pop, val, which)
    n_val = len(val)
    return list(zip((loss_sum / n_val).tolist(), (hits / n_val).tolist(), strict=True))


def _val_bytes(pop: _Population) -> int:
    return VAL_BYTES if pop.device.type == "cpu" else VAL_BYTES_GPU


def _val_chunk(pop: _Population, n_val: int) -> int:
    """Samples per validation chunk of a narrow population (its widest product fits the budget)."""
    widest = max(o * i for i, o in itertools.pairwise(pop.sizes))
    return min(n_val, max(1, _val_bytes(pop) // (widest * pop.np * 4)))


def _validate_narrow(pop: _Population, val: Split, which: list[int]
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Every lane at once with the training forward, so that, as in training, a trial's numbers
    do not depend on its position or its neighbours (a batched matmul does not promise that)."""
    x, y = val.x.to(pop.device), val.y.to(pop.device)
    chunk = _val_chunk(pop, len(val))
    loss_sum = torch.zeros(pop.np, dtype=torch.float64, device=pop.device)
    hits = torch.zeros(pop.np, dtype=torch.float64, device=pop.device)
    for s0 in range(0, len(val), chunk):
        a, ys = x[s0 : s0 + chunk].unsqueeze(-1), y[s0 : s0 + chunk].view(-1, 1, 1)
        fn = pop.val_compiled if pop.val_compiled and a.shape[0] == chunk else pop.val_program
        chunk_loss, chunk_hits = fn(*pop.params, *pop.consts, a, ys)
        loss_sum += chunk_loss
        hits += chunk_hits
    idx = torch.tensor(which, device=pop.device)
    return loss_sum[idx], hits[idx]


def _validate_wide(pop: _Population, val: Split, which: list[int]
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """All lanes with batched matmuls, in chunks of LANES trials and of samples to bound memory;
    the loss trial-last, as in training."""
    x, y = val.x.to(pop.device), val.y.to(pop.device)
    row = max(pop.sizes) * 4  # bytes of one sample's widest activation
    budget = _val_bytes(pop)
    t_chunk = max(1, min(pop.np // LANES, budget // (row * len(val) * LANES))) * LANES
    s_chunk = max(1, min(len(val), budget // (row * t_chunk)))
    loss_sum = torch.zeros(pop.np, dtype=torch.float64, device=pop.device)
    hits = torch.zeros(pop.np, dtype=torch.float64, device=pop.device)
    for t0 in range(0, pop.np, t_chunk):
        sl = slice(t0, t0 + t_chunk)
        hp = {k: v[sl] for k, v in pop.hp.items() if v.shape[0] == pop.np and v.dim() in (1, 3)}
        params = [p[sl] for p in pop.params]
        for s0 in range(0, len(val), s_chunk):
            a = x[s0 : s0 + s_chunk].expand(t_chunk, -1, -1)
            ys = y[s0 : s0 + s_chunk].view(-1, 1, 1)
            z = _forward_spec(pop.spec, params, a, hp).permute(1, 2, 0).contiguous()  # [S, 1, t]
            le = _select(pop.spec.losses, hp, partial(_loss_value, z=z, y=ys))
            loss_sum[sl] += le.sum((0, 1), dtype=torch.float64)
            hits[sl] += (torch.round(torch.sigmoid(z)) == ys).sum((0, 1), dtype=torch.float64)
    idx = torch.tensor(which, device=pop.device)
    return loss_sum[idx], hits[idx]


# --- the epoch loop -------------------------------------------------------------------------

StepFn = Callable[..., tuple[torch.Tensor, ...]]
# step(x, y, eta, bc2s, weight): one training step of a population, updating pop.state
Stepper = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], None]


class _Clock:
    """Polls should_stop at most every POLL_S seconds of work."""

    def __init__(self, should_stop: Callable[[], bool] | None) -> None:
        self.should_stop = should_stop
        self.next = time.monotonic() + POLL_S

    def check(self, force: bool = False) -> None:
        if self.should_stop is None:
            return
        now = time.monotonic()
        if force or now >= self.next:
            self.next = now + POLL_S
            if self.should_stop():
                raise Stopped()


def _epoch_data(pop: _Population, x_t: torch.Tensor, y: torch.Tensor, perms: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """One gather for many steps: the samples `perms` [N, k] in the step layout.

    x: [k, F, N] narrow (a step is a contiguous slice of k), [N, k, F] wide; y: [k, 1, N]. x_t is
    the training inputs transposed, [F, n_train], so that each feature is a 1-D index_select.
    """
    n, k = perms.shape
    if pop.narrow:  # indices in [k, N] order: every gather then lands in place
        flat = perms.t().reshape(-1)
        x_out = torch.empty(k, x_t.shape[0], n, device=x_t.device)
        for f, xf in enumerate(x_t):
            x_out[:, f, :].copy_(torch.index_select(xf, 0, flat).view(k, n))
        return x_out, torch.index_select(y, 0, flat).view(k, 1, n)
    flat = perms.reshape(-1)
    y_sel = torch.index_select(y, 0, flat).view(n, k).t().contiguous().unsqueeze(1)
    x_sel = torch.stack([torch.index_select(xf, 0, flat) for xf in x_t], dim=-1)
    return x_sel.view(n, k, -1), y_sel


def _batch(pop: _Population, xs: torch.Tensor, ys: torch.Tensor, lo: int, hi: int
           ) -> tuple[torch.Tensor, torch.Tensor]:
    if pop.narrow:
        return xs[lo:hi], ys[lo:hi]
    return xs[:, lo:hi], ys[lo:hi]


def _segment_steps(pop: _Population, batch: int, full: int, n_features: int) -> int:
    """Steps per gather: the whole epoch, unless its data would pass EPOCH_DATA_BYTES."""
    return max(1, min(full, EPOCH_DATA_BYTES // (pop.np * batch * (n_features + 1) * 4)))


def _batches(pop: _Population, xs: torch.Tensor, ys: torch.Tensor, batch: int
             ) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """The steps' batches of a gathered segment, as _batch slices them (one op, not 2 a step)."""
    return xs.split(batch, dim=0 if pop.narrow else 1), ys.split(batch)


def _train_group(pop: _Population, splits: Splits, step: Stepper, rest_step: Stepper,
                 on_epoch: OnEpoch | None, clock: _Clock) -> list[TrialOutcome]:
    """Train one population for its longest trial's epochs, reporting each epoch."""
    batch, n_train = pop.configs[0].batch_size, len(splits.train)
    x_t = splits.train.x.t().contiguous().to(pop.device)
    y = splits.train.y.to(pop.device)
    outcomes = [TrialOutcome(status="running") for _ in pop.configs]
    full = n_train // batch
    rest = n_train - full * batch
    weight = torch.tensor(batch / n_train, dtype=torch.float64, device=pop.device)
    seg = _segment_steps(pop, batch, full, x_t.shape[0])
    for epoch in range(max(pop.epochs)):
        training = [pop.alive[n] and pop.epochs[n] > epoch for n in range(pop.n)]
        pop.state[-2] = pop.vec(training, torch.bool)
        pop.state[-1] = torch.zeros(pop.vshape, dtype=torch.float64, device=pop.device)
        perms = pop.perms(training, n_train)
        eta, bc2s = pop.step_sizes(full + (rest > 0))
        etas, bc2ss = eta.unbind(0), bc2s.unbind(0)
        for first in range(0, full, seg):
            count = min(seg, full - first)
            xs, ys = _epoch_data(pop, x_t, y, perms[:, first * batch : (first + count) * batch])
            xbs, ybs = _batches(pop, xs, ys, batch)
            for s in range(count):
                step(xbs[s], ybs[s], etas[first + s], bc2ss[first + s], weight)
                clock.check()
        if rest:  # the partial last batch has another shape: never compiled
            xb, yb = _epoch_data(pop, x_t, y, perms[:, full * batch :])
            w_rest = torch.tensor(rest / n_train, dtype=torch.float64, device=pop.device)
            rest_step(xb, yb, etas[-1], bc2ss[-1], w_rest)
        pop.steps_done += full + (rest > 0)
        _finish_epoch(pop, splits, epoch, training, outcomes, on_epoch)
        clock.check(force=True)
    return outcomes


def _finish_epoch(pop: _Population, splits: Splits, epoch: int, training: list[bool],
                  outcomes: list[TrialOutcome], on_epoch: OnEpoch | None) -> None:
    """Record the epoch's metrics and statuses, then report them in one callback."""
    still = pop.state[-2].reshape(-1).tolist()
    losses = pop.state[-1].reshape(-1).tolist()
    which = [n for n in range(pop.n) if training[n]]
    report = []
    cpu_params: Tensors = []
    for n, (val_loss, val_acc) in zip(which, _validate(pop, splits.val, which), strict=True):
        out = outcomes[n]
        diverged = not still[n]
        metrics = EpochMetrics(math.nan if diverged else losses[n], val_loss, val_acc)
        out.history.append(metrics)
        if diverged:
            out.status, out.diverged_epoch = "diverged", epoch
            pop.alive[n] = False
        elif epoch + 1 >= pop.epochs[n]:
            out.status = "completed"
        if out.status != "running":
            cpu_params = cpu_params or [p.cpu() for p in pop.params]
            out.weights = pop.weights_of(n, cpu_params)
        report.append((pop.group.indices[n], metrics, out.status))
    if on_epoch is not None and report:
        on_epoch(report)


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
    if not compile_available(device):
        return False
    kind = "cuda" if device.type == "cuda" else "cpu"
    fixed, per_trial = SAVED_PER_STEP_S[kind]
    saved = steps * (fixed + per_trial * n_trials * params_per_trial / 41)
    return saved >= COMPILE_COST_S[kind]


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


def _steppers(pop: _Population, splits: Splits, device: torch.device, compile: bool | None
              ) -> tuple[Stepper, Stepper]:
    """(full steps, the partial last batch): the compiled step program and the eager one when
    compiling is wanted and possible, else FlatStep for both."""
    compiled = _compiled_step(pop, splits, device, compile)
    if compiled is None:
        flat = FlatStep(pop)
        return flat, flat
    return _functional(pop, compiled), _functional(pop, pop.program)


def _functional(pop: _Population, fn: StepFn) -> Stepper:
    """A step program that returns the new state (Program, or its compiled version) as a
    Stepper."""
    def step(x: torch.Tensor, y: torch.Tensor, eta: torch.Tensor, bc2s: torch.Tensor,
             weight: torch.Tensor) -> None:
        pop.state = list(fn(*pop.state, *pop.consts, x, y, eta, bc2s, weight))
    return step


def _compiled_step(pop: _Population, splits: Splits, device: torch.device,
                   compile: bool | None) -> StepFn | None:
    """The compiled step program when wanted and possible, else None."""
    batch = pop.configs[0].batch_size
    steps = max(pop.epochs) * (len(splits.train) // batch)
    params = sum(o * i + o for i, o in itertools.pairwise(pop.sizes))
    wanted = should_compile(pop.np, steps, device, params) if compile is None else compile
    if not wanted or steps == 0 or not compile_available(device):
        return None
    # example inputs with the shapes and strides of every full step of this group
    x_t = splits.train.x.t().contiguous().to(device)
    perms = torch.zeros(pop.np, len(splits.train), dtype=torch.long, device=device)
    k = _segment_steps(pop, batch, len(splits.train) // batch, x_t.shape[0]) * batch
    xs, ys = _epoch_data(pop, x_t, splits.train.y.to(device), perms[:, :k])
    xb, yb = _batch(pop, xs, ys, 0, batch)
    eta, bc2s = pop.step_sizes(1)
    weight = torch.tensor(batch / len(splits.train), dtype=torch.float64, device=device)
    try:
        step = _compile(pop.program, [*pop.state, *pop.consts, xb, yb, eta[0], bc2s[0], weight])
        if pop.narrow:
            chunk = _val_chunk(pop, len(splits.val))
            x_val = splits.val.x[:chunk].to(device).unsqueeze(-1)
            y_val = splits.val.y[:chunk].to(device).view(-1, 1, 1)
            pop.val_compiled = _compile(pop.val_program, [*pop.params, *pop.consts, x_val, y_val])
        return step
    except Exception as e:  # Inductor raises many kinds; all of them mean: train eagerly
        _COMPILE_BROKEN.append(str(e))
        warnings.warn(f"torch.compile is not usable here, training eagerly: {e}", stacklevel=4)
        return None


@contextlib.contextmanager
def _one_thread(device: torch.device) -> Iterator[None]:
    """Train on one CPU thread: the ops are small (threads cost more than they give; use
    engine.parallel for more cores), and ATen splits a multi-threaded op's range at points that
    depend on its size, which would make a trial's rounding depend on its population."""
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while training: a step allocates ~50 tensors, which sets
    off collections that walk every object alive, torch's modules included (~15% of an eager
    run of small trials, and in a forked worker each walk copies the parent's pages). The step
    makes no reference cycles; whatever else does is collected once training ends."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# --- the public entry point --------------------------------------------------------------------


def train_population(
    trials: Sequence[Trial],
    splits: Splits,
    *,
    device: torch.device | str = "cpu",
    on_epoch: OnEpoch | None = None,
    should_stop: Callable[[], bool] | None = None,
    compile: bool | None = None,
) -> list[TrialOutcome]:
    """Train `trials` (all on the same data) as populations; outcomes in the order of `trials`.

    on_epoch gets, once per epoch of each internal group, (index into trials, metrics, status)
    for every trial that trained that epoch; status is "running", "completed" (its last epoch)
    or "diverged". should_stop is polled about every POLL_S seconds of work; when it returns
    True, `Stopped` is raised. compile=None decides per group (`should_compile`), False forces
    eager, True compiles wherever a compiler is available.
    """
    device = torch.device(device)
    if len({t.config.data for t in trials}) > 1:
        raise ValueError("train_population: all trials must share one DataConfig")
    clock = _Clock(should_stop)
    results: dict[int, TrialOutcome] = {}
    with torch.no_grad(), _one_thread(device), _gc_paused():
        for group in group_trials(trials, device):
            pop = _Population(group, splits.n_features, device)
            step, rest_step = _steppers(pop, splits, device, compile)
            outcomes = _train_group(pop, splits, step, rest_step, on_epoch, clock)
            results.update(zip(group.indices, outcomes, strict=True))
    return [results[i] for i in range(len(trials))]
