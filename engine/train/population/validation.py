"""Validation of a population: its forward over the validation split in cache-sized chunks."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch

from engine.train.data import Split
from engine.train.population.grouping import LANES
from engine.train.population.program import forward, val_sums
from engine.train.population.state import Population

VAL_BYTES = 2 << 20  # one validation chunk's widest activation on CPU: stays in cache
VAL_BYTES_GPU = 256 << 20  # on a GPU, fewer and larger chunks


Check = Callable[[], None]  # called between chunks of work; may raise Stopped


@torch.no_grad()
def validate(pop: Population, val: Split, which: list[int], check: Check | None = None
              ) -> list[tuple[float, float]]:
    """(val loss, val acc) of trials `which`, in cache-sized chunks (`check` between them: a
    large validation split takes seconds)."""
    if not which:
        return []
    loss_sum, hits = (_validate_narrow if pop.narrow else _validate_wide)(
        pop, val, which, check or _no_check)
    n_val = len(val)
    return list(zip((loss_sum / n_val).tolist(), (hits / n_val).tolist(), strict=True))


def _val_bytes(pop: Population) -> int:
    return VAL_BYTES if pop.device.type == "cpu" else VAL_BYTES_GPU


def val_chunk(pop: Population, n_val: int) -> int:
    """Samples per validation chunk of a narrow population (its widest product fits the budget)."""
    widest = max(o * i for i, o in itertools.pairwise(pop.sizes))
    return min(n_val, max(1, _val_bytes(pop) // (widest * pop.np * 4)))


def _no_check() -> None:
    pass


def _validate_narrow(pop: Population, val: Split, which: list[int], check: Check
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Every lane at once with the training forward, so that, as in training, a trial's numbers
    do not depend on its position or its neighbours (a batched matmul does not promise that)."""
    x, y = val.x.to(pop.device), val.y.to(pop.device)
    chunk = val_chunk(pop, len(val))
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


def _validate_wide(pop: Population, val: Split, which: list[int], check: Check
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
            z = forward(pop.spec, params, a, hp).permute(1, 2, 0).contiguous()  # [S, 1, t]
            chunk_loss, chunk_hits = val_sums(pop.spec, hp, z, ys)
            loss_sum[sl] += chunk_loss
            hits[sl] += chunk_hits
            check()
    idx = torch.tensor(which, device=pop.device)
    return loss_sum[idx], hits[idx]

