"""The rules a preset must follow, applied to the parsed TOML: every problem is collected in a
`Ctx` (naming its key and line, or the CLI flag that set it) rather than stopping at the first."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.presets.lines import KeyLocator
from engine.presets.preset import Problem
from engine.presets.write import dotted_key, toml_value
from engine.spec import Range, StudySpec, TrialConfig, halving_rungs, space

META_KEYS = ("name", "description")
_STUDY_KEYS = tuple(p.key for p in space.params_in("study"))
_NUMERIC = ("int", "float")
_SAMPLING = ("random", "tpe")  # the strategies that draw from ranges


@dataclass
class Ctx:
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

    def has(self, key: str) -> bool:
        """Whether the user set `key` (in the file or with a flag)."""
        return key in self.flags or tuple(key.split(".")) in self.locator.lines

    def origin(self, key: str, value: Any) -> str:
        """How the user set `key`: `--strategy grid` or `study.strategy = 'grid'`."""
        if key in self.flags:
            return f"{self.flags[key]} {value}"
        return f"{key} = {toml_value(value)}"


def validate(raw: dict[str, Any], ctx: Ctx) -> tuple[str | None, str, TrialConfig, StudySpec]:
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
    study = _study_spec(values["study"], vary, ctx)
    if strategy_ok:
        _check_strategy(study, raw_vary, ctx)
        _check_batched(study, ctx)
    _check_batch_sizes(config, study, ctx)
    _check_dataset_path(config, study, ctx)
    if study.halving and strategy_ok:
        _check_halving(config, study, ctx)
    return name, description, config, study


def _check_halving(config: TrialConfig, study: StudySpec, ctx: Ctx) -> None:
    """pruner = "halving" ranks configurations against each other at rungs of one epoch
    count: it needs several configurations, a fixed seed count and one `epochs` for all."""
    origin = ctx.origin("study.pruner", study.pruner)
    if study.strategy in ("single", "sensitivity"):
        ctx.add("study.pruner", f"{origin} ranks configurations against each other; use it "
                f"with strategy 'grid' or 'random', not {study.strategy!r}")
    if study.batched:  # a sampler would be told stopped configurations as if they had ended
        ctx.add("study.pruner", f"{origin} does not combine with strategy "
                f"{study.strategy!r} yet; use it with 'grid' or 'random'")
    if study.adaptive:
        ctx.add("study.seeds", f"{origin} needs a fixed number of seeds (all seeds of a "
                "configuration go on or stop together), not seeds = \"auto\"")
    if "epochs" in study.vary:
        ctx.add("study.vary.epochs", f"{origin} stops configurations at rungs of one epoch "
                "count; set train.epochs once instead of varying it")
        return
    if not halving_rungs(config.epochs, study.reduction, study.min_epochs):
        raised = ctx.has("study.min_epochs") and study.min_epochs > 1
        blame = "study.min_epochs" if raised else "train.epochs"
        ctx.add(blame, f"{origin} has no rung: the first is after epochs // reduction = "
                f"{config.epochs} // {study.reduction} = {config.epochs // study.reduction}, "
                f"which must be at least min_epochs = {study.min_epochs}; train more epochs or "
                "lower study.reduction or study.min_epochs")


def _study_spec(values: dict[str, Any], vary: dict[str, list[Any] | Range],
                ctx: Ctx) -> StudySpec:
    """The `[study]` values as a StudySpec: `seeds = "auto"` starts at min_seeds (adaptive)."""
    values = dict(values)
    low = values.pop("min_seeds", space.AUTO_MIN_SEEDS)
    high = values.pop("max_seeds", space.AUTO_MAX_SEEDS)
    if values.get("seeds") != space.AUTO:
        return StudySpec(**values, vary=vary, max_seeds=high)
    if high < low:
        blame = "study.max_seeds" if ctx.has("study.max_seeds") else "study.min_seeds"
        ctx.add(blame, f"max_seeds ({high}) must be at least min_seeds ({low}), the seeds "
                "of the first round of seeds = \"auto\"")
    values.update(seeds=low, adaptive=True)
    return StudySpec(**values, vary=vary, max_seeds=max(low, high))


def _check_meta(raw: dict[str, Any], ctx: Ctx) -> tuple[str | None, str]:
    name = raw.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        ctx.add("name", f"expected a non-empty string, got {describe(name)}")
        name = None
    description = raw.get("description", "")
    if not isinstance(description, str):
        ctx.add("description", f"expected a string, got {describe(description)}")
        description = ""
    return name, description


def _check_top_level(raw: dict[str, Any], ctx: Ctx) -> dict[str, dict[str, Any]]:
    tables: dict[str, dict[str, Any]] = {}
    for key, value in raw.items():
        if key in META_KEYS:
            continue
        if key not in space.SECTIONS:
            ctx.add((key,), _unknown_top_level(key))
        elif not isinstance(value, dict):
            ctx.add(key, f"expected a table [{key}], got {describe(value)}")
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


def _check_section(section: str, table: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
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
        return None, (f"expected one list of widths such as [10, 10], got {describe(value)}; "
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


def _check_vary(raw: Any, strategy: str | None, ctx: Ctx) -> dict[str, list[Any] | Range]:
    """The validated `study.vary` table: bare key -> list of values, or a Range."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        ctx.add("study.vary", "expected a table of parameter = [values], e.g. "
                f"[study.vary] with lr = [0.01, 0.1]; got {describe(raw)}")
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
            example = "[[10], [10, 10]]" if p.kind == "widths" else f"[{toml_value(p.default)}]"
            ctx.add(dotted, f"expected a list of values to try (e.g. {key} = {example}) or, for "
                    f"random search, a table {{min, max, log}}; got {describe(spec)}")
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


