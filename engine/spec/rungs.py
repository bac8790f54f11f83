"""Successive halving's rung schedule, once: the presets check it, the study plans with it."""

from __future__ import annotations


def halving_rungs(epochs: int, reduction: int, min_epochs: int = 1) -> tuple[int, ...]:
    """The epoch counts after which a rung decides, ascending: every epochs // reduction^k
    (k = 1, 2, ...) that is at least min_epochs. 27 epochs, reduction 3: (1, 3, 9)."""
    out = []
    at = epochs // reduction
    while at >= max(1, min_epochs):
        out.append(at)
        at //= reduction
    return tuple(sorted(out))
