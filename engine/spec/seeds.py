"""Seed derivation: one base seed gives independent, stable streams per purpose."""

from __future__ import annotations

import hashlib


def derive_seed(seed: int, tag: str) -> int:
    """A stable 63-bit seed from a base seed and a tag (independent streams per purpose)."""
    digest = hashlib.sha256(f"{seed}:{tag}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def replicate_seed(study_seed: int, replicate: int) -> int:
    """The seed of replicate `replicate` of every configuration of a study."""
    return derive_seed(study_seed, f"replicate:{replicate}")
