"""What a preset is once read: `Preset`, and the `Problem`s that `PresetError` lists when one
cannot be read (each naming the file, the dotted key and the line)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.spec import StudySpec, TrialConfig

# A file with thousands of problems is not worth thousands of lines of output.
MAX_SHOWN_PROBLEMS = 50


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
