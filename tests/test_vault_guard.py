"""The test vault's guards, as a user meets them: it stays shut while a study trains or before it
trained, on a CSV that changed since the study was created, and it says when the same test
split was evaluated before by another study (the CLI, its --json and the app's vault screen)."""

from __future__ import annotations

import hashlib
import os
import random
import signal
from pathlib import Path

import pytest
from textual.widgets import Input

from engine.presets import load_preset, resolve_preset_arg, shipped_presets_dir
from engine.spec import pid_alive
from engine.store import Store
from tests.app_helpers import SIZE, plain, run, text_of, until
from tests.cli_helpers import SLOW_PRESET, Result, hp, wait_for
from tui import services as actions
from tui.app import HpTuiApp
from tui.screens.confirm import ConfirmVault
from tui.screens.vault import VaultScreen

TINY = str(shipped_presets_dir() / "tiny.toml")
VAULT_REFUSED = 6


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    (tmp_path / "st").mkdir()
    return tmp_path / "st" / "store.db"


def _vault(store_path: Path, study: int, *extra: str) -> Result:
    # stdin is a pipe, never the developer's terminal: without --yes the vault refuses
    return hp("vault", str(study), "--trial", "1", *extra, store=store_path, stdin="")


# --- a study that trains, or never trained -----------------------------------------------------


def test_the_vault_refuses_a_study_that_never_trained(store_path: Path) -> None:
    with Store(store_path) as s:
        study_id = actions.create_study(s, load_preset(resolve_preset_arg("tiny")))
    r = _vault(store_path, study_id, "--yes")
    assert r.code == VAULT_REFUSED, r.err
    assert "has not trained yet" in r.err and f"hp-tui resume {study_id}" in r.err


@pytest.mark.slow
def test_the_vault_refuses_a_study_still_training(store_path: Path, tmp_path: Path) -> None:
    preset = tmp_path / "slow.toml"
    preset.write_text(SLOW_PRESET)
    assert hp("run", str(preset), "--detach", "--workers", "1", store=store_path).code == 0

    def runner_pid() -> int | None:
        with Store(store_path, readonly=True) as s:
            lease = s.lease(1)
        return int(lease["pid"]) if lease and lease["alive"] else None

    pid = wait_for(runner_pid, timeout=60)
    try:
        for extra in (["--yes"], ["--yes", "--json"]):
            r = _vault(store_path, 1, *extra)
            assert r.code == VAULT_REFUSED, r.err
            assert "still training" in r.err and str(pid) in r.err
            assert "wait for it" in r.err and "stop it" in r.err
            assert r.out == ""

        async def go() -> None:
            with Store(store_path) as store:
                app = HpTuiApp(store=store)
                async with app.run_test(size=SIZE) as pilot:
                    app.push_screen(VaultScreen(1))
                    screen = app.screen
                    await pilot.pause()
                    intro = text_of(app, "#vault-intro")
                    assert "cannot open now" in intro and "still training" in intro
                    assert screen.check_action("open_vault", ()) is False
                    assert screen.query_one("#vault-trial", Input).disabled
                    await pilot.press("ctrl+o")
                    await pilot.pause()
                    assert not isinstance(app.screen, ConfirmVault)

        run(go())
        with Store(store_path, readonly=True) as s:
            assert s.vault(1) is None
    finally:
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not pid_alive(pid), timeout=30)


# --- a CSV that changed ------------------------------------------------------------------------