def _check_values(p: space.Param, spec: list[Any], dotted: str, ctx: Ctx) -> list[Any] | None:
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
            ctx.add(dotted, f"duplicate value {toml_value(value)}; list each value once{hint}")
            ok = False
            continue
        values.append(value)
    return values if ok else None


def _check_range(p: space.Param, spec: dict[str, Any], strategy: str | None, dotted: str,
                 ctx: Ctx) -> Range | None:
    ok = True
    if strategy is not None and strategy not in _SAMPLING:
        ctx.add(dotted, f"a {{min, max}} range is only for strategies 'random' and 'tpe' "
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
        ctx.add(f"{dotted}.log", f"expected true or false, got {describe(log)}")
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


def _check_strategy(study: StudySpec, raw_vary: Any, ctx: Ctx) -> None:
    if study.strategy == "single" or (isinstance(raw_vary, dict) and raw_vary):
        return
    if raw_vary is not None and not isinstance(raw_vary, dict):
        return  # already reported as a wrong type
    what = "combines" if study.strategy == "grid" else "varies"
    flagged = "study.strategy" in ctx.flags  # then the problem's key already names the flag
    origin = repr(study.strategy) if flagged else ctx.origin("study.strategy", study.strategy)
    message = (f"{origin} {what} the parameters listed in [study.vary], and there are none; "
               "add one, e.g. [study.vary] with lr = [0.001, 0.01, 0.1]")
    if study.strategy in _SAMPLING:
        message = (f"{origin} draws from the ranges in [study.vary], and there are none; add "
                   "one, e.g. lr = {min = 0.001, max = 1.0}")
    ctx.add("study.strategy" if flagged else "study.vary", message)


def _check_batched(study: StudySpec, ctx: Ctx) -> None:
    """A tpe study trains every configuration with the same fixed seeds: its sampler is told
    one mean per configuration once its batch is trained, and adaptive rounds would change
    means it was already told."""
    if not (study.batched and study.adaptive):
        return
    origin = ctx.origin("study.strategy", study.strategy)
    ctx.add("study.seeds", f'seeds = "auto" does not work with {origin}: its sampler learns '
            "from each configuration's mean over a fixed set of seeds; give a number, e.g. "
            "seeds = 2")


def _varied(study: StudySpec, key: str) -> list[Any] | None:
    values = study.vary.get(key)
    if isinstance(values, Range):
        return [values.min, values.max]
    return values


def _check_batch_sizes(config: TrialConfig, study: StudySpec, ctx: Ctx) -> None:
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


def _check_dataset_path(config: TrialConfig, study: StudySpec, ctx: Ctx) -> None:
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



def describe(value: Any) -> str:
    # The same wording as space.check_value's own messages.
    return space.describe(value)
