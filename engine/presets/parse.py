"""TOML preset text to a validated `Preset`, and the CLI's overrides of one.

A preset is a TOML file with the sections of `engine.spec.space` (`[data]`, `[model]`, `[train]`,
`[study]`, `[study.vary]`) plus optional top-level `name` and `description`; missing keys take the
notebook's defaults, so an empty file is the notebook. The whole file is validated before anything
runs and *every* problem is reported at once, each naming the file, the dotted key and the line.

tomllib gives line numbers only for syntax errors, so `KeyLocator` scans the source text itself and
maps dotted key paths to the lines that define them.
"""

from __future__ import annotations

import dataclasses
import re
import stat
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

from engine.presets.lines import KeyLocator
from engine.presets.preset import Preset, PresetError, Problem
from engine.presets.validate import Ctx, validate
from engine.presets.write import dotted_key, preset_to_toml, study_table

# Anything bigger is not a hand-written preset; refusing early keeps a stray log or dataset
# passed by mistake from being read into memory.
MAX_PRESET_BYTES = 1_000_000


def load_preset(path: str | Path) -> Preset:
    """Read and validate a preset file; PresetError lists every problem found."""
    shown = str(path)
    p = Path(path).expanduser()
    text = _read_source(p, shown)
    preset = parse_preset(text, source=shown, base_dir=p.parent.resolve())
    return dataclasses.replace(preset, path=p)


def parse_preset(text: str, source: str = "<preset>", base_dir: Path | None = None) -> Preset:
    """Validate preset TOML text. `base_dir` anchors a relative data.path (the preset's folder)."""
    if "\x00" in text:
        raise PresetError(Problem(source, None, None, "is a binary file, not a TOML preset"))
    if len(text) > MAX_PRESET_BYTES:
        raise PresetError(Problem(source, None, None, _too_big(len(text))))
    text = text.removeprefix("\ufeff")  # a BOM from Windows editors is harmless
    locator = KeyLocator(text)
    raw = _parse_toml(text, source, locator)
    ctx = Ctx(source, locator, base_dir)
    name, description, config, study = validate(raw, ctx)
    if ctx.problems:
        raise PresetError(ctx.problems)
    return Preset(name or _default_name(source), description, config, study, None, text)


def _default_name(source: str) -> str:
    return Path(source).stem if source.endswith(".toml") else "untitled"


def _too_big(size: int) -> str:
    return (f"is too large for a preset ({size:,} bytes; at most {MAX_PRESET_BYTES:,}); "
            "is this the right file?")


def _read_source(path: Path, shown: str) -> str:
    def fail(message: str, line: int | None = None) -> PresetError:
        return PresetError(Problem(shown, line, None, message))

    try:
        st = path.stat()
    except FileNotFoundError:
        raise fail("no such file") from None
    except OSError as e:
        raise fail(f"cannot read the file ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise fail("is a directory; expected a preset file (.toml)")
    if not stat.S_ISREG(st.st_mode):
        # A FIFO or device would block or never end; presets are plain files.
        raise fail("is not a regular file; expected a preset file (.toml)")
    if st.st_size > MAX_PRESET_BYTES:
        raise fail(_too_big(st.st_size))
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_PRESET_BYTES + 1)
    except OSError as e:
        raise fail(f"cannot read the file ({e.strerror or e})") from None
    if len(data) > MAX_PRESET_BYTES:
        raise fail(_too_big(len(data)))
    if b"\x00" in data:
        raise fail("is a binary file, not a TOML preset")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise fail(f"is not UTF-8 text (byte 0x{data[e.start]:02x}); save the preset as UTF-8",
                   line) from None


_TOML_WHERE = re.compile(r"^(?P<msg>.*?)\s*\(at (?:line (?P<line>\d+), column (?P<col>\d+)|"
                         r"end of document)\)$", re.S)


def _parse_toml(text: str, source: str, locator: KeyLocator) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise PresetError(_syntax_problem(str(e), text, source, locator)) from None
    except RecursionError:
        raise PresetError(Problem(source, None, None, "is not valid TOML: nested too deeply")
                          ) from None


def _syntax_problem(error: str, text: str, source: str, locator: KeyLocator) -> Problem:
    m = _TOML_WHERE.match(error)
    msg = m.group("msg") if m else error
    line = int(m.group("line")) if m and m.group("line") else None
    col = m.group("col") if m else None
    if line is None:
        line = text.count("\n") + 1
    redefined = msg.startswith(("Cannot overwrite", "Cannot declare", "Cannot mutate",
                                 "Cannot redefine"))
    if redefined and locator.duplicates:
        dup, dup_line = locator.duplicates[0]
        return Problem(source, dup_line, dotted_key(dup),
                       "is defined twice; each key and [table] may appear only once")
    msg = msg.replace("\n", " ")
    detail = f"{msg[:1].lower()}{msg[1:]}" + (f" (column {col})" if col else "")
    if redefined:
        detail += "; a key or [table] is defined twice"
    for first, last, path in locator.spans:
        if first < line <= last:
            detail += (f"; inside the value of {dotted_key(path)} that starts on line {first}: "
                       "is a closing bracket or quote missing?")
            break
    lines = text.splitlines()
    src = lines[line - 1] if 0 < line <= len(lines) else ""
    word = re.search(r"=\s*([A-Za-z_][A-Za-z0-9_-]*)\s*(#.*)?$", src)
    if msg == "Invalid value" and word and word.group(1) not in ("true", "false", "inf", "nan"):
        detail += f'; strings need quotes, e.g. "{word.group(1)}"'
    return Problem(source, line, None, f"not valid TOML: {detail}")


# --------------------------------------------------------------------------------------------
# Overrides from the command line


def with_overrides(preset: Preset, strategy: str | None = None,
                   seeds: int | str | None = None, samples: int | None = None,
                   batch: int | None = None) -> Preset:
    """The preset with the CLI's --strategy/--seeds/--samples/--batch applied, validated again
    (`seeds` may be "auto"; a number makes an adaptive preset a fixed one).

    Problems caused by a flag name the flag. The new preset's `text` is regenerated TOML (with
    a comment saying what was overridden), so that the text stored with a study reproduces it.
    """
    overrides = {k: v for k, v in (("strategy", strategy), ("seeds", seeds),
                                   ("samples", samples), ("batch", batch))
                 if v is not None}
    if not overrides:
        return preset
    raw: dict[str, Any] = {**preset.config.to_dict(), "study": study_table(preset.study)}
    raw["study"].update(overrides)
    if raw["study"].get("seeds") != "auto":
        raw["study"].pop("min_seeds", None)
        raw["study"].pop("max_seeds", None)
    flags = {f"study.{k}": f"--{k}" for k in overrides}
    source = str(preset.path) if preset.path else f"<{preset.name}>"
    ctx = Ctx(source, KeyLocator(preset.text), None, flags)
    _, _, config, study = validate(raw, ctx)
    if ctx.problems:
        raise PresetError(ctx.problems)
    new = dataclasses.replace(preset, config=config, study=study)
    used = " ".join(f"--{k} {v}" for k, v in overrides.items())
    header = f"# {source} with {used} (regenerated; comments of the original dropped)\n"
    return dataclasses.replace(new, text=header + preset_to_toml(new))
