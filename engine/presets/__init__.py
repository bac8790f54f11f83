"""Presets: TOML files describing a study, validated with every problem named by file, key and
line; written back to TOML; found on disk.

The package's modules: `preset` (Preset, Problem, PresetError), `parse` (text -> Preset),
`validate` (the rules), `write` (the TOML writer), `lines` (key -> line), `library` (finding
presets). Code outside the package imports from here.
"""

from engine.presets.library import (
    PresetInfo,
    find_presets,
    preset_dirs,
    resolve_preset_arg,
    shipped_presets_dir,
    user_presets_dir,
)
from engine.presets.lines import KeyLocator
from engine.presets.parse import MAX_PRESET_BYTES, load_preset, parse_preset, with_overrides
from engine.presets.preset import MAX_SHOWN_PROBLEMS, Preset, PresetError, Problem
from engine.presets.write import (
    dotted_key,
    preset_text,
    preset_to_toml,
    study_table,
    toml_document,
    toml_key,
    toml_string,
    toml_value,
)

__all__ = [
    "MAX_PRESET_BYTES",
    "MAX_SHOWN_PROBLEMS",
    "KeyLocator",
    "Preset",
    "PresetError",
    "PresetInfo",
    "Problem",
    "dotted_key",
    "find_presets",
    "load_preset",
    "parse_preset",
    "preset_dirs",
    "preset_text",
    "preset_to_toml",
    "resolve_preset_arg",
    "shipped_presets_dir",
    "study_table",
    "toml_document",
    "toml_key",
    "toml_string",
    "toml_value",
    "user_presets_dir",
    "with_overrides",
]
