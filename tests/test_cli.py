"""The headless CLI, driven as a subprocess the way scripts and users drive it."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.presets import load_preset, shipped_presets_dir
from engine.store import Store
from tests.cli_helpers import ROOT, SLOW_PRESET, env_for, hp, start_hp, wait_for

TINY = str(shipped_presets_dir() / "tiny.toml")


@pytest.fixture
def store(tmp_path: Path) -> Path:
    (tmp_path / "st").mkdir()
    return tmp_path / "st" / "store.db"


def test_help_lists_every_command(store: Path) -> None:
    r = hp("--help", store=store)
    assert r.code == 0
    for command in ("run", "resume", "studies", "show", "export", "vault", "presets", "race"):
        assert command in r.out


def test_usage_error_exits_2(store: Path) -> None:
    r = hp("run", store=store)
    assert r.code == 2 and "PRESET" in r.err


def test_presets_lists_shipped_presets_with_sizes(store: Path) -> None:
    r = hp("presets", "--json", store=store)
    assert r.code == 0
    rows = {row["name"]: row for row in r.json()}
    assert {"notebook", "tiny", "tuned", "lr_x_architecture"} <= set(rows)
    assert rows["tiny"]["trials"] == 4 and rows["tiny"]["strategy"] == "sensitivity"


def test_run_tiny_json_has_the_contracted_shape(store: Path) -> None:
    r = hp("run", TINY, "--json", "--name", "first", store=store)
    assert r.code == 0, r.err
    data = r.json()
    assert (data["study"], data["name"], data["strategy"], data["status"]) == (
        1, "first", "sensitivity", "completed")
    assert len(data["trials"]) == 4
    for t in data["trials"]:
        assert set(t) >= {"id", "config", "seed", "status", "val_acc", "val_loss", "train_loss",
                          "epochs"}
        assert t["status"] == "completed" and t["epochs"] == 2
        assert 0.0 <= t["val_acc"] <= 1.0
    [row] = data["impact"]
    assert set(row) >= {"param", "values", "means", "stds", "best", "effect", "noise",
                        "significant", "verdict", "threshold", "decision", "interval",
                        "seeds_needed", "best_claimed", "tied_best", "decided_at"}
    assert row["decision"] in ("matters", "negligible", "undecided")
    assert data["error_rate"] == 0.05 and data["negligible"] == 0.02
    assert row["param"] == "lr" and row["values"] == [0.01, 0.1]
    # stderr announced the plan with its count and an ETA before training
    assert "4 trials" in r.err and "ETA" in r.err
    # the same study, read back by number and by name
    assert hp("show", "first", "--json", store=store).json()["trials"] == data["trials"]
    assert hp("show", "1", "--json", store=store).json()["study"] == 1


@pytest.mark.slow
def test_same_study_twice_gives_the_same_numbers(store: Path) -> None:
    first, second = (hp("run", TINY, "--json", store=store) for _ in range(2))
    a, b = first.json(), second.json()
    assert b["study"] == a["study"] + 1
    # the second run's ETA is the first one's measured time
    assert "default calibration" in first.err and "as the same study here before" in second.err
    assert [t["val_acc"] for t in a["trials"]] == [t["val_acc"] for t in b["trials"]]
    assert [t["train_loss"] for t in a["trials"]] == [t["train_loss"] for t in b["trials"]]


def test_shuffle_option_reproduces_a_study_made_on_another_machine(store: Path) -> None:
    """A study made on a GPU box shuffles with the keyed recipe: `--shuffle keyed` gives the
    same study here (recorded, same numbers twice); the default here is randperm."""
    keyed, again = (hp("run", TINY, "--shuffle", "keyed", "--json", store=store)
                    for _ in range(2))
    plain = hp("run", TINY, "--json", store=store)
    assert keyed.code == again.code == plain.code == 0, keyed.err
    assert keyed.json()["shuffle"] == 2 and plain.json()["shuffle"] == 1
    numbers = [[t["val_acc"], t["train_loss"]] for t in keyed.json()["trials"]]
    assert numbers == [[t["val_acc"], t["train_loss"]] for t in again.json()["trials"]]
    assert numbers != [[t["val_acc"], t["train_loss"]] for t in plain.json()["trials"]]
    bad = hp("run", TINY, "--shuffle", "sorted", store=store)
    assert bad.code == 2 and "--shuffle" in bad.err and "randperm" in bad.err


@pytest.mark.slow
def test_notebook_sensitivity_study_end_to_end(store: Path) -> None:
    """The workshop's question in one command: the impact table of every knob it names."""
    preset = load_preset(shipped_presets_dir() / "notebook.toml")
    vary = preset.study.vary
    base = preset.config.flat()

    def differs(key: str, value: object) -> bool:
        return (list(value) if isinstance(value, (list, tuple)) else value) != base[key]

    # --seeds 2: a fixed study of the notebook's size (its preset's seeds = "auto" may grow)
    expected = 2 * (1 + sum(
        differs(k, v) for k, values in vary.items() for v in values))  # type: ignore[union-attr]
    r = hp("run", "notebook", "--seeds", "2", store=store, timeout=600)
    assert r.code == 0, r.err
    assert f"{expected} trials" in r.err
    assert "impact of each hyperparameter" in r.out
    for key in vary:
        assert key in r.out
    data = hp("show", "1", "--json", store=store).json()
    assert len(data["trials"]) == expected
    assert {row["param"] for row in data["impact"]} == set(vary)
    assert all(t["status"] in ("completed", "diverged") for t in data["trials"])


