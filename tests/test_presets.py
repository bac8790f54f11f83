"""Presets: shipped files validate, bad files are refused with file, key and line, round trips."""

from __future__ import annotations

import os
import random
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from engine.presets import (
    MAX_PRESET_BYTES,
    Preset,
    PresetError,
    Problem,
    load_preset,
    parse_preset,
    preset_to_toml,
    shipped_presets_dir,
    with_overrides,
)
from engine.spec import space
from engine.spec.config import Range, StudySpec, TrialConfig

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted((ROOT / "presets").glob("*.toml"))
BAD_DIR = Path(__file__).resolve().parent / "bad_presets"
BAD = sorted(BAD_DIR.glob("*.toml"))
EXPECTED_SHIPPED = {"notebook", "exercise1_optimizer", "exercise2_architecture",
                    "exercise3_loss", "exercise4_schedule", "tuned", "lr_x_architecture",
                    "tiny", "random_search", "race"}


def refused(path: str | Path) -> PresetError:
    with pytest.raises(PresetError) as info:
        load_preset(path)
    return info.value


# --------------------------------------------------------------------------------------------
# Shipped presets


def test_shipped_set_is_complete() -> None:
    assert {p.stem for p in SHIPPED} >= EXPECTED_SHIPPED


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_preset_validates(path: Path) -> None:
    preset = load_preset(path)
    assert preset.name == path.stem
    assert preset.description and "\n" not in preset.description
    assert len(preset.description) <= 90  # one sentence that fits a listing
    assert preset.text == path.read_text(encoding="utf-8")
    assert preset.path == path


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_preset_round_trips(path: Path) -> None:
    preset = load_preset(path)
    again = parse_preset(preset_to_toml(preset), source="again.toml")
    assert (again.config, again.study) == (preset.config, preset.study)
    assert (again.name, again.description) == (preset.name, preset.description)


def test_notebook_is_the_notebook() -> None:
    """The notebook preset's baseline is exactly the defaults (the notebook's own values)."""
    preset = load_preset(ROOT / "presets" / "notebook.toml")
    assert preset.config == TrialConfig()
    assert preset.config.layers() == (2, 10, 1)
    assert preset.study.strategy == "sensitivity"
    names = set(preset.study.vary)
    assert {"batch_size", "lr", "epochs", "optimizer", "hidden", "activation", "loss"} <= names
    batch_sizes, lrs = _listed(preset, "batch_size"), _listed(preset, "lr")
    assert (min(batch_sizes), max(batch_sizes)) == (10, 400)  # "from 10 to 400"
    assert (min(lrs), max(lrs)) == (0.001, 10)  # "between 0.001 and 10"
    assert {"sgd", "adam", "rmsprop"} <= set(_listed(preset, "optimizer"))
    depths = {len(h) for h in _listed(preset, "hidden")}
    widths = {h[0] for h in _listed(preset, "hidden") if len(h) == 1}
    assert len(depths) >= 3 and len(widths) >= 2  # depth and width


def _listed(preset: Preset, key: str) -> list[Any]:
    values = preset.study.vary[key]
    assert isinstance(values, list)
    return values


def _sensitivity_count_from_file(path: Path) -> int:
    """seeds x (1 + listed values that differ from the baseline), read with tomllib alone."""
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    baseline = {p.key: p.default for p in space.SPACE if p.variable}
    for section in ("data", "model", "train"):
        baseline.update(raw.get(section, {}))
    differing = sum(1 for key, values in raw["study"]["vary"].items()
                    for v in values if v != baseline[key])
    seeds = raw["study"]["seeds"]
    if seeds == "auto":  # the first round's
        seeds = raw["study"].get("min_seeds", space.AUTO_MIN_SEEDS)
    return seeds * (1 + differing)


def test_notebook_sensitivity_count() -> None:
    path = ROOT / "presets" / "notebook.toml"
    count = _sensitivity_count_from_file(path)
    assert count == 60  # 4 seeds x (1 baseline + 14 changed values): the first round
    try:
        from engine.study import strategies
    except ImportError:  # pragma: no cover - strategies land in another change
        return
    preset = load_preset(path)
    assert strategies.count(preset.config, preset.study) == count


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_preset_plans(path: Path) -> None:
    """The strategies accept what the presets accept: every shipped study can be planned."""
    strategies = pytest.importorskip("engine.study.strategies")
    preset = load_preset(path)
    plan = strategies.plan(preset.config, preset.study)
    study = preset.study
    total = strategies.count(preset.config, study)
    # a batched study's plan is its first batch; the sampler asks the rest as it trains
    first = min(study.batch, study.samples) * study.seeds if study.batched else total
    assert plan.n_trials == first
    assert 1 <= total <= 60  # teaching-sized studies


