"""Reading a CSV dataset and judging it, without torch.

The CLI and the app check a study's CSV files before they store the study (a broken file would
otherwise fail every trial in the runner), and the trainer's data module reads them through the
same code, so the two cannot disagree. Errors name the file, the line and the column.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from engine.spec import DataConfig


class DataError(ValueError):
    """A dataset that cannot be loaded; the message names the file and what is wrong."""


@dataclass(frozen=True)
class CsvTable:
    """A CSV's numeric features (rows of equal width) and its 0/1 labels."""

    path: str
    features: list[list[float]]
    labels: list[float]

    def one_class(self) -> str | None:
        """A warning when every row has the same label: nothing to tell apart."""
        classes = set(self.labels)
        if len(classes) != 1:
            return None
        only = int(classes.pop())
        return (f"{self.path}: every label is {only} (no row of class {1 - only}); a model "
                "trained on it learns nothing")


def csv_path(cfg: DataConfig, base_dir: Path | None) -> Path:
    """The file of a CSV dataset; a relative path is relative to the preset's folder."""
    if not cfg.path:
        raise DataError("data.path: dataset = 'csv' needs a path to a CSV file")
    path = Path(cfg.path).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return path


def csv_file(cfg: DataConfig, base_dir: Path | None) -> Path | None:
    """The CSV file a data section reads (`csv_path`), or None when it reads none."""
    return csv_path(cfg, base_dir) if cfg.dataset == "csv" and cfg.path else None


def check_datasets(configs: Iterable[DataConfig], base_dir: Path | None = None) -> list[str]:
    """Read every CSV file the configs name; raises DataError for the first broken one, returns
    warnings (a file with a single class) for the rest."""
    warnings = []
    for path in dict.fromkeys(csv_path(c, base_dir) for c in configs if c.dataset == "csv"):
        warning = read_csv(path).one_class()
        if warning:
            warnings.append(warning)
    return warnings


def read_csv(path: Path) -> CsvTable:
    """Numeric features and a 0/1 label (column `label`, else the last one) from a CSV file."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            # (line number, cells) of each non-blank row; line numbers count the blank ones too
            reader = csv.reader(f)
            rows = [(reader.line_num, r) for r in reader if any(c.strip() for c in r)]
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text CSV file (it is not UTF-8)") from None
    except (OSError, csv.Error) as e:
        raise DataError(f"{path}: cannot read the CSV file ({getattr(e, 'strerror', None) or e})"
                        ) from None
    if not rows:
        raise DataError(f"{path}: the CSV file is empty")
    try:
        return _table(str(path), rows)
    except DataError as e:
        raise DataError(f"{e}{_delimiter_hint(rows[0][1])}") from None


def _table(path: str, rows: list[tuple[int, list[str]]]) -> CsvTable:
    header: list[str] | None = None
    if not all(is_number(c) for c in rows[0][1]):
        header = [c.strip() for c in rows[0][1]]
        rows = rows[1:]
    width = len(header) if header else len(rows[0][1])
    if width < 2:
        raise DataError(f"{path}: needs at least one feature column and a label column")
    label_col = header.index("label") if header and "label" in header else width - 1
    label_name = header[label_col] if header else f"column {label_col + 1}"
    features, labels = [], []
    for line, row in rows:
        if len(row) != width:
            raise DataError(f"{path}, line {line}: has {len(row)} cells, expected {width}")
        values = []
        for j, cell in enumerate(row):
            if not is_number(cell):
                col = header[j] if header else f"column {j + 1}"
                what = "a missing cell" if not cell.strip() else f"non-numeric cell {cell!r}"
                raise DataError(f"{path}, line {line}, {col}: {what}")
            values.append(float(cell))
        label = values.pop(label_col)
        if label not in (0.0, 1.0):
            raise DataError(f"{path}, line {line}, {label_name}: label "
                            f"{row[label_col].strip()!r} is not 0 or 1")
        features.append(values)
        labels.append(label)
    if not features:
        raise DataError(f"{path}: the CSV file has a header but no rows")
    return CsvTable(path, features, labels)


def _delimiter_hint(first_row: list[str]) -> str:
    """Why a file read wrong, when it separates its cells with something other than commas."""
    line = ",".join(first_row)
    for sep, name in ((";", "semicolons"), ("\t", "tabs")):
        if line.count(sep) and line.count(sep) >= line.count(","):
            return (f" (the file seems to separate its cells with {name}; hp-tui reads "
                    "comma-separated files)")
    return ""


def is_number(cell: str) -> bool:
    try:
        return math.isfinite(float(cell))
    except ValueError:
        return False
