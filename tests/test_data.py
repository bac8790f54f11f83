"""Datasets: the notebook's spirals draw for draw, deterministic splits, CSV errors, and a test
split that training never generates or reads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from engine.spec.config import DataConfig
from engine.train import data

pytestmark = pytest.mark.numerics

ROOT = Path(__file__).resolve().parent.parent


def test_spirals_match_the_notebook_generator() -> None:
    # The notebook's generate_data(), run on the global RNG after manual_seed.
    def notebook(num_data: int) -> tuple[torch.Tensor, torch.Tensor]:
        def spiral(phi: torch.Tensor) -> torch.Tensor:
            return torch.cat(((phi + 1) * torch.cos(phi), phi * torch.sin(phi)), dim=1)

        angles = torch.empty((num_data, 1)).uniform_(1, 15)
        x = spiral(angles)
        x += torch.empty((num_data, 2)).normal_(0.0, 0.4)
        labels = torch.zeros((num_data,), dtype=torch.int)
        x[num_data // 2 :, :] *= -1
        labels[num_data // 2 :] = 1
        return x, labels

    torch.manual_seed(123)
    expected_x, expected_y = notebook(500)
    ours_x, ours_y = data.spirals(500, 0.4, torch.Generator().manual_seed(123))
    assert torch.equal(ours_x, expected_x)
    assert torch.equal(ours_y, expected_y.float())


@pytest.mark.parametrize("name", ["spirals", "moons", "circles", "xor", "blobs"])
def test_splits_are_deterministic_and_sized(name: str) -> None:
    cfg = DataConfig(dataset=name, train_size=300, val_size=120, seed=7)
    a = data.load_splits(cfg)
    data._synthetic_splits.cache_clear()
    b = data.load_splits(cfg)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.val.y, b.val.y)
    assert (len(a.train), len(a.val), a.n_features) == (300, 120, 2)
    assert set(a.train.y.unique().tolist()) == {0.0, 1.0}
    other = data.load_splits(DataConfig(dataset=name, train_size=300, val_size=120, seed=8))
    assert not torch.equal(a.train.x, other.train.x)
    test = data.test_split(cfg)
    assert len(test) == cfg.test_size
    assert not torch.equal(test.x[:120], a.val.x)


def test_training_path_never_generates_the_test_split(monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.spec.config import TrialConfig
    from engine.train import Trial, train_population, train_reference

    cfg = DataConfig(train_size=60, val_size=30, seed=3)
    test_seed = data.derive_seed(cfg.seed, "test")
    seeds_drawn: list[int] = []
    real_generate = data._generate

    def spying_generate(c: DataConfig, n: int, seed: int) -> data.Split:
        seeds_drawn.append(seed)
        return real_generate(c, n, seed)

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the test split was touched outside the vault")

    monkeypatch.setattr(data, "_generate", spying_generate)
    monkeypatch.setattr(data, "test_split", forbidden)
    data._synthetic_splits.cache_clear()
    splits = data.load_splits(cfg)
    trial = Trial(TrialConfig(data=cfg, epochs=1), seed=1)
    train_reference(trial, splits)
    train_population([trial, Trial(trial.config, 2)], splits)
    assert len(seeds_drawn) == 2 and test_seed not in seeds_drawn
    data._synthetic_splits.cache_clear()


def test_only_the_vault_names_the_test_split() -> None:
    """Only the vault (and the module defining it) calls or imports `test_split`."""
    users = [p.relative_to(ROOT).as_posix() for p in (ROOT / "engine").rglob("*.py")
             if re.search(r"\btest_split\s*\(|import[^\n]*\btest_split\b", p.read_text())]
    assert sorted(users) == ["engine/run/vault.py", "engine/train/data.py"]


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_csv_loads_with_a_label_column(tmp_path: Path) -> None:
    rows = "\n".join(f"{i},{i * 2},{i % 2},{-i}" for i in range(50))
    path = _write(tmp_path / "d.csv", "a,b,label,c\n" + rows + "\n")
    cfg = DataConfig(dataset="csv", path=str(path), train_size=30, val_size=10, test_size=10)
    splits = data.load_splits(cfg)
    assert splits.n_features == 3 and len(splits.train) == 30
    # the label column was taken out, whatever its position
    assert set(splits.train.y.tolist()) <= {0.0, 1.0}
    test = data.test_split(cfg)
    every = torch.cat([splits.train.x, splits.val.x, test.x])
    assert len(torch.unique(every[:, 0])) == 50  # a partition: no row in two splits


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("a,b,label\n1,2,0\n3,,1\n", r"line 3, b: a missing cell"),
        ("a,b,label\n1,2,0\n3,x,1\n", r"line 3, b: non-numeric cell 'x'"),
        ("a,b,label\n1,2,0\n3,4,2\n", r"line 3, label: label '2' is not 0 or 1"),
        ("1,2,0\n3,4\n", r"line 2: has 2 cells, expected 3"),
        ("", r"the CSV file is empty"),
        ("a,b,label\n", r"has a header but no rows"),
        ("a,b,label\n1,2,0\n3,4,1\n", r"has 2 rows, too few"),
    ],
)
def test_csv_errors_name_file_line_and_column(tmp_path: Path, content: str, expected: str) -> None:
    path = _write(tmp_path / "bad.csv", content)
    cfg = DataConfig(dataset="csv", path=str(path), train_size=3, val_size=1, test_size=1)
    with pytest.raises(data.DataError, match=expected) as info:
        data.load_splits(cfg)
    assert "bad.csv" in str(info.value)


def test_csv_missing_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(data.DataError, match="cannot read the CSV file"):
        data.load_splits(DataConfig(dataset="csv", path=str(tmp_path / "nope.csv")))
    binary = tmp_path / "b.csv"
    binary.write_bytes(b"\xff\xfe\x00\x01" * 10)
    with pytest.raises(data.DataError, match="not UTF-8"):
        data.load_splits(DataConfig(dataset="csv", path=str(binary)))
