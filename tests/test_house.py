"""House rules a reviewer would otherwise check by hand: each package is used through its public
surface, private names stay in their module, files stay short, and nothing points outside the
repository (a clone has only what is in it)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("engine", "tui", "tests", "benchmarks")
MAX_LINES = 500
# Packages whose modules others reach only through the package (`from engine.store import
# Store`). Modules that need torch are imported by path by the code that trains, so that
# importing a package never loads torch.
SURFACES = ("engine.spec", "engine.store", "engine.study", "engine.datasets", "engine.run")
BY_PATH = {"engine.run.pool", "engine.run.ray_cluster", "engine.run.runner", "engine.run.local"}


def python_files(*folders: str) -> list[Path]:
    return sorted(p for f in folders for p in (ROOT / f).rglob("*.py"))


def module_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_from(path: Path) -> list[ast.ImportFrom]:
    tree = ast.parse(path.read_text(), str(path))
    return [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]


def test_no_private_name_is_imported_from_another_module() -> None:
    offenders = [f"{p.relative_to(ROOT)}:{n.lineno} {n.module}.{a.name}"
                 for p in python_files(*SOURCES) for n in imports_from(p)
                 for a in n.names if a.name.startswith("_") and not a.name.startswith("__")]
    assert offenders == []


def test_packages_are_used_through_their_public_surface() -> None:
    offenders = []
    for path in python_files("engine", "tui", "benchmarks"):
        me = module_of(path)
        for node in imports_from(path):
            for package in SURFACES:
                inside = me == package or me.startswith(package + ".")
                if (node.module.startswith(package + ".") and not inside
                        and node.module not in BY_PATH):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.module}")
    assert offenders == [], "import these from the package itself"


def test_every_public_surface_lists_what_it_exports() -> None:
    for package in (ROOT / "engine").iterdir():
        init = package / "__init__.py"
        if init.exists():
            namespace: dict[str, object] = {}
            exec(compile(init.read_text(), str(init), "exec"), namespace)
            exported = namespace.get("__all__")
            assert exported is not None, f"{init.relative_to(ROOT)} has no __all__"
            assert all(name in namespace for name in exported), init


def test_no_source_file_is_longer_than_the_house_limit() -> None:
    long = {str(p.relative_to(ROOT)): n for p in python_files(*SOURCES)
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}, f"split these by concern (limit {MAX_LINES} lines)"


def test_nothing_points_outside_the_repository() -> None:
    outside = re.compile(r"DESIGN\.md|\.\./shared|\bissues? #?\d+\b", re.IGNORECASE)
    files = [*python_files(*SOURCES), *(ROOT / "docs").glob("*.md"), ROOT / "README.md",
             ROOT / "pyproject.toml", *(ROOT / "presets").glob("*.toml")]
    hits = [f"{p.relative_to(ROOT)}:{i}" for p in files
            for i, line in enumerate(p.read_text().splitlines(), 1) if outside.search(line)]
    assert hits == []
