"""TOML presets to validated configurations and back.

A preset is a TOML file with the sections of `engine.spec.space` (`[data]`, `[model]`, `[train]`,
`[study]`, `[study.vary]`) plus optional top-level `name` and `description`; missing keys take the
notebook's defaults, so an empty file is the notebook. The whole file is validated before anything
runs and *every* problem is reported at once, each naming the file, the dotted key and the line.

tomllib gives line numbers only for syntax errors, so `KeyLocator` scans the source text itself and
maps dotted key paths to the lines that define them.
"""

from __future__ import annotations

import dataclasses
import os
import re
import stat
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

from engine.presets.lines import KeyLocator, dotted_key, toml_string
from engine.spec import Range, StudySpec, TrialConfig, space

# Anything bigger is not a hand-written preset; refusing early keeps a stray log or dataset
# passed by mistake from being read into memory.
MAX_PRESET_BYTES = 1_000_000
# A file with thousands of problems is not worth thousands of lines of output.
MAX_SHOWN_PROBLEMS = 50

META_KEYS = ("name", "description")
_STUDY_KEYS = tuple(p.key for p in space.params_in("study"))
_NUMERIC = ("int", "float")


# --------------------------------------------------------------------------------------------
# Problems and errors


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a preset. `line` is 1-based; `key` is dotted (or a CLI flag)."""

    path: str
    line: int | None
    key: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class PresetError(ValueError):
    """One or more problems with a preset; str() is one line per problem, in file order."""

    def __init__(self, problems: Problem | Sequence[Problem]) -> None:
        items = [problems] if isinstance(problems, Problem) else list(problems)
        self.problems: list[Problem] = _ordered(items)
        shown = [str(p) for p in self.problems[:MAX_SHOWN_PROBLEMS]]
        if len(self.problems) > MAX_SHOWN_PROBLEMS:
            shown.append(f"... and {len(self.problems) - MAX_SHOWN_PROBLEMS} more problems")
        super().__init__("\n".join(shown))


def _ordered(problems: list[Problem]) -> list[Problem]:
    unique = list(dict.fromkeys(problems))
    # File order reads best; problems without a line (whole-file or CLI flags) come last.
    return sorted(unique, key=lambda p: (p.line is None, p.line or 0))


# --------------------------------------------------------------------------------------------
# Locating keys in the source text


# --------------------------------------------------------------------------------------------
# The preset


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    config: TrialConfig
    study: StudySpec
    path: Path | None
    # The TOML source it was loaded from: stored with each study so that it can be rerun.
    text: str

    @property
    def base_dir(self) -> Path | None:
        """Where its relative data paths are anchored: its file's folder (None: no file)."""
        return self.path.resolve().parent if self.path else None


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
    ctx = _Ctx(source, locator, base_dir)
    name, description, config, study = _validate(raw, ctx)
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
# Validation


@dataclass
class _Ctx:
    """Where problems go, and how to name their location."""

    source: str
    locator: KeyLocator
    base_dir: Path | None
    # dotted key -> the CLI flag that set it (with_overrides): problems then name the flag.
    flags: dict[str, str] = dataclasses.field(default_factory=dict)
    problems: list[Problem] = dataclasses.field(default_factory=list)

    def add(self, key: str | tuple[str, ...] | None, message: str) -> None:
        """Report a problem at `key`: a dotted name of ours, or a path holding a user's key."""
        message = message.replace("\n", " ")  # one line per problem, whatever the user typed
        if key is None:
            self.problems.append(Problem(self.source, None, None, message))
            return
        path = tuple(key.split(".")) if isinstance(key, str) else key
        shown = dotted_key(path)
        if shown in self.flags:
            self.problems.append(Problem(self.source, None, self.flags[shown], message))
            return
        self.problems.append(Problem(self.source, self.locator.line(path), shown, message))

    def origin(self, key: str, value: Any) -> str:
        """How the user set `key`: `--strategy grid` or `study.strategy = 'grid'`."""
        if key in self.flags:
            return f"{self.flags[key]} {value}"
        return f"{key} = {_toml_value(value)}"


