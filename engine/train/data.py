"""Datasets and their deterministic splits.

`load_splits` gives the training and validation splits, the only data that training and model
selection ever see. The test split comes from its own seed through `test_split`, which only the test
vault calls (a test checks both that nothing else names it and that training never reaches it).

Synthetic sets are generated with explicit `torch.Generator`s, so the same `DataConfig` always gives
the same points, whatever else the process has drawn from the global RNG.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.datasets import DataError, csv_path, read_csv
from engine.spec import DataConfig, derive_seed


@dataclass(frozen=True)
class Split:
    x: torch.Tensor  # [n, features] float32
    y: torch.Tensor  # [n] float32, 0.0 or 1.0

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass(frozen=True)
class Splits:
    train: Split
    val: Split

    @property
    def n_features(self) -> int:
        return int(self.train.x.shape[1])


def load_splits(cfg: DataConfig, base_dir: Path | None = None) -> Splits:
    """Training and validation splits for `cfg`, preprocessed as `cfg.preprocess` says with
    the training split's statistics. Never generates or reads the test split."""
    raw = _raw_splits(cfg, base_dir)
    scale = Scaling.of(cfg.preprocess, raw.train)
    return Splits(scale.apply(raw.train), scale.apply(raw.val))


def test_split(cfg: DataConfig, base_dir: Path | None = None) -> Split:
    """The held-out test split, preprocessed with the training split's statistics (as training
    and validation saw their inputs). Only `engine.run.vault` may call this."""
    scale = Scaling.of(cfg.preprocess, _raw_splits(cfg, base_dir).train)
    if cfg.dataset == "csv":
        rows = _csv_rows(cfg, base_dir)
        _, _, test_idx = _csv_partition(cfg, len(rows[1]))
        return scale.apply(_take(rows, test_idx))
    return scale.apply(_generate(cfg, cfg.test_size, derive_seed(cfg.seed, "test")))


@dataclass(frozen=True)
class Scaling:
    """Per-feature input scaling x -> (x - shift) / scale, float64 statistics of the training
    split (recomputed from it wherever needed: the split is deterministic, so nothing is stored).

    standardize: shift = mean, scale = standard deviation (population, as scikit-learn's
    StandardScaler); minmax: shift = min, scale = max - min. A constant feature keeps scale 1.
    """

    shift: torch.Tensor | None = None  # [features] float64; None: the identity
    scale: torch.Tensor | None = None

    @classmethod
    def of(cls, kind: str, train: Split) -> Scaling:
        if kind == "none":
            return cls()
        x = train.x.to(torch.float64)
        if kind == "standardize":
            shift, scale = x.mean(0), x.std(0, correction=0)
        elif kind == "minmax":
            shift, scale = x.amin(0), x.amax(0) - x.amin(0)
        else:
            raise ValueError(f"unknown preprocess {kind!r}")
        return cls(shift, torch.where(scale > 0, scale, torch.ones_like(scale)))

    def apply(self, split: Split) -> Split:
        if self.shift is None or self.scale is None:
            return split
        x = ((split.x.to(torch.float64) - self.shift) / self.scale).to(torch.float32)
        return Split(x.contiguous(), split.y)


def _raw_splits(cfg: DataConfig, base_dir: Path | None) -> Splits:
    """The splits before preprocessing."""
    if cfg.dataset == "csv":
        rows = _csv_rows(cfg, base_dir)
        train_idx, val_idx, _ = _csv_partition(cfg, len(rows[1]))
        return Splits(_take(rows, train_idx), _take(rows, val_idx))
    return _synthetic_splits(dataclasses.replace(cfg, preprocess="none"))


@functools.lru_cache(maxsize=8)
def _synthetic_splits(cfg: DataConfig) -> Splits:
    return Splits(
        train=_generate(cfg, cfg.train_size, derive_seed(cfg.seed, "train")),
        val=_generate(cfg, cfg.val_size, derive_seed(cfg.seed, "val")),
    )


def _generate(cfg: DataConfig, n: int, seed: int) -> Split:
    g = torch.Generator().manual_seed(seed)
    maker = _GENERATORS[cfg.dataset]
    x, y = maker(n, cfg.noise, g)
    return Split(x.contiguous(), y.to(torch.float32))


