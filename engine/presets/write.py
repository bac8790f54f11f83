"""Presets back to TOML text."""

from __future__ import annotations

from typing import Any

from engine.presets.lines import toml_string
from engine.presets.preset import Preset
from engine.spec import space
from engine.spec.config import StudySpec, TrialConfig


def preset_to_toml(preset: Preset | TrialConfig, study: StudySpec | None = None,
                   name: str | None = None, description: str | None = None) -> str:
    """TOML text for a preset (or a config and study); parse_preset() reads it back equal."""
    if isinstance(preset, Preset):
        config, study = preset.config, study or preset.study
        name = preset.name if name is None else name
        description = preset.description if description is None else description
    else:
        config, study = preset, study or StudySpec()
    lines: list[str] = []
    if name:
        lines.append(f"name = {toml_value(name)}")
    if description:
        lines.append(f"description = {toml_value(description)}")
    sections: dict[str, dict[str, Any]] = {**config.to_dict(), "study": study.to_dict()}
    vary = sections["study"].pop("vary", {})
    for section in space.SECTIONS:
        lines += ["", f"[{section}]"]
        lines += [f"{k} = {toml_value(v)}" for k, v in sections[section].items()]
    if vary:
        lines += ["", "[study.vary]"]
        lines += [f"{k} = {toml_value(v)}" for k, v in vary.items()]
    return "\n".join(lines).lstrip("\n") + "\n"


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")
