"""The layering, checked rather than hoped for: the import-linter contracts in pyproject.toml
(which package may import which; no circles), and what they cannot see, the modules a running
process has loaded (torch arrives through lazy imports, which only running code reveals)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def _modules_after_import(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize("module", ["engine.run.runner", "engine.train", "engine.run.vault"])
def test_engine_never_imports_ui_packages(module: str) -> None:
    loaded = _modules_after_import(module)
    assert not {"textual", "rich", "plotext", "textual_plotext"} & loaded


@pytest.mark.parametrize("module", ["tui.cli", "tui.app", "engine.store", "engine.study",
                                    "engine.presets", "engine.spec", "engine.datasets",
                                    "engine.run"])
def test_ui_side_and_planning_never_import_torch(module: str) -> None:
    loaded = _modules_after_import(module)
    assert "torch" not in loaded
    assert "optuna" not in loaded  # only asking a tpe study's next batch loads it


def test_cli_commands_that_only_read_never_import_torch(tmp_path: Path) -> None:
    code = ("import sys; from tui.cli import main; main(['presets', '--json']); "
            "main(['studies', '--store', sys.argv[1]]); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "s.db")], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
