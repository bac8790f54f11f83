"""Seed derivation: one base seed gives independent, stable streams per purpose."""

from __future__ import annotations

import hashlib

# How a trial shuffles its training rows each epoch (engine.train.shuffles), recorded per study.
# Both give the same numbers on every device; they differ in where they are fast.
SHUFFLE_DRAWN = 1  # randperm from the trial's generator, on the host: the notebook's way
SHUFFLE_KEYED = 2  # a keyed bijection of the rows, computed on the trial's device
SHUFFLE_RECIPES = (SHUFFLE_DRAWN, SHUFFLE_KEYED)
SHUFFLE_NAMES = {"randperm": SHUFFLE_DRAWN, "keyed": SHUFFLE_KEYED}  # `--shuffle NAME`


def derive_seed(seed: int, tag: str) -> int:
    """A stable 63-bit seed from a base seed and a tag (independent streams per purpose)."""
    digest = hashlib.sha256(f"{seed}:{tag}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def replicate_seed(study_seed: int, replicate: int) -> int:
    """The seed of replicate `replicate` of every configuration of a study."""
    return derive_seed(study_seed, f"replicate:{replicate}")


def seed_schedule(start: int, cap: int) -> list[int]:
    """Seeds per configuration after each round: start, 2 start, 4 start, ... below the cap, then
    the cap ([4, 8, 16, 32, 64] for 4 and 64). A fixed study's schedule is [seeds]."""
    if start < 1 or cap < start:
        raise ValueError(f"a seed schedule needs 1 <= start <= cap, got {start} and {cap}")
    out: list[int] = []
    n = start
    while n < cap:
        out.append(n)
        n *= 2
    return [*out, cap]