def spirals(n: int, noise: float, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The notebook's two interlaced spirals, draw for draw (angles, then noise)."""
    angles = torch.empty((n, 1)).uniform_(1, 15, generator=g)
    x = torch.cat(((angles + 1) * torch.cos(angles), angles * torch.sin(angles)), dim=1)
    x += torch.empty((n, 2)).normal_(0.0, noise, generator=g)
    labels = torch.zeros((n,))
    # flip half of the points to create the second class
    x[n // 2 :, :] *= -1
    labels[n // 2 :] = 1
    return x, labels


# The other toy sets are scaled to a few units across so that the default noise (0.4, sized for
# the spirals) gives a problem that is hard but learnable.
def moons(n: int, noise: float, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    t = torch.empty(n).uniform_(0, math.pi, generator=g)
    labels = (torch.arange(n) >= n // 2).to(torch.float32)
    upper = torch.stack((torch.cos(t), torch.sin(t)), dim=1)
    lower = torch.stack((1 - torch.cos(t), 0.5 - torch.sin(t)), dim=1)
    x = torch.where(labels[:, None] == 1, lower, upper) * 4.0
    return x + torch.empty((n, 2)).normal_(0.0, noise, generator=g), labels


def circles(n: int, noise: float, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    t = torch.empty(n).uniform_(0, 2 * math.pi, generator=g)
    labels = (torch.arange(n) >= n // 2).to(torch.float32)
    radius = torch.where(labels == 1, 2.0, 5.0)
    x = torch.stack((radius * torch.cos(t), radius * torch.sin(t)), dim=1)
    return x + torch.empty((n, 2)).normal_(0.0, noise, generator=g), labels


def xor(n: int, noise: float, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.empty((n, 2)).uniform_(-5, 5, generator=g)
    labels = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).to(torch.float32)
    return x + torch.empty((n, 2)).normal_(0.0, noise, generator=g), labels


def blobs(n: int, noise: float, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    labels = (torch.arange(n) >= n // 2).to(torch.float32)
    centres = torch.where(
        labels[:, None] == 1, torch.tensor([2.0, 2.0]),
        torch.tensor([-2.0, -2.0]))
    # noise 0 would make two points; keep a unit spread and add the requested noise on top
    spread = torch.empty((n, 2)).normal_(0.0, 1.0, generator=g)
    return centres + spread + torch.empty((n, 2)).normal_(0.0, noise, generator=g), labels


_GENERATORS = {"spirals": spirals, "moons": moons, "circles": circles, "xor": xor, "blobs": blobs}


# --- CSV -------------------------------------------------------------------------------------

CsvRows = tuple[torch.Tensor, torch.Tensor]


def _csv_rows(cfg: DataConfig, base_dir: Path | None) -> CsvRows:
    path = csv_path(cfg, base_dir)
    try:
        stat = path.stat()
    except OSError as e:
        raise DataError(f"{path}: cannot read the CSV file ({e.strerror or e})") from None
    return _parse_csv(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4)
def _parse_csv(path: str, _mtime_ns: int, _size: int) -> CsvRows:
    """The file read by `engine.datasets.files`, the same code that checked it before the study was
    stored, as tensors."""
    table = read_csv(Path(path))
    return (torch.tensor(table.features, dtype=torch.float32),
            torch.tensor(table.labels, dtype=torch.float32))


def _csv_partition(
    cfg: DataConfig, n_rows: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    need = cfg.train_size + cfg.val_size + cfg.test_size
    if n_rows < need:
        raise DataError(
            f"{cfg.path}: has {n_rows} rows, too few for train_size + val_size + test_size = "
            f"{cfg.train_size} + {cfg.val_size} + {cfg.test_size} = {need}; lower the sizes "
            "in [data]"
        )
    shuffle = torch.Generator().manual_seed(derive_seed(cfg.seed, "csv"))
    order = torch.randperm(n_rows, generator=shuffle)
    a, b = cfg.train_size, cfg.train_size + cfg.val_size
    return order[:a], order[a:b], order[b:need]


def _take(rows: CsvRows, idx: torch.Tensor) -> Split:
    x, y = rows
    return Split(x[idx].contiguous(), y[idx].contiguous())
