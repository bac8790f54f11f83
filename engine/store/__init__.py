"""The store: one SQLite file, the single source of truth for studies (no torch).

`Store` opens it; rows come back as the dataclasses below; every failure is a `StoreError` worded
for the user. What it guarantees (locks, leases, crash safety): docs/store.md.
"""

from __future__ import annotations

from engine.store.base import default_store_path
from engine.store.rows import (
    STALE_AFTER,
    BadName,
    EpochRow,
    FinishRow,
    LeaseBusy,
    LeaseLost,
    Metric,
    MetricsDelta,
    NoSuchStudy,
    NoSuchTrial,
    RoundRow,
    StudyRow,
    TrialRow,
    VaultUsed,
    decode_weights,
    encode_weights,
    pct,
)
from engine.store.schema import SCHEMA_VERSION, StoreError
from engine.store.store import Store

__all__ = [
    "SCHEMA_VERSION",
    "STALE_AFTER",
    "BadName",
    "EpochRow",
    "FinishRow",
    "LeaseBusy",
    "LeaseLost",
    "Metric",
    "MetricsDelta",
    "NoSuchStudy",
    "NoSuchTrial",
    "RoundRow",
    "Store",
    "StoreError",
    "StudyRow",
    "TrialRow",
    "VaultUsed",
    "decode_weights",
    "default_store_path",
    "encode_weights",
    "pct",
]
