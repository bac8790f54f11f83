"""The one TOML writer (engine.presets.write): what it writes, tomllib reads back equal; the
preset form writes its text with it, so the form's text reads back as the same preset."""

from __future__ import annotations

import math
import sys
from typing import Any

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from engine.presets import (
    find_presets,
    parse_preset,
    preset_to_toml,
    toml_document,
    toml_key,
    toml_string,
    toml_value,
)
from engine.spec.config import Range, StudySpec, TrialConfig
from tui import form_model

STRINGS = [
    "", "plain", 'a "quoted" word', "back\\slash", "C:\\new\\table", "two\nlines", "tab\there",
    "cr\r\nlf", "unicode é ß 中文", "emoji 😀 and 𝔘", "# not a comment", "a = 1 # [x]",
    "bell\a backspace\b formfeed\f", "nul-free controls \x01\x1f", "del\x7f", "\u2028\u2029",
    "'single' and '''triple'''", '"""', "\\u0041 stays as typed", "trailing \\",
]
FLOATS = [1e-3, 0.1, 0.3, 1.0, -2.5, 1e-05, 1e16, 1e300, 5e-324, -0.0, math.inf, -math.inf]
INTS = [0, 1, -1, 42, 2**63 - 1, -(2**63)]


def read_back(value: Any) -> Any:
    return tomllib.loads(f"v = {toml_value(value)}\n")["v"]


@pytest.mark.parametrize("text", STRINGS, ids=repr)
def test_strings_round_trip(text: str) -> None:
    assert read_back(text) == text
    assert "\n" not in toml_string(text)  # a basic string stays on its line


def test_unicode_is_written_as_is_and_controls_escaped() -> None:
    assert toml_string("é 😀") == '"é 😀"'
    assert toml_string('"\\\n\t\r') == '"\\"\\\\\\n\\t\\r"'
    assert toml_string("\x00\x08\x0c\x1f\x7f") == '"\\u0000\\u0008\\u000c\\u001f\\u007f"'


@pytest.mark.parametrize("number", FLOATS + INTS, ids=repr)
def test_numbers_round_trip(number: float) -> None:
    back = read_back(number)
    assert back == number and type(back) is type(number)
    assert math.copysign(1, back) == math.copysign(1, number)


def test_nan_reads_back_as_nan() -> None:
    assert math.isnan(read_back(math.nan))


def test_bools_lists_and_inline_tables_round_trip() -> None:
    value = {"t": True, "f": False, "empty": [], "mixed": [1, 2.5, "x", [True, []]],
             "widths": (10, 10), "table": {"min": 1e-4, "max": 1.0, "log": True},
             "deep": {"a": {"b": {"c": ["#", "\n"]}}}, "empty table": {},
             "odd key \"q\"": 1, "": "empty key", "ü": "unicode key"}
    expected = {**value, "widths": [10, 10]}
    assert read_back(value) == expected


def test_documents_with_nested_tables_round_trip() -> None:
    top = {"name": "a \"b\"\n", "n": 3, "nested": {"x": {"y": [1, 2]}}}
    tables = [(("data",), {"path": "C:\\data\\f.csv", "ratio": 0.1}),
              (("study", "vary"), {"lr": [1e-3, 0.1], "hidden": [[10], [10, 10]]}),
              (("a b", "c.d"), {"k": {"inner": "# x"}}),
              (("empty",), {})]
    back = tomllib.loads(toml_document(top, tables))
    assert back == {**top, "data": tables[0][1], "study": {"vary": tables[1][1]},
                    "a b": {"c.d": {"k": {"inner": "# x"}}}, "empty": {}}


def test_keys_are_bare_when_allowed() -> None:
    assert toml_key("train_size") == "train_size"
    assert toml_key("a-b_1") == "a-b_1"
    assert toml_key("a.b") == '"a.b"'
    assert toml_key("") == '""'


def test_unwritable_values_are_refused() -> None:
    with pytest.raises(TypeError):
        toml_value(None)


# --------------------------------------------------------------------------------------------
# Presets


def test_to_toml_from_parts_round_trips() -> None:
    config = TrialConfig().replace(hidden=(32, 16), activation="gelu", optimizer="adamw",
                                   lr=3e-4, momentum=0.9, dataset="moons", noise=0.25)
    study = StudySpec(strategy="random", seeds=5, samples=12, seed=7,
                      vary={"lr": Range(1e-5, 0.5, log=True), "hidden": [(8,), (8, 8)],
                            "epochs": [5, 50]})
    text = preset_to_toml(config, study, name='my "best" one', description="line\twith tab")
    preset = parse_preset(text)
    assert (preset.config, preset.study) == (config, study)
    assert preset.name == 'my "best" one' and preset.description == "line\twith tab"


def test_to_toml_of_defaults_is_the_notebook() -> None:
    preset = parse_preset(preset_to_toml(TrialConfig()))
    assert preset.config == TrialConfig() and preset.study == StudySpec()


# --------------------------------------------------------------------------------------------
# The form writes with it


ODD_TEXT = 'odd "name" \\ with\ttab, # hash, é, 😀 and \x7f'


@pytest.mark.parametrize("info", [i for i in find_presets() if i.ok], ids=lambda i: i.name)
def test_form_text_parses_back_to_the_same_preset(info: Any) -> None:
    preset = info.preset
    values, vary = form_model.initial_values(preset)
    text = form_model.build_text(preset.name, preset.description, values, vary)
    again = form_model.to_preset(text)
    assert (again.name, again.description) == (preset.name, preset.description)
    assert (again.config, again.study) == (preset.config, preset.study)


def test_form_and_preset_writer_agree() -> None:
    preset = parse_preset(preset_to_toml(parse_preset("")), source="p.toml")
    values, vary = form_model.initial_values(preset)
    assert form_model.build_text(preset.name, "", values, vary) == preset_to_toml(preset)


def test_form_text_keeps_odd_names_and_descriptions() -> None:
    values, vary = form_model.initial_values(None)
    text = form_model.build_text(ODD_TEXT, ODD_TEXT + "\nsecond line", values, vary)
    preset = form_model.to_preset(text)
    assert preset.name == ODD_TEXT
    assert preset.description == ODD_TEXT + "\nsecond line"
    assert "😀" in text and "é" in text  # unicode is written as is, not as \u escapes
