"""The layering rules, checked rather than hoped for: engine/ never imports UI
packages, and the UI side (the CLI and, later, the app) never imports torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _modules_after_import(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize("module", ["engine.run.runner", "engine.train", "engine.run.vault"])
def test_engine_never_imports_ui_packages(module: str) -> None:
    loaded = _modules_after_import(module)
    assert not {"textual", "rich", "plotext", "textual_plotext"} & loaded


@pytest.mark.parametrize("module", ["tui.cli.main", "tui.cli.commands", "tui.app",
                                    "engine.store.store", "engine.study.report",
                                    "engine.presets.parse", "engine.presets.library",
                                    "engine.study.strategies", "engine.study.analysis",
                                    "engine.study.eta", "engine.run.launcher"])
def test_ui_side_never_imports_torch(module: str) -> None:
    assert "torch" not in _modules_after_import(module)


def test_cli_commands_that_only_read_never_import_torch(tmp_path: Path) -> None:
    code = ("import sys; from tui.cli.main import main; main(['presets', '--json']); "
            "main(['studies', '--store', sys.argv[1]]); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "s.db")], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_no_torch_import_statements_in_tui() -> None:
    offenders = [p for p in (ROOT / "tui").rglob("*.py")
                 if any(line.lstrip().startswith(("import torch", "from torch"))
                        for line in p.read_text().splitlines())]
    assert offenders == []
