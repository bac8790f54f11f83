"""Fixtures every test module shares.

Helpers that tests import live in modules of their own, never in a test module:
`cli_helpers` (the CLI as a subprocess, `wait_for`), `app_helpers` (Pilot tests: a seeded study,
`until`, plain text of a screen), `ray_helpers` and `proc_helpers` (the Ray tests).

Markers (registered in pyproject.toml): `slow` (seconds each; `pytest -m "not slow"` is the
inner loop), `ray` (a private Ray), `tmux` (the app in a real terminal), `compile` (Inductor),
`numerics` (the trainer's numbers; `.ci/run` runs them under a second kernel path too).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.store import Store


@pytest.fixture(autouse=True)
def user_presets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own user config folder (saved presets go to `user_presets`, never to
    the real one), and no store chosen by the developer's environment."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("HP_TUI_STORE", raising=False)
    monkeypatch.delenv("HP_TUI_LEASE_SECONDS", raising=False)
    return tmp_path / "config" / "hp-tui" / "presets"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """An empty store of this test's own."""
    with Store(tmp_path / "s.db") as s:
        yield s


@pytest.fixture
def seeded_grid(store: Store) -> int:
    """A finished 2x2 grid (8 trials) with deterministic made-up numbers, in `store`."""
    from tests.app_helpers import seed_grid

    return seed_grid(store)