def _validate(raw: dict[str, Any], ctx: _Ctx) -> tuple[str | None, str, TrialConfig, StudySpec]:
    name, description = _check_meta(raw, ctx)
    tables = _check_top_level(raw, ctx)
    values = {s: _check_section(s, tables.get(s, {}), ctx) for s in space.SECTIONS}
    config = TrialConfig.from_dict({s: values[s] for s in space.CONFIG_SECTIONS})
    if config.data.path is not None:
        config = config.replace(path=_resolve_path(config.data.path, ctx.base_dir))
    raw_vary = tables.get("study", {}).get("vary")
    # An invalid strategy is already reported; rules that depend on it would only add noise.
    strategy_ok = "strategy" not in tables.get("study", {}) or "strategy" in values["study"]
    strategy = values["study"].get("strategy", "single") if strategy_ok else None
    vary = _check_vary(raw_vary, strategy, ctx)
    study = StudySpec(**values["study"], vary=vary)
    if strategy_ok:
        _check_strategy(study, raw_vary, ctx)
    _check_batch_sizes(config, study, ctx)
    _check_dataset_path(config, study, ctx)
    return name, description, config, study


def _check_meta(raw: dict[str, Any], ctx: _Ctx) -> tuple[str | None, str]:
    name = raw.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        ctx.add("name", f"expected a non-empty string, got {_describe(name)}")
        name = None
    description = raw.get("description", "")
    if not isinstance(description, str):
        ctx.add("description", f"expected a string, got {_describe(description)}")
        description = ""
    return name, description


def _check_top_level(raw: dict[str, Any], ctx: _Ctx) -> dict[str, dict[str, Any]]:
    tables: dict[str, dict[str, Any]] = {}
    for key, value in raw.items():
        if key in META_KEYS:
            continue
        if key not in space.SECTIONS:
            ctx.add((key,), _unknown_top_level(key))
        elif not isinstance(value, dict):
            ctx.add(key, f"expected a table [{key}], got {_describe(value)}")
        else:
            tables[key] = value
    return tables


def _unknown_top_level(key: str) -> str:
    if key == "vary":
        return "unknown section; did you mean [study.vary]?"
    home = _section_of(key)
    if home:
        return f"{key} must be inside a section: put it under [{home}]"
    hint = space.nearest(key, [*space.SECTIONS, *META_KEYS])
    known = ", ".join(f"[{s}]" for s in space.SECTIONS)
    guess = f"did you mean {hint}? " if hint else ""
    return f"unknown section or key; {guess}a preset has name, description, {known}"


def _section_of(key: str) -> str | None:
    for p in space.SPACE:
        if p.key == key:
            return p.section
    return None


def _check_section(section: str, table: dict[str, Any], ctx: _Ctx) -> dict[str, Any]:
    """Validated values of one section (bad or unknown keys reported and left out)."""
    out: dict[str, Any] = {}
    known = {p.key: p for p in space.params_in(section)}
    for key, value in table.items():
        if section == "study" and key == "vary":
            continue
        p = known.get(key)
        if p is None:
            ctx.add((section, key), _unknown_key(section, key))
            continue
        normalised, error = _check(p, value)
        if error:
            ctx.add(p.dotted, error)
        else:
            out[key] = normalised
    return out


def _unknown_key(section: str, key: str) -> str:
    keys = [p.key for p in space.params_in(section)] + (["vary"] if section == "study" else [])
    accepts = f"[{section}] accepts: {', '.join(keys)}"
    if section == "study" and key in space.VARIABLE:
        return (f"{key} is not a study setting; set it in [{space.VARIABLE[key].section}], "
                f"or list values to try under [study.vary]")
    if key in META_KEYS:
        # TOML puts every key after [section] into that section: a common slip for these two.
        return f"{key} belongs at the top of the file, before the first [section]"
    home = "study" if key == "vary" else _section_of(key)
    if home and home != section:
        return f"{key} belongs in [{home}], not [{section}]"
    hint = space.nearest(key, keys)
    if hint:
        return f"unknown key; did you mean {hint}? {accepts}"
    other = space.nearest(key, [p.key for p in space.SPACE])
    if other:
        return f"unknown key; did you mean {_section_of(other)}.{other}? {accepts}"
    return f"unknown key; {accepts}"


