"""Finding presets on disk: the shipped ones (package data, so they exist after a plain pip
install), the project's `./presets`, and the user's config directory."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from engine.presets.parse import load_preset
from engine.presets.preset import Preset, PresetError, Problem
from engine.spec import space


@dataclass(frozen=True)
class PresetInfo:
    """A preset file found on disk: `name` is the file stem, what `hp-tui run NAME` accepts."""

    name: str
    description: str
    path: Path
    source: str  # "shipped", "project", "user" or "extra"
    preset: Preset | None
    error: PresetError | None

    @property
    def ok(self) -> bool:
        return self.error is None


def shipped_presets_dir() -> Path:
    """The presets shipped inside the package (works from a checkout and after pip install)."""
    return Path(str(resources.files("presets")))


def user_presets_dir() -> Path:
    """~/.config/hp-tui/presets, honouring XDG_CONFIG_HOME."""
    xdg = os.environ.get("XDG_CONFIG_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".config"
    return base / "hp-tui" / "presets"


def preset_dirs(extra_dirs: Iterable[str | Path] = ()) -> list[tuple[str, Path]]:
    """(source, folder) in listing order, without the same folder twice."""
    candidates = [("shipped", shipped_presets_dir()), ("project", Path.cwd() / "presets"),
                  ("user", user_presets_dir())]
    candidates += [("extra", Path(d).expanduser()) for d in extra_dirs]
    seen: set[Path] = set()
    out: list[tuple[str, Path]] = []
    for source, folder in candidates:
        key = folder.resolve()
        if key not in seen:
            seen.add(key)
            out.append((source, folder))
    return out


def find_presets(extra_dirs: Iterable[str | Path] = ()) -> list[PresetInfo]:
    """Every *.toml preset in the shipped, project (./presets), user and extra folders.

    A preset that fails to load is listed with its error instead of breaking the listing.
    """
    found: list[PresetInfo] = []
    for source, folder in preset_dirs(extra_dirs):
        for path in _toml_files(folder):
            try:
                preset = load_preset(path)
            except PresetError as e:
                found.append(PresetInfo(path.stem, "", path, source, None, e))
            else:
                found.append(PresetInfo(path.stem, preset.description, path, source, preset,
                                        None))
    return found


def _toml_files(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.suffix == ".toml" and p.is_file())
    except OSError:  # missing or unreadable folder: nothing to list
        return []


# Resolution order for a bare name: the most local folder wins, so a project or user preset
# can shadow a shipped one of the same name.
_PRECEDENCE = ("project", "user", "extra", "shipped")


def resolve_preset_arg(arg: str, extra_dirs: Iterable[str | Path] = ()) -> Path:
    """A preset argument to a file: an existing path as is, else a preset name
    ("notebook" or "notebook.toml") looked up in the preset folders."""
    path = Path(arg).expanduser()
    looks_like_path = "/" in arg or os.sep in arg
    if path.is_file() or (looks_like_path and path.exists()):
        return path
    if looks_like_path:
        raise PresetError(Problem(arg, None, None, "no such file"))
    name = arg.removesuffix(".toml")
    folders = sorted(preset_dirs(extra_dirs), key=lambda sf: _PRECEDENCE.index(sf[0]))
    names: list[str] = []
    for _, folder in folders:
        for p in _toml_files(folder):
            if p.stem == name:
                return p
            names.append(p.stem)
    if path.exists():
        return path  # e.g. a directory: load_preset says what is wrong with it
    known = sorted(set(names))
    hint = space.nearest(name, known)
    guess = f"did you mean {hint}? " if hint else ""
    listing = ", ".join(known) if known else "none found"
    raise PresetError(Problem(arg, None, None, f"no such preset or file; {guess}"
                              f"known presets: {listing}; or give the path to a .toml file"))
