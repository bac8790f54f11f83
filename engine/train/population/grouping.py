"""Grouping trials into populations: which trials train together, in which layout, padded how.

Depends on no other module of the population trainer, so that the rules of a population's shape
can be read (and mirrored by `engine.run.memory`) on their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from engine.spec import population_key
from engine.train.reference import Trial

WIDE_QUANTUM = 16  # wide layers are padded to a multiple of this many units
LANES = 32  # populations are padded to a multiple of this many trials (see the package docstring)
NARROW_MAX = 16  # widest layer for the trial-last layout
# ... and with one hidden layer: no [width, width] layer, so the trial-last products grow only
# linearly with the width ([B, W, F, N] and [B, 1, W, N])
SHALLOW_NARROW_MAX = 64
POP_STATE_BYTES = 12 << 20  # cap of a CPU population's parameters and optimizer state


@dataclass
class Group:
    """Trials (indices into the caller's list) trained as one population."""

    indices: list[int]
    trials: list[Trial]
    layout: str


def group_trials(trials: Sequence[Trial], device: torch.device | str | None = None,
                 whole: bool = False) -> list[Group]:
    """Split trials into populations by (batch size, depth, width class); order is kept.

    Widths are bucketed by the next power of two so that a [10] trial is not padded to [4096].
    On CPU a population is also capped so that its state stays within POP_STATE_BYTES: past the
    caches, wide trials train slower per trial in a larger population (measured: [64, 64] Adam,
    270 trial-epochs/s at N = 128, 150 at N = 512). Small one-hidden-layer groups are then
    merged (`_merge_small_shallow`). whole=True keeps each key's trials in one population
    (no cap): successive halving ranks a population's configurations at its rungs.
    """
    groups: dict[tuple[int, int, int], Group] = {}
    for i, t in enumerate(trials):
        key = population_key(t.config)
        groups.setdefault(key, Group([], [], _layout(t.config.hidden)))
        groups[key].indices.append(i)
        groups[key].trials.append(t)
    if whole or (device is not None and torch.device(device).type != "cpu"):
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