def test_detach_returns_at_once_and_the_study_finishes(store: Path) -> None:
    r = hp("run", TINY, "--detach", store=store)
    assert r.code == 0 and r.out.strip() == "1"
    wait_for(lambda: hp("show", "1", "--json", store=store).json()["status"] == "completed")
    studies = hp("studies", "--json", store=store).json()
    assert [s["study"] for s in studies] == [1] and studies[0]["trials"] == 4


@pytest.mark.parametrize("fmt", ["csv", "json", "md"])
def test_export_writes_every_trial(store: Path, tmp_path: Path, fmt: str) -> None:
    assert hp("run", TINY, "--json", store=store).code == 0
    out = tmp_path / f"export.{fmt}"
    r = hp("export", "1", "--format", fmt, "-o", str(out), store=store)
    assert r.code == 0, r.err
    text = out.read_text()
    if fmt == "json":
        assert len(json.loads(text)["trials"]) == 4
    elif fmt == "csv":
        assert len(text.strip().splitlines()) == 5 and text.startswith("id,")
    else:
        assert "## Impact" in text and text.count("| completed |") == 4


def test_bad_preset_is_refused_and_nothing_is_written(store: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nlr = -1\nlearnig_rate = 0.1\n")
    r = hp("run", str(bad), store=store)
    assert r.code == 3
    assert "bad.toml:2: train.lr" in r.err and "did you mean lr" in r.err
    assert "Traceback" not in r.err
    assert not store.exists()


def test_unknown_preset_name_suggests_one(store: Path) -> None:
    r = hp("run", "notebok", store=store)
    assert r.code == 3 and "notebook" in r.err and "Traceback" not in r.err


def test_absent_device_is_refused_before_anything_runs(store: Path) -> None:
    r = hp("run", TINY, "--device", "cuda", store=store)
    assert r.code == 3 and "cuda" in r.err and "Traceback" not in r.err
    assert not store.exists()


def test_corrupt_store_is_refused_and_left_untouched(store: Path) -> None:
    garbage = os.urandom(4096)
    store.write_bytes(garbage)
    for args in (("run", TINY), ("studies",), ("show", "1")):
        r = hp(*args, store=store)
        assert r.code == 4, (args, r.err)
        assert str(store) in r.err and "Traceback" not in r.err
    assert store.read_bytes() == garbage
    assert sorted(p.name for p in store.parent.iterdir()) == ["store.db"]


def test_store_from_a_newer_version_is_refused(store: Path) -> None:
    assert hp("run", TINY, store=store).code == 0
    with sqlite3.connect(store) as db:
        db.execute("PRAGMA user_version = 999")
    before = store.read_bytes()
    r = hp("show", "1", store=store)
    assert r.code == 4 and "newer" in r.err
    assert store.read_bytes() == before


def test_unwritable_store_location_is_a_clear_error(store: Path, tmp_path: Path) -> None:
    # Tests run as root, where permissions do not stop writes; a path under a regular file
    # cannot be created by anyone.
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = hp("run", TINY, "--store", str(blocker / "store.db"), store=store)
    assert r.code == 4 and "Traceback" not in r.err and str(blocker) in r.err


@pytest.mark.slow
def test_vault_opens_once(store: Path) -> None:
    assert hp("run", TINY, "--json", store=store).code == 0
    refused = hp("vault", "1", "--trial", "1", store=store, stdin="")
    assert refused.code == 6 and "--yes" in refused.err
    assert Store(store).vault(1) is None
    first = hp("vault", "1", "--trial", "1", "--yes", "--json", store=store)
    assert first.code == 0, first.err
    record = first.json()
    assert record["trial_number"] == 1 and 0 <= record["test_acc"] <= 1
    second = hp("vault", "1", "--trial", "2", "--yes", "--json", store=store)
    assert second.code == 6 and "already opened" in second.err
    assert second.json()["test_acc"] == record["test_acc"]
    shown = hp("show", "1", "--json", store=store).json()
    assert shown["vault"]["trial_number"] == 1


def _slow_study(store: Path, tmp_path: Path) -> Path:
    preset = tmp_path / "slow.toml"
    preset.write_text(SLOW_PRESET)
    return preset


def _runner_pid(store: Path, study: int = 1) -> int:
    def holder() -> int | None:
        if not store.exists():
            return None
        with Store(store) as s:
            lease = s.lease(study)
            return lease["pid"] if lease else None

    return int(wait_for(holder, timeout=60))


def _finished(store: Path, study: int = 1) -> dict[int, tuple]:
    with Store(store) as s:
        rows = s.trials(study)
    return {t.number: (t.status, t.val_acc, t.val_loss, t.train_loss) for t in rows
            if t.status in ("completed", "diverged")}


@pytest.mark.slow
def test_sigkill_then_resume_finishes_every_trial_exactly_once(store: Path,
                                                               tmp_path: Path) -> None:
    preset = _slow_study(store, tmp_path)
    assert hp("run", str(preset), "--detach", "--workers", "1", store=store).code == 0
    pid = _runner_pid(store)
    wait_for(lambda: len(_finished(store)) >= 2, timeout=120)
    os.kill(pid, signal.SIGKILL)
    before = _finished(store)
    with Store(store) as s:
        total = len(s.trials(1))
    assert 2 <= len(before) < total, "the kill should land mid-study"
    r = hp("resume", "1", "--json", "--workers", "1", store=store, timeout=300)
    assert r.code == 0, r.err
    data = r.json()
    assert data["status"] == "completed"
    after = _finished(store)
    assert len(after) == total
    for number, values in before.items():
        assert after[number] == values, f"trial {number} changed after resume"
    # every trial trained exactly once: one metrics row per epoch, no duplicates
    with Store(store) as s:
        histories = s.metrics([t.id for t in s.trials(1)])
    assert all(len(h) == 150 for h in histories.values())
    # and the resumed study equals an uninterrupted one
    fresh = store.parent / "fresh.db"
    clean = hp("run", str(preset), "--json", "--workers", "1", store=fresh, timeout=300).json()
    assert [t["val_acc"] for t in clean["trials"]] == [t["val_acc"] for t in data["trials"]]


@pytest.mark.slow
def test_second_runner_on_a_study_is_refused(store: Path, tmp_path: Path) -> None:
    preset = _slow_study(store, tmp_path)
    assert hp("run", str(preset), "--detach", store=store).code == 0
    pid = _runner_pid(store)
    r = hp("resume", "1", store=store)
    assert r.code == 5 and str(pid) in r.err
    # the engine refuses too, not only the CLI's pre-check
    direct = subprocess.run([sys.executable, "-m", "engine.run.runner", "--store", str(store),
                             "--study", "1"], cwd=ROOT, env=env_for(store), capture_output=True,
                            text=True, timeout=60)
    assert direct.returncode == 5 and str(pid) in direct.stderr, direct.stderr
    os.kill(pid, signal.SIGTERM)  # may land after the study finished: either end is clean
    def ended() -> bool:
        shown = hp("show", "1", "--json", store=store)
        assert shown.code == 0, shown.err
        return shown.json()["status"] in ("interrupted", "completed")

    wait_for(ended, timeout=60)
    with Store(store) as s:
        assert wait_for(lambda: s.lease(1) is None)


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_the_study_resumes(store: Path, tmp_path: Path) -> None:
    preset = _slow_study(store, tmp_path)
    proc = start_hp("run", str(preset), store=store)
    _runner_pid(store)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "resume" in err and "Traceback" not in err
    data = hp("show", "1", "--json", store=store).json()
    assert data["status"] == "interrupted"
    with Store(store) as s:
        assert s.lease(1) is None, "the runner released its lease"
    r = hp("resume", "1", "--json", store=store, timeout=300)
    assert r.code == 0 and r.json()["status"] == "completed"


@pytest.mark.slow
def test_study_names_that_cannot_work_are_input_errors(store: Path) -> None:
    assert hp("run", TINY, "--name", "lr-sweep", store=store).code == 0
    taken = hp("run", TINY, "--name", "lr-sweep", store=store)
    assert taken.code == 3 and "already exists" in taken.err
    number = hp("run", TINY, "--name", "42", store=store)
    assert number.code == 3 and "plain numbers" in number.err
    assert [s["study"] for s in hp("studies", "--json", store=store).json()] == [1]


def test_failed_trials_make_the_run_fail_with_their_error(store: Path, tmp_path: Path) -> None:
    # A CSV that validates (it exists) but cannot be loaded: every trial fails in the runner.
    data = tmp_path / "d.csv"
    data.write_text("a,label\n1,0\n2,1\n")
    preset = tmp_path / "csv.toml"
    preset.write_text(f'[data]\ndataset = "csv"\npath = "{data}"\ntrain_size = 10\n'
                      'val_size = 5\ntest_size = 5\n[study]\nseeds = 1\n')
    r = hp("run", str(preset), "--json", store=store)
    assert r.code == 1, r.err
    assert "1 trial(s) failed" in r.err and "too few" in r.err and "Traceback" not in r.err
    assert r.json()["trials"][0]["status"] == "failed"


def test_store_given_before_the_command_is_the_one_used(store: Path, tmp_path: Path) -> None:
    """`hp-tui --store X run P` and `hp-tui run P --store X` both train into X (the command's
    own default once won silently: the study landed in $HP_TUI_STORE)."""
    other = tmp_path / "other.db"
    r = hp("--store", str(other), "run", TINY, "--json", store=store)
    assert r.code == 0, r.err
    assert hp("--store", str(other), "studies", "--json", store=store).json()[0]["study"] == 1
    assert hp("studies", "--json", store=store).json() == []  # $HP_TUI_STORE: untouched
    assert hp("--store", str(store), "studies", "--json", "--store", str(other),
              store=store).json()[0]["study"] == 1  # the command's own option wins
