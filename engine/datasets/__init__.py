"""The user's CSV datasets, checked before a study is written (a clear error, not a failed trial)
and fingerprinted when it is (the vault refuses a file that changed since). No torch."""

from __future__ import annotations

from engine.datasets.files import DataError, check_datasets, csv_file, csv_path, read_csv
from engine.datasets.identity import changed_file, study_fingerprints, test_split_key

__all__ = [
    "DataError",
    "changed_file",
    "check_datasets",
    "csv_file",
    "csv_path",
    "read_csv",
    "study_fingerprints",
    "test_split_key",
]
