"""The epoch's training data: shuffled samples gathered into a population's step layout."""

from __future__ import annotations

import torch

from engine.train.population.state import Population

EPOCH_DATA_BYTES = 64 << 20  # shuffled training data gathered at once (a whole epoch, mostly)


def epoch_data(pop: Population, x_t: torch.Tensor, y: torch.Tensor, perms: torch.Tensor
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


def batch_slice(pop: Population, xs: torch.Tensor, ys: torch.Tensor, lo: int, hi: int
           ) -> tuple[torch.Tensor, torch.Tensor]:
    if pop.narrow:
        return xs[lo:hi], ys[lo:hi]
    return xs[:, lo:hi], ys[lo:hi]


def segment_steps(pop: Population, batch: int, full: int, n_features: int) -> int:
    """Steps per gather: the whole epoch, unless its data would pass EPOCH_DATA_BYTES."""
    return max(1, min(full, EPOCH_DATA_BYTES // (pop.np * batch * (n_features + 1) * 4)))


def batches(pop: Population, xs: torch.Tensor, ys: torch.Tensor, batch: int
             ) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """The steps' batches of a gathered segment, as batch_slice slices them (one op, not two a
    step)."""
    return xs.split(batch, dim=0 if pop.narrow else 1), ys.split(batch)
