"""The preset form's text <-> values, without widgets (so it is easy to test).

Each field is typed as text; `parse_field` turns it into the value the engine's `check_value`
judges, and `build_text` writes the whole form as preset TOML that `parse_preset` validates with
the engine's own rules and messages (cross-field ones too, like a batch larger than the data).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from engine.presets import Preset, parse_preset, preset_text, study_table
from engine.spec import BATCHED_STRATEGIES, StudySpec, space

RANGE = re.compile(r"^\s*(\S+)\s*\.\.\s*(\S+)\s*(log)?\s*$")


def parse_number(text: str) -> Any:
    """"3" -> 3, "1e-3" -> 0.001; anything else stays text, for check_value to name."""
    t = text.strip()
    try:
        return int(t)
    except ValueError:
        pass
    try:
        return float(t)
    except ValueError:
        return t


def parse_widths(text: str) -> Any:
    """"10, 10" (or "[10, 10]") -> [10, 10]."""
    t = text.strip().removeprefix("[").removesuffix("]")
    if not t.strip():
        return []
    return [parse_number(w) for w in t.split(",")]


def parse_field(p: space.Param, text: str) -> Any:
    if p.kind in ("int", "float"):
        return parse_number(text)
    if p.kind == "widths":
        return parse_widths(text)
    return text.strip()


def parse_vary(p: space.Param, text: str) -> Any:
    """The values to try: "0.001, 0.01, 0.1"; widths "10; 40; 10, 10"; a range "1e-4 .. 1 log"
    (random strategy). None when empty (not varied)."""
    if not text.strip():
        return None
    m = RANGE.match(text)
    if m and p.kind in ("int", "float"):
        return {"min": parse_number(m[1]), "max": parse_number(m[2]), "log": bool(m[3])}
    if p.kind == "widths":
        return [parse_widths(part) for part in text.split(";") if part.strip()]
    items = [part.strip().strip("'\"") for part in text.split(",") if part.strip()]
    return [parse_number(i) for i in items] if p.kind in ("int", "float") else items


def check_field(p: space.Param, text: str) -> str | None:
    """The engine's message for one field as typed, or None when it is fine."""
    if p.kind == "str" and not text.strip():
        return None  # optional (data.path): only needed for csv, which parse_preset checks
    _, err = space.check_value(p, parse_field(p, text))
    return err


def check_vary(p: space.Param, text: str) -> str | None:
    entry = parse_vary(p, text)
    if entry is None or isinstance(entry, dict):
        return None  # ranges are checked with the strategy, by parse_preset
    for value in entry:
        _, err = space.check_value(p, value)
        if err:
            return err
    return None


def format_value(p: space.Param, value: Any) -> str:
    if value is None:
        return ""
    if p.kind == "widths":
        return ", ".join(str(w) for w in value)
    return str(value)


def format_vary(p: space.Param, entry: Any) -> str:
    if entry is None:
        return ""
    if isinstance(entry, dict):
        return f"{entry['min']} .. {entry['max']}" + (" log" if entry.get("log") else "")
    if p.kind == "widths":
        return "; ".join(format_value(p, v) for v in entry)
    return ", ".join(str(v) for v in entry)


def build_text(name: str, description: str, values: dict[str, Any],
               vary: dict[str, Any]) -> str:
    """Preset TOML from the form's parsed values (dotted key -> value; vary: key -> entry),
    written by the engine's TOML writer."""
    sections = {section: {p.key: values[p.dotted] for p in space.params_in(section)
                          if values.get(p.dotted) is not None
                          and not (p.kind == "str" and values[p.dotted] == "")}
                for section in space.SECTIONS}
    if sections["study"].get("seeds") != space.AUTO:  # only an adaptive study reads them
        for key in _AUTO_ONLY:
            sections["study"].pop(key, None)
    if (sections["study"].get("batch") == StudySpec.batch
            and sections["study"].get("strategy") not in BATCHED_STRATEGIES):
        del sections["study"]["batch"]  # only a batched study reads it, as the writer says
    if sections["study"].get("pruner", "none") == "none":  # only halving reads them
        for key in _HALVING_ONLY:
            sections["study"].pop(key, None)
    if sections["study"].get("negligible") == StudySpec.negligible:
        del sections["study"]["negligible"]  # the default, left unsaid as the engine's writer does
    return preset_text(name or "untitled", description, sections, vary)


_AUTO_ONLY = ("min_seeds", "max_seeds")
_HALVING_ONLY = ("pruner", "reduction", "min_epochs")


def to_preset(text: str, base_dir: Path | None = None) -> Preset:
    """Validate the form's TOML with the engine (raises PresetError with every problem)."""
    return parse_preset(text, source="<form>", base_dir=base_dir)


def initial_values(preset: Preset | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(dotted -> value, vary key -> entry) to fill the form: the preset's, else the notebook's."""
    d = space.defaults()
    defaults = {f"{s}.{k}": v for s, kv in d.items() for k, v in kv.items()}
    if preset is None:
        return defaults, {}
    sections = {**preset.config.to_dict(), "study": study_table(preset.study)}
    vary = sections["study"].pop("vary", {})
    # What the preset leaves out (a fixed study's auto-only settings, defaults it does not
    # repeat) shows its default.
    return {**defaults, **{f"{s}.{k}": v for s, kv in sections.items()
                           for k, v in kv.items()}}, vary