def _check(p: space.Param, value: Any) -> tuple[Any, str | None]:
    if p.kind == "widths" and isinstance(value, list) and any(isinstance(v, list) for v in value):
        # [[10], [20]] is a list of architectures: that belongs in study.vary.
        return None, (f"expected one list of widths such as [10, 10], got {_describe(value)}; "
                      "to try several architectures, list them under [study.vary]")
    normalised, error = space.check_value(p, value)
    if error and p.kind in _NUMERIC and isinstance(value, str) and _is_number(value):
        error += " (remove the quotes)"
    return normalised, error


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _resolve_path(path: str, base_dir: Path | None) -> str:
    p = Path(path).expanduser()
    if base_dir is not None and not p.is_absolute():
        p = base_dir / p
    return os.path.normpath(p)


# --- study.vary


def _check_vary(raw: Any, strategy: str | None, ctx: _Ctx) -> dict[str, list[Any] | Range]:
    """The validated `study.vary` table: bare key -> list of values, or a Range."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        ctx.add("study.vary", "expected a table of parameter = [values], e.g. "
                f"[study.vary] with lr = [0.01, 0.1]; got {_describe(raw)}")
        return {}
    out: dict[str, list[Any] | Range] = {}
    for key, spec in raw.items():
        p = space.VARIABLE.get(key)
        if p is None:
            ctx.add(("study", "vary", key), _unknown_vary_key(key, spec))
            continue
        dotted = f"study.vary.{key}"
        result: list[Any] | Range | None
        if isinstance(spec, dict):
            result = _check_range(p, spec, strategy, dotted, ctx)
        elif isinstance(spec, list):
            result = _check_values(p, spec, dotted, ctx)
        else:
            example = "[[10], [10, 10]]" if p.kind == "widths" else f"[{_toml_value(p.default)}]"
            ctx.add(dotted, f"expected a list of values to try (e.g. {key} = {example}) or, for "
                    f"random search, a table {{min, max, log}}; got {_describe(spec)}")
            continue
        if result is not None:
            out[key] = result
    return out


def _unknown_vary_key(key: str, spec: Any) -> str:
    if key in _STUDY_KEYS:
        return f"{key} is a study setting and cannot be varied; set study.{key} instead"
    if key in space.CONFIG_SECTIONS and isinstance(spec, dict) and spec:
        first = next(iter(spec))
        return (f"study.vary takes bare parameter names: write {dotted_key((first,))} = [...] "
                f"instead of {dotted_key((key, first))}")
    hint = space.nearest(key, list(space.VARIABLE))
    guess = f"did you mean {hint}? " if hint else ""
    return f"unknown parameter; {guess}study.vary accepts: {', '.join(space.VARIABLE)}"


def _check_values(p: space.Param, spec: list[Any], dotted: str, ctx: _Ctx) -> list[Any] | None:
    if not spec:
        ctx.add(dotted, "empty list; give at least one value to try")
        return None
    values: list[Any] = []
    ok = True
    for item in spec:
        normalised, error = _check(p, item)
        if error:
            ctx.add(dotted, error)
            ok = False
            continue
        # Widths become tuples, like TrialConfig.hidden: hashable and comparable.
        value: Any = tuple(normalised) if isinstance(normalised, list) else normalised
        if p.key == "path":
            value = _resolve_path(str(value), ctx.base_dir)
        if value in values:
            hint = " (each value of hidden is a list of widths, e.g. [[10], [10, 10]])" \
                if p.kind == "widths" else ""
            ctx.add(dotted, f"duplicate value {_toml_value(value)}; list each value once{hint}")
            ok = False
            continue
        values.append(value)
    return values if ok else None


def _check_range(p: space.Param, spec: dict[str, Any], strategy: str | None, dotted: str,
                 ctx: _Ctx) -> Range | None:
    ok = True
    if strategy is not None and strategy != "random":
        ctx.add(dotted, f"a {{min, max}} range is only for strategy 'random' "
                f"({ctx.origin('study.strategy', strategy)}); list the values to try instead")
        ok = False
    if p.kind not in _NUMERIC:
        ctx.add(dotted, f"a {{min, max}} range needs a numeric parameter; list the values of "
                f"{p.key} to try instead")
        return None
    typos: set[str | None] = set()
    for key in spec:
        if key not in ("min", "max", "log"):
            hint = space.nearest(key, ("min", "max", "log"))
            typos.add(hint)
            guess = f"did you mean {hint}? " if hint else ""
            ctx.add((*dotted.split("."), key), f"unknown key; {guess}a range has min, max and log")
            ok = False
    bounds: dict[str, Any] = {}
    for end in ("min", "max"):
        if end not in spec:
            if end not in typos:  # "did you mean max?" already says it
                ctx.add(dotted, f"the range needs {end}")
            ok = False
            continue
        bounds[end], error = _check(p, spec[end])
        if error:
            ctx.add(f"{dotted}.{end}", error)
            ok = False
    log = spec.get("log", p.log_scale)
    if not isinstance(log, bool):
        ctx.add(f"{dotted}.log", f"expected true or false, got {_describe(log)}")
        ok = False
    if not ok or len(bounds) < 2:
        return None
    if bounds["min"] >= bounds["max"]:
        ctx.add(dotted, f"min ({bounds['min']!r}) must be less than max ({bounds['max']!r})")
        return None
    if log and bounds["min"] <= 0:
        ctx.add(dotted, "a log-scale range needs min > 0 (or log = false)")
        return None
    return Range(bounds["min"], bounds["max"], log)


# --- whole-study rules


def _check_strategy(study: StudySpec, raw_vary: Any, ctx: _Ctx) -> None:
    if study.strategy == "single" or (isinstance(raw_vary, dict) and raw_vary):
        return
    if raw_vary is not None and not isinstance(raw_vary, dict):
        return  # already reported as a wrong type
    what = "combines" if study.strategy == "grid" else "varies"
    flagged = "study.strategy" in ctx.flags  # then the problem's key already names the flag
    origin = repr(study.strategy) if flagged else ctx.origin("study.strategy", study.strategy)
    message = (f"{origin} {what} the parameters listed in [study.vary], and there are none; "
               "add one, e.g. [study.vary] with lr = [0.001, 0.01, 0.1]")
    if study.strategy == "random":
        message = (f"{origin} draws from the ranges in [study.vary], and there are none; add "
                   "one, e.g. lr = {min = 0.001, max = 1.0}")
    ctx.add("study.strategy" if flagged else "study.vary", message)


def _varied(study: StudySpec, key: str) -> list[Any] | None:
    values = study.vary.get(key)
    if isinstance(values, Range):
        return [values.min, values.max]
    return values


def _check_batch_sizes(config: TrialConfig, study: StudySpec, ctx: _Ctx) -> None:
    """batch_size <= train_size for every pair a trial of this study can meet."""
    bs, ts = config.batch_size, config.data.train_size
    vbs = _varied(study, "batch_size") if study.strategy != "single" else None
    vts = _varied(study, "train_size") if study.strategy != "single" else None
    if study.strategy == "sensitivity" or (vbs is None and vts is None):
        pairs = [(bs, ts, "train.batch_size", "data.train_size")]
        pairs += [(b, ts, "study.vary.batch_size", "data.train_size") for b in vbs or []]
        pairs += [(bs, t, "train.batch_size", "study.vary.train_size") for t in vts or []]
    else:  # grid and random combine the varied values with each other
        b_key = "study.vary.batch_size" if vbs else "train.batch_size"
        t_key = "study.vary.train_size" if vts else "data.train_size"
        pairs = [(b, min(vts or [ts]), b_key, t_key) for b in vbs or [bs]]
    for b, t, b_key, t_key in pairs:
        if b > t:
            blame = t_key if t_key.startswith("study.vary") else b_key
            ctx.add(blame, f"batch size {b} is larger than the training set "
                    f"({t_key} = {t}); a batch holds at most train_size points")


def _check_dataset_path(config: TrialConfig, study: StudySpec, ctx: _Ctx) -> None:
    datasets = {config.data.dataset}
    varied = study.vary.get("dataset")
    if isinstance(varied, list) and study.strategy != "single":
        datasets |= set(varied)
    has_path = config.data.path is not None or "path" in study.vary
    varied_paths = study.vary.get("path")
    varied_paths = varied_paths if isinstance(varied_paths, list) else []
    if "csv" in datasets and not has_path:
        ctx.add("data.path", "dataset 'csv' needs data.path, the CSV file to read "
                "(relative to the preset's folder)")
    # Only the file's presence is checked here (cheaply, and as the form is typed); its contents
    # are engine.train.data's to judge when the runner loads it.
    paths = [config.data.path] + [v for v in varied_paths if isinstance(v, str)]
    for path in paths:
        if path is not None and "csv" in datasets and not os.path.isfile(path):
            what = "does not exist" if not os.path.exists(path) else "is not a file"
            ctx.add("data.path", f"the CSV file {path} {what}")
    if config.data.path is not None and "csv" not in datasets:
        ctx.add("data.path", f"is only used with dataset = 'csv' (dataset is "
                f"{config.data.dataset!r}); remove it or set dataset = 'csv'")


# --------------------------------------------------------------------------------------------
# Back to TOML


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
        lines.append(f"name = {_toml_value(name)}")
    if description:
        lines.append(f"description = {_toml_value(description)}")
    sections: dict[str, dict[str, Any]] = {**config.to_dict(), "study": study.to_dict()}
    vary = sections["study"].pop("vary", {})
    for section in space.SECTIONS:
        lines += ["", f"[{section}]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in sections[section].items()]
    if vary:
        lines += ["", "[study.vary]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in vary.items()]
    return "\n".join(lines).lstrip("\n") + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _describe(value: Any) -> str:
    # The same wording as space.check_value's own messages.
    return space._describe(value)


# --------------------------------------------------------------------------------------------
# Overrides from the command line


def with_overrides(preset: Preset, strategy: str | None = None, seeds: int | None = None,
                   samples: int | None = None) -> Preset:
    """The preset with the CLI's --strategy/--seeds/--samples applied, validated again.

    Problems caused by a flag name the flag. The new preset's `text` is regenerated TOML (with
    a comment saying what was overridden), so that the text stored with a study reproduces it.
    """
    overrides = {k: v for k, v in (("strategy", strategy), ("seeds", seeds),
                                   ("samples", samples)) if v is not None}
    if not overrides:
        return preset
    raw: dict[str, Any] = {**preset.config.to_dict(), "study": preset.study.to_dict()}
    raw["study"].update(overrides)
    flags = {f"study.{k}": f"--{k}" for k in overrides}
    source = str(preset.path) if preset.path else f"<{preset.name}>"
    ctx = _Ctx(source, KeyLocator(preset.text), None, flags)
    _, _, config, study = _validate(raw, ctx)
    if ctx.problems:
        raise PresetError(ctx.problems)
    new = dataclasses.replace(preset, config=config, study=study)
    used = " ".join(f"--{k} {v}" for k, v in overrides.items())
    header = f"# {source} with {used} (regenerated; comments of the original dropped)\n"
    return dataclasses.replace(new, text=header + preset_to_toml(new))
