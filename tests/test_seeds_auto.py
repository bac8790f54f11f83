"""`seeds = "auto"`: the preset key, its flag, the writer, the form's text and stored specs."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.presets import (
    PresetError,
    load_preset,
    parse_preset,
    preset_to_toml,
    study_table,
    with_overrides,
)
from engine.spec import StudySpec, space
from tui import form_model

ROOT = Path(__file__).resolve().parent.parent
TINY = (ROOT / "presets" / "tiny.toml").read_text()


def tiny(study_lines: str) -> str:
    return TINY.replace("seeds = 2", study_lines)


def test_auto_starts_at_min_seeds_and_stops_at_max_seeds() -> None:
    study = parse_preset(tiny('seeds = "auto"')).study
    assert (study.seeds, study.adaptive, study.max_seeds) == (4, True, 64)
    study = parse_preset(tiny('seeds = "auto"\nmin_seeds = 2\nmax_seeds = 10')).study
    assert (study.seeds, study.adaptive, study.max_seeds, study.most_seeds) == (2, True, 10, 10)
    fixed = parse_preset(TINY).study
    assert (fixed.seeds, fixed.adaptive, fixed.most_seeds) == (2, False, 2)


def test_fixed_study_ignores_the_auto_settings() -> None:
    study = parse_preset(tiny("seeds = 3\nmin_seeds = 9\nmax_seeds = 5")).study
    assert (study.seeds, study.adaptive, study.most_seeds) == (3, False, 3)


def test_writer_writes_auto_back() -> None:
    preset = parse_preset(tiny('seeds = "auto"\nmin_seeds = 2\nmax_seeds = 16'))
    text = preset_to_toml(preset)
    assert 'seeds = "auto"' in text and "min_seeds = 2" in text and "max_seeds = 16" in text
    assert parse_preset(text).study == preset.study
    fixed = preset_to_toml(parse_preset(TINY))
    assert "seeds = 2" in fixed and "min_seeds" not in fixed and "max_seeds" not in fixed
    assert study_table(parse_preset(TINY).study)["seeds"] == 2


def test_stored_specs_read_back_and_old_ones_are_fixed() -> None:
    study = parse_preset(tiny('seeds = "auto"\nmax_seeds = 16')).study
    stored = study.to_dict()
    assert (stored["seeds"], stored["adaptive"], stored["max_seeds"]) == (4, True, 16)
    assert StudySpec.from_dict(stored) == study
    old = {"strategy": "grid", "seeds": 3, "samples": 20, "seed": 1,
           "vary": {"hidden": [[10], [20, 20]], "lr": [0.1]}}
    spec = StudySpec.from_dict(old)
    assert (spec.adaptive, spec.seeds, spec.most_seeds) == (False, 3, 3)
    assert spec.vary["hidden"] == [(10,), (20, 20)]


def test_seeds_flag_auto_and_back() -> None:
    preset = load_preset(ROOT / "presets" / "tiny.toml")
    auto = with_overrides(preset, seeds="auto")
    assert (auto.study.adaptive, auto.study.seeds, auto.study.max_seeds) == (True, 4, 64)
    assert "--seeds auto" in auto.text and parse_preset(auto.text).study == auto.study
    fixed = with_overrides(auto, seeds=3)
    assert (fixed.study.adaptive, fixed.study.seeds) == (False, 3)
    with pytest.raises(PresetError) as info:
        with_overrides(preset, seeds="often")
    assert [p.key for p in info.value.problems] == ["--seeds"]


def test_form_accepts_auto() -> None:
    seeds = space.param("study.seeds")
    assert form_model.check_field(seeds, "auto") is None
    assert form_model.check_field(seeds, "4") is None
    assert "auto" in (form_model.check_field(seeds, "many") or "")
    values, vary = form_model.initial_values(parse_preset(TINY))
    assert (values["study.seeds"], values["study.max_seeds"]) == (2, 64)
    values["study.seeds"] = "auto"
    values["study.max_seeds"] = 8
    study = form_model.to_preset(form_model.build_text("t", "", values, vary)).study
    assert (study.adaptive, study.seeds, study.max_seeds) == (True, 4, 8)
    values["study.seeds"] = 5
    text = form_model.build_text("t", "", values, vary)
    assert "max_seeds" not in text and form_model.to_preset(text).study.seeds == 5
