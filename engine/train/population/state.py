"""A population's stacked state and the eager steps that update it.

`Population` holds one group's tensors on one device (parameters, optimizer state, per-trial
hyperparameters, generators, step sizes, shuffles). `FlatStep` (the eager step on flat buffers)
and `functional_step` (a step program as a step) are the two ways a step updates that state.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import torch

from engine.spec import SHUFFLE_DRAWN, SHUFFLE_KEYED, TrialConfig, lr_at
from engine.train.population.grouping import LANES, WIDE_QUANTUM, Group
from engine.train.population.program import (
    ACTIVE,
    LOSS_SUM,
    Program,
    StepFn,
    Tensors,
    ValProgram,
    optimizer_update,
    spec_for,
)
from engine.train.reference import init_weights
from engine.train.shuffles import keyed_permutations

PERM_THREADS = 16  # threads drawing the shuffles of a GPU population

_ADAM_BETAS = (0.9, 0.999)
_RMS_ALPHA = 0.99


# --- a population: stacked state ---------------------------------------------------------------


class Population:
    """The stacked tensors of one group on one device (np >= n: padded with idle trials)."""

    def __init__(self, group: Group, n_features: int, device: torch.device) -> None:
        self.group, self.device = group, device
        self.configs = [t.config for t in group.trials]
        self.n = len(self.configs)
        self.narrow = group.layout == "narrow"
        self.np = -(-self.n // LANES) * LANES
        self.vshape = (self.np,) if self.narrow else (self.np, 1, 1)
        hidden = [max(w) for w in zip(*(c.hidden for c in self.configs), strict=True)]
        if not self.narrow:  # whole vectors per activation row (see the package docstring)
            hidden = [-(-w // WIDE_QUANTUM) * WIDE_QUANTUM for w in hidden]
        self.sizes = [n_features, *hidden, 1]
        padded = any(list(c.hidden) != hidden for c in self.configs)
        self.spec = spec_for(self.configs, group.layout, padded)
        self.generators = [torch.Generator().manual_seed(t.seed) for t in group.trials]
        self.seeds = [t.seed for t in group.trials]
        self.shuffles = [t.shuffle for t in group.trials]  # each trial's study's recipe
        self.hp = self._hyper()
        # whether some trial's lr changes between epochs (then AdamW's decay does too)
        self.scheduled = any(c.schedule != "constant" or c.warmup_epochs for c in self.configs)
        self.program = Program(self.spec, sorted(self.hp))
        self.val_program = ValProgram(self.spec, self.program.keys)
        self.val_compiled: StepFn | None = None
        self.consts = [self.hp[k] for k in self.program.keys]
        params = self._initial_params()
        n_extra = self.program.n_state - 2 - len(params)  # optimizer state, zero as torch.optim's
        self.state = params + [torch.zeros_like(params[i % len(params)]) for i in range(n_extra)]
        self.state += [torch.zeros(self.vshape, dtype=torch.bool, device=device),  # ACTIVE
                       torch.zeros(self.vshape, dtype=torch.float64, device=device)]  # LOSS_SUM
        self.epochs = [c.epochs for c in self.configs]
        self.alive = [True] * self.n
        self.origin = list(range(self.n))  # position in the group as built (compact changes it)
        self.members = list(group.trials)  # the group as built: what a rung ranks
        self.steps_done = 0

    def compact(self, keep: Sequence[int]) -> None:
        """Only the trials at positions `keep` stay: every tensor indexed by trial (parameters,
        optimizer state, hyperparameters and masks) and every per-trial list, the generators
        (with their shuffles' state) included; np shrinks to the next multiple of LANES, so
        the remaining steps cost less. A kept trial's numbers do not change (they never
        depend on the population). Optimizer state held by a FlatStep must be put back into
        `state` first (`FlatStep.put_back`); the steppers are then built again."""
        keep = list(keep)
        new_np = max(LANES, -(-len(keep) // LANES) * LANES)
        index = torch.tensor(keep, dtype=torch.long, device=self.device)

        def take(t: torch.Tensor) -> torch.Tensor:
            dim = t.dim() - 1 if self.narrow else 0  # the trial dimension in this layout
            shape = list(t.shape)
            shape[dim] = new_np
            out = torch.zeros(shape, dtype=t.dtype, device=t.device)
            out.narrow(dim, 0, len(keep)).copy_(t.index_select(dim, index))
            return out

        self.state = [take(t) for t in self.state]
        self.hp = {k: take(v) for k, v in self.hp.items()}
        self.consts = [self.hp[k] for k in self.program.keys]
        self.group = Group([self.group.indices[n] for n in keep],
                           [self.group.trials[n] for n in keep], self.group.layout)
        for name in ("configs", "generators", "seeds", "shuffles", "epochs", "alive", "is_adam",
                     "origin"):
            values = getattr(self, name)
            setattr(self, name, [values[n] for n in keep])
        self.n, self.np = len(keep), new_np
        self.vshape = (self.np,) if self.narrow else (self.np, 1, 1)
        self.val_compiled = None

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

    @property
    def active(self) -> torch.Tensor:
        """Per trial: trains this epoch and has stayed finite (bool, vshape)."""
        return self.state[ACTIVE]

    @active.setter
    def active(self, value: torch.Tensor) -> None:
        self.state[ACTIVE] = value

    @property
    def loss_sum(self) -> torch.Tensor:
        """Per trial: the epoch's training loss so far (float64, vshape)."""
        return self.state[LOSS_SUM]

    @loss_sum.setter
    def loss_sum(self, value: torch.Tensor) -> None:
        self.state[LOSS_SUM] = value

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
        hp["decay"] = self.vec(_decays(cfgs, [lr_at(c, 0) for c in cfgs]))
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

    def step_sizes(self, count: int, epoch: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """The next `count` steps' eta [count, *vshape] (lr, or lr / (1 - beta1^t) for Adam)
        and Adam's sqrt(1 - beta2^t) [count]: float64 first, as torch.optim, then float32.

        The steps are those of `epoch`: each trial's lr is its schedule's for that epoch
        (`engine.spec.lr_at`, per epoch as torch's schedulers are stepped), and so is AdamW's
        decoupled decay 1 - lr * weight_decay, written into the population's "decay" vector
        in place (the step programs read it as an argument: nothing is traced again)."""
        t = torch.arange(self.steps_done + 1, self.steps_done + count + 1, dtype=torch.float64)
        lrs = [lr_at(c, epoch) for c in self.configs]
        lr = torch.zeros(self.np, dtype=torch.float64)
        lr[: self.n] = torch.tensor(lrs, dtype=torch.float64)
        adam = torch.zeros(self.np, dtype=torch.bool)
        adam[: self.n] = torch.tensor(self.is_adam)
        eta = torch.where(adam, lr / (1 - _ADAM_BETAS[0] ** t)[:, None], lr)
        bc2s = (1 - _ADAM_BETAS[1] ** t).sqrt()
        if self.spec.decoupled and self.scheduled:
            self.hp["decay"].copy_(self.vec(_decays(self.configs, lrs)))
        return (eta.to(torch.float32).view(count, *self.vshape).to(self.device),
                bc2s.to(torch.float32).to(self.device))

    def perms(self, training: list[bool], n_train: int, epoch: int,
              check: Callable[[], None] | None = None) -> torch.Tensor:
        """[np, n_train] shuffles on the population's device, each training trial's by its
        recipe for `epoch` (the others: identity). `check` (which may raise `Stopped`) is
        called between draws: a large population's shuffles take seconds."""
        keyed = [n for n in range(self.n) if training[n] and self.shuffles[n] == SHUFFLE_KEYED]
        drawn = [training[n] and self.shuffles[n] == SHUFFLE_DRAWN for n in range(self.n)]
        if not keyed:
            return self._drawn_perms(drawn, n_train, check)
        seeds, k = [self.seeds[n] for n in keyed], len(keyed)
        first_rows = keyed == list(range(k))  # the usual case: the keyed trials come first
        if any(drawn):
            perms = self._drawn_perms(drawn, n_train, check)
        else:  # only the rows no keyed trial fills need the identity
            perms = torch.empty(self.np, n_train, dtype=torch.long, device=self.device)
            idle = perms[k:] if first_rows else perms
            idle.copy_(torch.arange(n_train, device=self.device).expand_as(idle))
        if first_rows:  # straight into their rows
            keyed_permutations(seeds, epoch, n_train, self.device, out=perms[:k])
        else:
            rows = torch.tensor(keyed, device=self.device)
            perms[rows] = keyed_permutations(seeds, epoch, n_train, self.device)
        if check is not None:
            check()
        return perms

    def _drawn_perms(self, training: list[bool], n_train: int,
                     check: Callable[[], None] | None) -> torch.Tensor:
        """Recipe 1: each trial in `training` draws its shuffle from its own generator, on the
        host; then one copy to the device."""
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


def _decays(configs: Sequence[TrialConfig], lrs: Sequence[float]) -> list[float]:
    """AdamW's decoupled weight decay factor 1 - lr * weight_decay (1 for the others)."""
    return [1 - lr * c.weight_decay if c.optimizer == "adamw" else 1.0
            for c, lr in zip(configs, lrs, strict=True)]


# step(x, y, eta, bc2s, weight): one training step of a population, updating pop.state
Stepper = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], None]


