"""What identifies a study's data without loading it: fingerprints of the CSV files it trains
on, and the key of a trial's test split.

The test vault needs both: a CSV that changed since the study trained would be evaluated on
other rows than the ones it held out, and two studies over the same data and test seed and size
read the same test points, so a second evaluation there is no longer a first look. Standard
library only (the CLI and the app call it; `engine.train.data`, which needs torch, is not imported).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from engine.datasets.files import csv_file
from engine.spec import DataConfig

CHUNK_BYTES = 1 << 20


def csv_path(data: dict[str, Any], base_dir: Path | None) -> Path | None:
    """The file a stored data section reads, resolved as `engine.train.data` resolves it (None: not
    CSV)."""
    return csv_file(DataConfig(**data), base_dir)


def fingerprint(path: Path) -> dict[str, Any]:
    """sha256 and size of a file's bytes (raises OSError when it cannot be read)."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return {"sha256": digest.hexdigest(), "size": size}


def study_fingerprints(data_sections: Iterable[dict[str, Any]],
                       base_dir: Path | None) -> list[dict[str, Any]]:
    """One record per CSV file the study's trials read: its path as configured, where that
    resolved to, and its fingerprint. Unreadable files are left out (their trials fail in the
    runner, with the reason)."""
    out: dict[str, dict[str, Any]] = {}
    for data in data_sections:
        path = csv_path(data, base_dir)
        if path is None or data["path"] in out:
            continue
        try:
            out[data["path"]] = {"path": data["path"], "resolved": str(path.resolve()),
                                 **fingerprint(path)}
        except OSError:
            continue
    return list(out.values())


def recorded_for(fingerprints: list[dict[str, Any]] | None,
                 data: dict[str, Any]) -> dict[str, Any] | None:
    """The fingerprint recorded at creation for this data section's file, if any."""
    for record in fingerprints or []:
        if record.get("path") == data.get("path"):
            return record
    return None


def changed_file(fingerprints: list[dict[str, Any]] | None, data: dict[str, Any],
                 base_dir: Path | None) -> str | None:
    """Why this data section's CSV is not the file the study trained on, or None when it is
    (or when nothing was recorded: stores from before fingerprints)."""
    record = recorded_for(fingerprints, data)
    path = csv_path(data, base_dir)
    if record is None or path is None:
        return None
    try:
        now = fingerprint(path)
    except OSError as e:
        return f"the CSV file {path} cannot be read ({e.strerror or e})"
    if now["sha256"] == record["sha256"]:
        return None
    return (f"the CSV file {path} changed since the study trained ({record['size']} bytes, "
            f"sha256 {record['sha256'][:12]}..., now {now['size']} bytes, sha256 "
            f"{now['sha256'][:12]}...)")


def test_split_key(data: dict[str, Any], fingerprints: list[dict[str, Any]] | None) -> str:
    """A key equal for two data sections exactly when they give the same test points.

    Synthetic test points depend on the dataset, its noise, the data seed and the test size
    (`engine.train.data.test_split`); a CSV's test rows on the file's bytes (else its path), the
    seed of the shuffle and all three sizes (the test rows follow the training and validation
    rows in the shuffled order)."""
    data = {**dataclasses.asdict(DataConfig()), **data}  # a stored section omits unset keys
    if data.get("dataset") == "csv":
        record = recorded_for(fingerprints, data)
        parts = {"dataset": "csv", "file": record["sha256"] if record else data.get("path"),
                 **{k: data.get(k) for k in ("seed", "train_size", "val_size", "test_size")}}
    else:
        parts = {k: data.get(k) for k in ("dataset", "noise", "seed", "test_size")}
    return json.dumps(parts, sort_keys=True)