def test_tiny_is_tiny() -> None:
    preset = load_preset(ROOT / "presets" / "tiny.toml")
    assert preset.config.data.train_size <= 200 and preset.config.epochs <= 2
    assert _sensitivity_count_from_file(ROOT / "presets" / "tiny.toml") == 4


def test_shipped_presets_through_importlib_resources() -> None:
    folder = resources.files("presets")
    names = {entry.name for entry in folder.iterdir() if entry.name.endswith(".toml")}
    assert {f"{n}.toml" for n in EXPECTED_SHIPPED} <= names
    text = folder.joinpath("notebook.toml").read_text(encoding="utf-8")
    assert parse_preset(text).study.strategy == "sensitivity"
    assert (shipped_presets_dir() / "notebook.toml").is_file()


def test_package_data_declared() -> None:
    """A plain pip install ships the TOMLs only if pyproject declares them as package data."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "*.toml" in pyproject["tool"]["setuptools"]["package-data"]["presets"]


# --------------------------------------------------------------------------------------------
# The bad corpus: each file says what it expects in its header comments


def _expectations(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("# ") or ":" not in line:
            break
        name, _, value = line[2:].partition(":")
        out[name.strip()] = value.strip()
    return out


def test_bad_corpus_is_big_enough() -> None:
    assert len(BAD) >= 25
    for path in BAD:
        assert {"expect", "key", "line"} <= set(_expectations(path)), path.name


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_bad_preset_refused(path: Path) -> None:
    want = _expectations(path)
    error = refused(path)
    key = None if want["key"] == "-" else want["key"]
    matching = [p for p in error.problems if want["expect"] in p.message]
    assert matching, f"{path.name}: no problem says {want['expect']!r}:\n{error}"
    problem = matching[0]
    assert (problem.path, problem.line, problem.key) == (str(path), int(want["line"]), key)
    # The human message carries the file, the line and the key.
    prefix = f"{path}:{want['line']}: " + (f"{key}: " if key else "")
    assert prefix + problem.message in str(error).splitlines()
    if "count" in want:
        assert len(error.problems) == int(want["count"]), str(error)
    else:
        assert len(error.problems) == 1, str(error)


def test_all_problems_reported_at_once() -> None:
    error = refused(BAD_DIR / "multiple_problems.toml")
    lines = str(error).splitlines()
    assert len(lines) == len(error.problems) == 4
    assert [p.key for p in error.problems] == [
        "model.hidden", "model.activation", "train.learnig_rate", "study.seeds"]
    assert [p.line for p in error.problems] == [6, 7, 9, 11]  # in file order


# --------------------------------------------------------------------------------------------
# Files that are not presets at all


def test_empty_file_is_the_notebook(tmp_path: Path) -> None:
    path = tmp_path / "empty.toml"
    path.write_text("")
    preset = load_preset(path)
    assert preset.config == TrialConfig() and preset.study == StudySpec()
    assert preset.name == "empty" and preset.description == ""
    notebook = load_preset(ROOT / "presets" / "notebook.toml")
    assert preset.config == notebook.config


def test_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "weights.toml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    error = refused(path)
    assert str(error) == f"{path}: is a binary file, not a TOML preset"


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('name = "ok"\ndescription = "café"\n'.encode("latin-1"))
    error = refused(path)
    assert error.problems == [Problem(str(path), 2, None, error.problems[0].message)]
    assert "not UTF-8" in str(error) and "0xe9" in str(error)


def test_huge_file(tmp_path: Path) -> None:
    path = tmp_path / "huge.toml"
    path.write_text("# padding\n" * (MAX_PRESET_BYTES // 10 + 1))
    assert "too large" in str(refused(path))
    with pytest.raises(PresetError, match="too large"):
        parse_preset("#" * (MAX_PRESET_BYTES + 1))


def test_directory(tmp_path: Path) -> None:
    assert str(refused(tmp_path)) == f"{tmp_path}: is a directory; expected a preset file (.toml)"


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    assert str(refused(path)) == f"{path}: no such file"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "pipe.toml"
    os.mkfifo(path)
    assert "not a regular file" in str(refused(path))


def test_deeply_nested_toml() -> None:
    with pytest.raises(PresetError, match="nested too deeply"):
        parse_preset("a = " + "[" * 5000)


def test_bom_is_accepted() -> None:
    assert parse_preset("\ufeff[train]\nlr = 0.1\n").config.lr == 0.1


def test_mutated_presets_never_crash() -> None:
    """Random edits of a real preset give a Preset or a PresetError, never anything else."""
    text = (ROOT / "presets" / "notebook.toml").read_text(encoding="utf-8")
    rng = random.Random(1234)
    alphabet = "[]{}=\"',.#\n 0123456789-abcxyz"
    for _ in range(300):
        chars = list(text)
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(chars))
            op = rng.random()
            if op < 0.4:
                del chars[i]
            elif op < 0.8:
                chars.insert(i, rng.choice(alphabet))
            else:
                chars[i] = rng.choice(alphabet)
        try:
            parse_preset("".join(chars), source="m.toml")
        except PresetError as e:
            assert e.problems and all(p.path == "m.toml" for p in e.problems)


# --------------------------------------------------------------------------------------------
# Rules that need a little setting up


def test_did_you_mean_for_keys_and_choices() -> None:
    cases = {
        "[train]\nlearnig_rate = 0.1": "did you mean lr?",
        "[train]\nlearning_rate = 0.1": "did you mean lr?",
        "[train]\noptimiser = 'adam'": "did you mean optimizer?",
        "[model]\nactivaton = 'relu'": "did you mean activation?",
        "[modle]\nhidden = [10]": "did you mean model?",
        "[train]\noptimizer = 'rmsprob'": "did you mean 'rmsprop'?",
        "[model]\nactivation = 'Tanh'": "did you mean 'tanh'?",
        "[study]\nstrategy = 'gird'": "did you mean 'grid'?",
        "[study]\nstrategy='grid'\nvary.hiden = [[10]]": "did you mean hidden?",
        "vary = 1": "did you mean [study.vary]?",
    }
    for text, hint in cases.items():
        with pytest.raises(PresetError) as info:
            parse_preset(text, "t.toml")
        assert hint in str(info.value), (text, str(info.value))


def test_csv_path_resolves_against_the_preset(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "mine.toml"
    path.write_text('[data]\ndataset = "csv"\npath = "../points.csv"\ntrain_size = 10\n'
                    'val_size = 5\ntest_size = 5\n')
    (tmp_path / "points.csv").write_text("x,label\n1,0\n")  # read by engine.train.data, not here
    preset = load_preset(path)
    assert preset.config.data.path == str(tmp_path / "points.csv")
    absolute = parse_preset(f'[data]\ndataset = "csv"\npath = "{tmp_path}/points.csv"',
                            base_dir=tmp_path / "sub")
    assert absolute.config.data.path == str(tmp_path / "points.csv")


def test_a_missing_csv_file_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text('[data]\ndataset = "csv"\npath = "gone.csv"\n')
    with pytest.raises(PresetError, match=r"p\.toml:3: data\.path: the CSV file .*gone\.csv "
                                          r"does not exist"):
        load_preset(path)


def test_varied_dataset_csv_needs_a_path() -> None:
    text = '[study]\nstrategy = "sensitivity"\n[study.vary]\ndataset = ["spirals", "csv"]\n'
    with pytest.raises(PresetError, match=r"needs data\.path"):
        parse_preset(text)


def test_batch_size_against_varied_train_size() -> None:
    grid = ('[train]\nbatch_size = 50\n[study]\nstrategy = "grid"\n[study.vary]\n'
            'train_size = [20, 4000]\n')
    with pytest.raises(PresetError) as info:
        parse_preset(grid, "g.toml")
    assert info.value.problems[0].key == "study.vary.train_size"
    # In a grid both lists combine: the largest batch meets the smallest training set.
    ok = '[study]\nstrategy = "grid"\n[study.vary]\ntrain_size = [400, 800]\nbatch_size = [10, 400]'
    assert parse_preset(ok).study.vary["batch_size"] == [10, 400]
    bad = ok.replace("[10, 400]", "[10, 401]")
    with pytest.raises(PresetError, match="batch size 401"):
        parse_preset(bad)


def test_vary_forms() -> None:
    text = """