# --- the eager step on flat buffers -------------------------------------------------------------


def _flatten(tensors: Tensors, narrow: bool) -> tuple[torch.Tensor, Tensors]:
    """One buffer holding `tensors` (copied) and views of it shaped like them: [P, N] with the
    trial last (narrow), [N, P] with the trial first (wide)."""
    n = tensors[0].shape[-1] if narrow else tensors[0].shape[0]
    flat = (torch.cat([t.reshape(-1, n) for t in tensors]) if narrow
            else torch.cat([t.reshape(n, -1) for t in tensors], dim=1))
    return flat, _views(flat, tensors, narrow)


def _views(flat: torch.Tensor, tensors: Tensors, narrow: bool) -> Tensors:
    """Views of `flat` (as `_flatten` lays it out) shaped like `tensors`."""
    n = tensors[0].shape[-1] if narrow else tensors[0].shape[0]
    rows = [t.numel() // n for t in tensors]
    views, start = [], 0
    for t, r in zip(tensors, rows, strict=True):
        part = flat[start : start + r] if narrow else flat[:, start : start + r]
        views.append(part.view(t.shape))
        start += r
    return views


class FlatStep:
    """The eager step: Program's math, with the parameters, their gradients and the optimizer
    state each in one flat buffer, updated in place.

    Eagerly a step costs mostly per-op dispatch (~2 us an op at these sizes), so the optimizer
    update, the finiteness check and the freezing run once over all parameters instead of once
    per parameter tensor (with the other whole-process changes, the notebook's step went from 69
    ops to 47, a group mixing three optimizers, three activations and two losses from 153 to
    77). The numbers are Program's, bit for bit (a test checks it); only the finiteness sum
    adds the parameters in another order (it only decides finite or not).

    It takes over the population's parameters: pop.state's parameters become views of its
    buffer, so validation and weights_of read them as before; the optimizer state lives here.
    Called as step(x, y, eta, bc2s, weight), it updates pop.state in place.
    """

    def __init__(self, pop: Population) -> None:
        self.pop, self.program, self.spec = pop, pop.program, pop.spec
        n_params = 2 * pop.spec.depth
        self.p, views = _flatten(pop.state[:n_params], pop.narrow)
        pop.state[:n_params] = views
        self.params = views
        self.g, self.grad_views = _flatten([torch.zeros_like(v) for v in views], pop.narrow)
        # the optimizer state starts from the population's (zeros, or a compacted one's)
        self.slots = [pop.program.slices[i] for i in (1, 2, 3)]
        self.m, self.v, self.u = (_flatten(pop.state[sl], pop.narrow)[0]
                                  if sl.stop > sl.start else None for sl in self.slots)
        self.hp = dict(zip(pop.program.keys, pop.consts, strict=True))
        # per-trial vectors broadcast against [P, N] as they are; against [N, P] as [N, 1]
        self.hp_flat = self.hp if pop.narrow else {
            k: t.view(pop.np, 1) for k, t in self.hp.items() if t.shape[1:] == (1, 1)}
        self.trial_dim = 0 if pop.narrow else 1  # the flat buffer's parameter dimension

    def put_back(self) -> None:
        """Its optimizer state into pop.state (as views), where `Population.compact` finds it."""
        params = self.pop.state[: 2 * self.spec.depth]
        for sl, flat in zip(self.slots, (self.m, self.v, self.u), strict=True):
            if flat is not None:
                self.pop.state[sl] = _views(flat, params, self.pop.narrow)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, eta: torch.Tensor, bc2s: torch.Tensor,
                 weight: torch.Tensor) -> None:
        pop = self.pop
        batch_loss, _ = self.program.loss_and_grads(self.params, self.hp, x, y, self.grad_views)
        if not pop.narrow:
            batch_loss, eta = batch_loss.view(pop.np), eta.view(pop.np, 1)
        new_p, self.m, self.v, self.u = optimizer_update(self.spec, self.p, self.g, self.m, self.v,
                                                self.u, self.hp_flat, eta, bc2s)
        # a trial whose loss or new weights are non-finite stops here, keeping its old weights
        total = new_p.sum(self.trial_dim) + batch_loss
        still = pop.active.view(pop.np) & torch.isfinite(total)
        torch.where(still if pop.narrow else still.view(pop.np, 1), new_p, self.p, out=self.p)
        pop.active = still.view(pop.vshape)
        pop.loss_sum.add_(batch_loss.view(pop.vshape).to(torch.float64) * weight)


def functional_step(pop: Population, fn: StepFn) -> Stepper:
    """A step program that returns the new state (Program, or its compiled version) as a
    Stepper."""
    def step(x: torch.Tensor, y: torch.Tensor, eta: torch.Tensor, bc2s: torch.Tensor,
             weight: torch.Tensor) -> None:
        pop.state = list(fn(*pop.state, *pop.consts, x, y, eta, bc2s, weight))
    return step