def _write_csv(path: Path, rows: int = 400, flip_last: bool = False) -> None:
    rng = random.Random(0)
    lines = ["x1,x2,label"]
    for i in range(rows):
        label = i % 2 if not (flip_last and i == rows - 1) else 1 - i % 2
        lines.append(f"{rng.uniform(-1, 1):.4f},{rng.uniform(-1, 1) + label:.4f},{label}")
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.slow
def test_the_vault_refuses_a_csv_that_changed_since_the_study(store_path: Path,
                                                              tmp_path: Path) -> None:
    data = tmp_path / "points.csv"
    _write_csv(data)
    preset = tmp_path / "csv.toml"
    preset.write_text('name = "csv"\n[data]\ndataset = "csv"\npath = "points.csv"\n'
                      "train_size = 200\nval_size = 100\ntest_size = 100\n[train]\nepochs = 2\n"
                      '[study]\nstrategy = "single"\nseeds = 1\n')
    r = hp("run", str(preset), "--json", "--workers", "1", store=store_path)
    assert r.code == 0, r.err
    [recorded] = r.json()["data_fingerprints"]
    original = data.read_bytes()
    assert Path(recorded["resolved"]) == data.resolve() and recorded["size"] == len(original)
    assert recorded["sha256"] == hashlib.sha256(original).hexdigest()

    _write_csv(data, flip_last=True)  # one label changed, same size
    refused = _vault(store_path, 1, "--yes", "--json")
    assert refused.code == VAULT_REFUSED, refused.err
    assert "points.csv" in refused.err and "changed since the study trained" in refused.err
    assert "Restore the file" in refused.err and "data_fingerprints" in refused.err

    async def go() -> list[str]:
        with Store(store_path) as store:
            app = HpTuiApp(store=store)
            async with app.run_test(size=SIZE) as pilot:
                app.push_screen(VaultScreen(1))
                await pilot.pause()
                assert "changed since the study trained" in plain(
                    app.screen.query_one("#vault-choice").content, width=300)
                await pilot.press("ctrl+o")
                await until(pilot, lambda: bool(app._notifications))
                assert not isinstance(app.screen, ConfirmVault)
                assert store.vault(1) is None
                return [n.message for n in app._notifications]

    assert any("changed since the study trained" in m for m in run(go()))

    data.write_bytes(original)  # restored: the vault opens on the rows the study held out
    opened = _vault(store_path, 1, "--yes", "--json")
    assert opened.code == 0, opened.err
    assert 0.0 <= opened.json()["test_acc"] <= 1.0


# --- a test split seen before ------------------------------------------------------------------


@pytest.mark.slow
def test_the_vault_lists_earlier_evaluations_of_the_same_test_split(store_path: Path,
                                                                    tmp_path: Path) -> None:
    other_split = tmp_path / "other.toml"  # the tiny study on other data: another test split
    other_split.write_text(Path(TINY).read_text().replace("[data]\n", "[data]\nseed = 1\n"))
    for preset in (TINY, TINY, str(other_split), TINY):
        assert hp("run", preset, "--workers", "1", store=store_path).code == 0

    first = _vault(store_path, 1, "--yes", "--json")
    assert first.code == 0, first.err
    assert first.json()["earlier_evaluations"] == [] and "seen before" not in first.err
    elsewhere = _vault(store_path, 3, "--yes")  # other data: nothing seen before
    assert elsewhere.code == 0, elsewhere.err
    assert "evaluated before" not in elsewhere.out and "seen before" not in elsewhere.err

    unconfirmed = _vault(store_path, 2)
    assert unconfirmed.code == VAULT_REFUSED
    assert "seen before" in unconfirmed.err and "study 1" in unconfirmed.err
    assert "study 3" not in unconfirmed.err and "--yes" in unconfirmed.err
    second = _vault(store_path, 2, "--yes", "--json")
    assert second.code == 0, second.err
    [earlier] = second.json()["earlier_evaluations"]
    assert (earlier["study"], earlier["trial_number"]) == (1, 1)
    assert earlier["test_acc"] == first.json()["test_acc"]
    assert "seen before" in second.err

    async def go() -> str:
        with Store(store_path) as store:
            app = HpTuiApp(store=store)
            async with app.run_test(size=SIZE) as pilot:
                app.push_screen(VaultScreen(4))
                await pilot.pause()
                shown = plain(app.screen.query_one("#vault-choice").content, width=400)
                await pilot.press("ctrl+o")
                await until(pilot, lambda: isinstance(app.screen, ConfirmVault))
                question = text_of(app, ".question")
                await pilot.press("n")
                await pilot.pause()
                assert store.vault(4) is None
                return shown + question

    shown = run(go())
    assert "seen before" in shown and "study 1" in shown and "study 2" in shown
    assert "study 3" not in shown and "Warning" in shown

    last = _vault(store_path, 4, "--yes")
    assert last.code == 0, last.err
    listed = [line for line in last.out.splitlines() if "evaluated before" in line]
    assert len(listed) == 2 and "study 1" in listed[0] and "study 2" in listed[1]
