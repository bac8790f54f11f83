"""A population's stacked state and the data it trains and validates on.

`_Population` holds one group's tensors on one device (parameters, optimizer state, per-trial
hyperparameters, generators, step sizes, shuffles); the validation helpers run its forward over
the validation split in cache-sized chunks; the epoch-data helpers gather the shuffled training
samples into the step layout. Separate from `engine.train.population.loop` (grouping and the epoch loop)
and from the step math (`engine.train.population.step`), which both build on it.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING

import torch

from engine.train.data import Split
from engine.train.population.step import (
    Program,
    StepFn,
    Tensors,
    ValProgram,
    _forward_spec,
    _loss_value,
    _select,
    _spec_for,
)
from engine.train.reference import init_weights

if TYPE_CHECKING:
    from engine.train.population.loop import Group

WIDE_QUANTUM = 16  # wide layers are padded to a multiple of this many units
LANES = 32  # pad narrow populations to a multiple of this (see engine.train.population.loop's docstring)
VAL_BYTES = 2 << 20  # one validation chunk's widest activation on CPU: stays in cache
VAL_BYTES_GPU = 256 << 20  # on a GPU, fewer and larger chunks
PERM_THREADS = 16  # threads drawing the shuffles of a GPU population
EPOCH_DATA_BYTES = 64 << 20  # shuffled training data gathered at once (a whole epoch, mostly)

_ADAM_BETAS = (0.9, 0.999)
_RMS_ALPHA = 0.99


# --- a population: stacked state ---------------------------------------------------------------


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
        if not self.narrow:  # whole vectors per activation row (see engine.train.population.loop's docstring)
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

    def perms(self, training: list[bool], n_train: int,
              check: Callable[[], None] | None = None) -> torch.Tensor:
        """[np, n_train] shuffles: each training trial draws one from its own generator.
        `check` (which may raise engine.train.population.loop.Stopped) is called after each: a large
        population's shuffles take seconds."""
        perms = torch.empty(self.np, n_train, dtype=torch.long)

        def fill(rows: range) -> None:
            for n in rows:
                if n < self.n and training[n]:
                    torch.randperm(n_train, generator=self.generators[n], out=perms[n])
                else:
                    perms[n] = torch.arange(n_train)
                if check is not None:
                    check()

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


Check = Callable[[], None]  # called between chunks of work; may raise Stopped


@torch.no_grad()
def _validate(pop: _Population, val: Split, which: list[int], check: Check | None = None
              ) -> list[tuple[float, float]]:
    """(val loss, val acc) of trials `which`, in cache-sized chunks (`check` between them: a
    large validation split takes seconds)."""
    if not which:
        return []
    loss_sum, hits = (_validate_narrow if pop.narrow else _validate_wide)(
        pop, val, which, check or _no_check)
    n_val = len(val)
    return list(zip((loss_sum / n_val).tolist(), (hits / n_val).tolist(), strict=True))


def _val_bytes(pop: _Population) -> int:
    return VAL_BYTES if pop.device.type == "cpu" else VAL_BYTES_GPU


def _val_chunk(pop: _Population, n_val: int) -> int:
    """Samples per validation chunk of a narrow population (its widest product fits the budget)."""
    widest = max(o * i for i, o in itertools.pairwise(pop.sizes))
    return min(n_val, max(1, _val_bytes(pop) // (widest * pop.np * 4)))


def _no_check() -> None:
    pass


def _validate_narrow(pop: _Population, val: Split, which: list[int], check: Check
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
        check()
    idx = torch.tensor(which, device=pop.device)
    return loss_sum[idx], hits[idx]


def _validate_wide(pop: _Population, val: Split, which: list[int], check: Check
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
            check()
    idx = torch.tensor(which, device=pop.device)
    return loss_sum[idx], hits[idx]


# --- the epoch's training data ----------------------------------------------------------------


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
