"""Which trials may share a population: the key the trainer groups by, once.

Successive halving ranks configurations within one population's trials (its rungs decide
inside the trainer), so the study side needs the same key without importing the trainer.
"""

from __future__ import annotations

from engine.spec.config import TrialConfig


def population_key(config: TrialConfig) -> tuple[int, int, int]:
    """(batch size, depth, width bucket): widths bucketed by the next power of two, so that a
    [10] trial is not padded to [4096]."""
    widest = max(config.hidden)
    return config.batch_size, len(config.hidden), 1 << max(0, widest - 1).bit_length()