[study]
strategy = "random"
samples = 7
[study.vary]
lr = { min = 1e-4, max = 1 }
noise = { min = 0.1, max = 0.5 }
batch_size = [16, 32.0]
hidden = [[10], 20, [5, 5]]
optimizer = ["adam"]
"""
    study = parse_preset(text).study
    assert study.vary["lr"] == Range(0.0001, 1.0, log=True)  # lr samples on a log scale
    assert study.vary["noise"] == Range(0.1, 0.5, log=False)
    assert study.vary["batch_size"] == [16, 32]
    assert study.vary["hidden"] == [(10,), (20,), (5, 5)]
    assert study.samples == 7


def test_single_study_may_carry_a_vary_table() -> None:
    """`--strategy single` on notebook.toml must work, so a vary table is fine with single."""
    preset = parse_preset('[study]\nstrategy = "single"\n[study.vary]\nlr = [0.1, 1.0]\n')
    assert preset.study.vary == {"lr": [0.1, 1.0]}

# --------------------------------------------------------------------------------------------
# Command-line overrides


def _preset(text: str, name: str = "p.toml") -> Preset:
    return parse_preset(text, source=name)


def test_override_strategy_grid_with_nothing_to_vary() -> None:
    preset = load_preset(ROOT / "presets" / "tuned.toml")
    with pytest.raises(PresetError) as info:
        with_overrides(preset, strategy="grid")
    (problem,) = info.value.problems
    assert problem.key == "--strategy" and problem.line is None
    assert "'grid'" in problem.message and "there are none" in problem.message
    assert str(info.value).startswith(f"{preset.path}: --strategy: ")


def test_override_bad_values_name_the_flag() -> None:
    preset = load_preset(ROOT / "presets" / "tiny.toml")
    with pytest.raises(PresetError) as info:
        with_overrides(preset, strategy="gird", seeds=0, samples=-1)
    keys = {p.key: p.message for p in info.value.problems}
    assert set(keys) == {"--strategy", "--seeds", "--samples"}
    assert "did you mean 'grid'?" in keys["--strategy"]


def test_override_random_on_a_list_preset_and_ranges_in_grid() -> None:
    preset = load_preset(ROOT / "presets" / "random_search.toml")
    with pytest.raises(PresetError) as info:
        with_overrides(preset, strategy="sensitivity")
    assert all("--strategy sensitivity" in p.message for p in info.value.problems)
    assert {p.key for p in info.value.problems} == {"study.vary.lr", "study.vary.batch_size"}
    # lists work with every strategy
    assert with_overrides(load_preset(ROOT / "presets" / "tiny.toml"),
                          strategy="random").study.strategy == "random"


def test_override_applies_and_text_reproduces_it() -> None:
    preset = load_preset(ROOT / "presets" / "notebook.toml")
    single = with_overrides(preset, strategy="single", seeds=256)
    assert (single.study.strategy, single.study.seeds) == ("single", 256)
    assert single.config == preset.config and single.path == preset.path
    assert single.name == preset.name
    again = parse_preset(single.text)
    assert (again.config, again.study) == (single.config, single.study)
    assert single.text.startswith("# ") and "--strategy single --seeds 256" in single.text
    assert with_overrides(preset) is preset


def test_odd_keys_stay_on_one_line() -> None:
    with pytest.raises(PresetError) as info:
        parse_preset('[train]\n"l\\nr" = 1\n', "t.toml")
    assert str(info.value).startswith('t.toml:2: train."l\\nr": unknown key; did you mean lr?')
    assert len(str(info.value).splitlines()) == 1


def test_many_problems_are_capped_in_the_message() -> None:
    text = "\n".join(f"[x{i}]" for i in range(80))
    with pytest.raises(PresetError) as info:
        parse_preset(text, "t.toml")
    assert len(info.value.problems) == 80
    lines = str(info.value).splitlines()
    assert len(lines) == 51 and lines[-1] == "... and 30 more problems"


def test_varied_csv_paths_resolve_too(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    for name in ("a.csv", "sub/b.csv"):
        (tmp_path / name).write_text("x,label\n1,0\n")
    text = ('[data]\ndataset = "csv"\npath = "a.csv"\n[study]\nstrategy = "grid"\n'
            '[study.vary]\npath = ["a.csv", "sub/b.csv"]\n')
    preset = parse_preset(text, base_dir=tmp_path)
    assert preset.study.vary["path"] == [str(tmp_path / "a.csv"), str(tmp_path / "sub" / "b.csv")]
