"""The one TOML writer: values, keys and whole documents, and presets back to TOML text.

Everything written here reads back equal with tomllib (see tests/test_toml_writer.py). Strings
are TOML basic strings: `"` and `\\` escaped, newlines, tabs and carriage returns as `\\n`, `\\t`,
`\\r`, other control characters (and DEL) as `\\uXXXX`, everything else, unicode included, as is.
Floats are Python's repr (`0.001`, `1e-05`, `inf`, `nan`), which TOML reads back exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from engine.presets.lines import BARE_KEY
from engine.presets.preset import Preset
from engine.spec import StudySpec, TrialConfig, space

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def toml_string(text: str) -> str:
    """A TOML basic string holding `text`."""
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_key(key: str) -> str:
    """One key: bare when TOML allows it, else quoted."""
    return key if BARE_KEY.fullmatch(key) else toml_string(key)


def dotted_key(path: Sequence[str]) -> str:
    """A key path as the user would write it: bare keys plain, others quoted."""
    return ".".join(toml_key(k) for k in path)


def toml_value(value: Any) -> str:
    """A TOML value: bool, int, float, str, list/tuple (array) or dict (inline table)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def toml_document(top: Mapping[str, Any],
                  tables: Iterable[tuple[Sequence[str], Mapping[str, Any]]] = ()) -> str:
    """TOML text: the `top` keys, then one `[table]` per (key path, items), in the order given.

    Values that are dicts are written as inline tables, so any nesting reads back equal.
    """
    lines = [f"{toml_key(k)} = {toml_value(v)}" for k, v in top.items()]
    for path, items in tables:
        lines += ["", f"[{dotted_key(path)}]"]
        lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in items.items()]
    return "\n".join(lines).lstrip("\n") + "\n"


def preset_text(name: str | None, description: str | None,
                sections: Mapping[str, Mapping[str, Any]], vary: Mapping[str, Any]) -> str:
    """A preset's TOML: name and description when given, every section of `engine.spec.space`
    (its header even when empty), then [study.vary] when anything is varied."""
    top = {k: v for k, v in (("name", name), ("description", description)) if v}
    tables: list[tuple[Sequence[str], Mapping[str, Any]]] = [
        ((section,), sections.get(section, {})) for section in space.SECTIONS]
    if vary:
        tables.append((("study", "vary"), vary))
    return toml_document(top, tables)


def study_table(study: StudySpec) -> dict[str, Any]:
    """The `[study]` table as a preset writes it (`vary` included, when anything is varied):
    an adaptive study as `seeds = "auto"` with its min_seeds and max_seeds."""
    table = study.to_dict()
    if table["negligible"] == StudySpec.negligible:
        del table["negligible"]  # the default: said nowhere, as for every other key
    if table["batch"] == StudySpec.batch and not study.batched:
        del table["batch"]  # only a batched study reads it
    adaptive = table.pop("adaptive")
    most = table.pop("max_seeds")
    if not adaptive:
        return table
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key == "seeds":
            out.update(seeds=space.AUTO, min_seeds=value, max_seeds=most)
        else:
            out[key] = value
    return out


def preset_to_toml(preset: Preset | TrialConfig, study: StudySpec | None = None,
                   name: str | None = None, description: str | None = None) -> str:
    """TOML text for a preset (or a config and study); parse_preset() reads it back equal."""
    if isinstance(preset, Preset):
        config, study = preset.config, study or preset.study
        name = preset.name if name is None else name
        description = preset.description if description is None else description
    else:
        config, study = preset, study or StudySpec()
    sections: dict[str, dict[str, Any]] = {**config.to_dict(), "study": study_table(study)}
    vary = sections["study"].pop("vary", {})
    return preset_text(name, description, sections, vary)
