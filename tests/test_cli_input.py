"""Hostile and careless input to the `hp-tui` command, run as a user would run it.

Each case must end in an exit code and one line naming what is wrong, never a traceback, and
must leave nothing damaged: study and trial numbers beyond any integer, --workers out of range,
exports over symlinks, fifos and directories, a full or closed stdout, rich markup and control
characters in names and presets, the CSV export's columns, broken CSV datasets, and the logs of
two stores in one folder.
"""

from __future__ import annotations

import csv
import io
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from engine.presets import shipped_presets_dir
from engine.run.launcher import log_path
from tests.cli_helpers import Result, env_for, hp, wait_for

TINY = str(shipped_presets_dir() / "tiny.toml")
HUGE = "99999999999999999999999"  # beyond SQLite's 64-bit integers
NOT_FOUND = 4  # what `show` answers for a study that is not there
# One worker too many: out of range, yet harmless should the check ever be lost
TOO_MANY = str((os.cpu_count() or 1) + 1)


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding one finished tiny study, for the cases that only read."""
    store = tmp_path_factory.mktemp("done") / "store.db"
    r = hp("run", TINY, "--name", "first", store=store)
    assert r.code == 0, r.err
    return store


@pytest.fixture
def store(tmp_path: Path) -> Path:
    (tmp_path / "st").mkdir()
    return tmp_path / "st" / "store.db"


def hp_to(stdout: io.IOBase | int, *args: str, store: Path) -> Result:
    """`hp` with stdout sent where the caller says (a full device, a closed pipe)."""
    proc = subprocess.run([sys.executable, "-m", "tui.cli", *args], cwd=store.parent,
                          env=env_for(store), stdout=stdout, stderr=subprocess.PIPE, text=True,
                          timeout=120)
    return Result(proc.returncode, "", proc.stderr)


def one_clean_line(err: str) -> bool:
    return "Traceback" not in err and len(err.strip().splitlines()) == 1


def study_numbers(store: Path) -> list[int]:
    return [s["study"] for s in hp("studies", "--json", store=store).json()]


# --- study and trial references --------------------------------------------------------------

@pytest.mark.parametrize("ref", [HUGE, "²"])  # "²".isdigit() is True, int("²") fails
def test_a_study_number_no_study_can_have_is_a_missing_study(done: Path, ref: str) -> None:
    ordinary = hp("show", "7", store=done)
    assert ordinary.code == NOT_FOUND and "no study 7" in ordinary.err
    for command in (["show", ref], ["export", ref, "--format", "csv"], ["resume", ref]):
        r = hp(*command, store=done)
        assert r.code == NOT_FOUND, r.err
        assert f"no study {ref}" in r.err and "1 (first)" in r.err and one_clean_line(r.err)


def test_a_trial_number_beyond_any_integer_is_a_missing_trial(done: Path) -> None:
    r = hp("vault", "1", "--trial", HUGE, "--yes", store=done)
    assert r.code == NOT_FOUND and one_clean_line(r.err)
    assert f"study 1 has no trial {HUGE}; its trials are numbered 1 to 4" in r.err
    assert "vault" not in hp("show", "1", "--json", store=done).json()  # still unopened


# --- --workers -------------------------------------------------------------------------------

@pytest.mark.parametrize("workers", ["0", "-3", TOO_MANY])
def test_workers_out_of_range_are_refused_before_anything_is_written(store: Path,
                                                                     workers: str) -> None:
    r = hp("run", TINY, "--workers", workers, store=store)
    assert r.code == 3 and one_clean_line(r.err)
    assert f"--workers {workers}: expected 1 to {os.cpu_count()}" in r.err
    assert not store.exists()


def test_resume_refuses_workers_out_of_range_too(done: Path) -> None:
    r = hp("resume", "1", "--workers", TOO_MANY, store=done)
    assert r.code == 3 and f"--workers {TOO_MANY}: expected 1 to" in r.err


# --- where exports and output go -------------------------------------------------------------

def test_an_export_through_a_symlink_writes_its_target_and_keeps_the_link(done: Path,
                                                                          tmp_path: Path) -> None:
    target = tmp_path / "target.csv"
    target.write_text("old\n")
    target.chmod(0o600)
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    r = hp("export", "1", "--format", "csv", "-o", str(link), store=done)
    assert r.code == 0, r.err
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text().startswith("id,")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600  # a private file stays private


def test_an_export_is_never_written_over_what_is_not_a_regular_file(done: Path,
                                                                    tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    folder = tmp_path / "folder"
    folder.mkdir()
    (tmp_path / "to-fifo").symlink_to(fifo)
    for path, kind in ((fifo, "a fifo"), (folder, "a directory"),
                       (tmp_path / "to-fifo", "a fifo")):
        r = hp("export", "1", "--format", "csv", "-o", str(path), store=done)
        assert r.code == 3, r.err
        assert str(path) in r.err and f"it is {kind}" in r.err and one_clean_line(r.err)
    assert stat.S_ISFIFO(fifo.stat().st_mode) and folder.is_dir() and not any(folder.iterdir())


def test_an_export_is_never_written_over_the_store(done: Path) -> None:
    before = done.read_bytes()
    link = done.parent / "link-to-store"
    link.symlink_to(done)
    for path in (done, link, Path(f"{done}-wal")):
        r = hp("export", "1", "--format", "json", "-o", str(path), store=done)
        assert r.code == 3 and "is the store itself" in r.err and one_clean_line(r.err), r.err
    assert done.read_bytes() == before and hp("show", "1", store=done).code == 0


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("command", [["show", "1", "--json"], ["show", "1"], ["studies"],
                                     ["export", "1", "--format", "csv"]])
def test_a_full_stdout_is_one_line_and_a_failure(done: Path, command: list[str]) -> None:
    with open("/dev/full", "w") as full:
        r = hp_to(full, *command, store=done)
    assert r.code == 1, r.err
    assert "cannot write the output: No space left on device" in r.err and one_clean_line(r.err)


def test_a_reader_that_left_is_no_error(done: Path) -> None:
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first byte (`hp-tui show 1 --json | true`)
    try:
        r = hp_to(write, "show", "1", "--json", store=done)
    finally:
        os.close(write)
    assert r.code == 0 and r.err == ""


# --- names and presets as text ---------------------------------------------------------------

def test_markup_in_a_study_name_prints_as_written(store: Path) -> None:
    assert hp("run", TINY, "--name", "[b]x[/]", store=store).code == 0
    assert "[b]x[/]" in hp("studies", store=store).out
    shown = hp("show", "[b]x[/]", store=store)
    assert shown.code == 0 and "study 1 '[b]x[/]'" in shown.out


def test_a_study_name_with_control_characters_is_refused(store: Path) -> None:
    assert hp("run", TINY, "--name", "first", store=store).code == 0
    r = hp("run", TINY, "--name", "a\x1b[31mb\x07", store=store)
    assert r.code == 3 and "control character \\x1b" in r.err and one_clean_line(r.err)
    assert "\x1b" not in r.err and "\x07" not in r.err
    assert study_numbers(store) == [1]


def test_a_presets_markup_and_control_characters_print_as_text(store: Path) -> None:
    presets = store.parent / "presets"  # ./presets is one of the places presets are found
    presets.mkdir()
    text = Path(TINY).read_text().split("[data]")[1]
    (presets / "loud.toml").write_text(
        'name = "p\\u001b[31mq"\ndescription = "ding\\u0007 [b]bold[/]"\n[data]' + text)
    run = hp("run", str(presets / "loud.toml"), store=store)
    assert run.code == 0, run.err
    listed = hp("presets", store=store).out
    shown = hp("show", "1", store=store).out
    studies = hp("studies", store=store).out
    for out in (run.err, listed, shown, studies):
        assert "\x1b" not in out and "\x07" not in out
    for out in (run.err, shown, studies):
        assert "p\\x1b[31mq" in out
    assert "ding\\x07 [b]bold[/]" in listed  # the list names presets by file: loud


# --- the CSV export --------------------------------------------------------------------------

def test_the_csv_export_has_unique_columns_each_under_its_own_header(done: Path) -> None:
    r = hp("export", "1", "--format", "csv", store=done)
    assert r.code == 0, r.err
    header = next(csv.reader(io.StringIO(r.out)))
    assert len(header) == len(set(header)), header
    rows = list(csv.DictReader(io.StringIO(r.out)))
    trials = {t["id"]: t for t in hp("show", "1", "--json", store=done).json()["trials"]}
    assert len(rows) == len(trials) == 4
    for row in rows:
        t = trials[int(row["id"])]
        assert (row["seed"], row["epochs"], row["status"]) == (
            str(t["seed"]), str(t["epochs"]), t["status"])
        assert (row["data.seed"], row["train.epochs"]) == (
            str(t["config"]["seed"]), str(t["config"]["epochs"]))
        assert float(row["lr"]) == t["config"]["lr"]


# --- CSV datasets ----------------------------------------------------------------------------

GOOD_ROWS = "".join(f"{i},{i * 2},{i % 2}\n" for i in range(12))


def csv_study(folder: Path, content: str) -> Path:
    (folder / "points.csv").write_text(content)
    preset = folder / "points.toml"
    preset.write_text('[data]\ndataset = "csv"\npath = "points.csv"\ntrain_size = 6\n'
                      "val_size = 3\ntest_size = 3\n[train]\nepochs = 1\nbatch_size = 3\n"
                      "[study]\nseeds = 1\n")
    return preset


@pytest.mark.parametrize(("content", "expected"), [
    ("a,b,label\n" + GOOD_ROWS + "3,,1\n", "points.csv, line 14, b: a missing cell"),
    # the blank line counts: the error names the line an editor shows
    ("a,b,label\n1,2,0\n\n3,x,1\n" + GOOD_ROWS, "points.csv, line 4, b: non-numeric cell 'x'"),
    ("a,b,label\n" + GOOD_ROWS + "3,4,2\n", "points.csv, line 14, label: label '2' is not 0 or 1"),
    ("a;b;label\n1;2;0\n3;4;1\n", "separate its cells with semicolons"),
])
def test_a_broken_csv_is_refused_before_the_study_is_stored(store: Path, tmp_path: Path,
                                                           content: str, expected: str) -> None:
    r = hp("run", str(csv_study(tmp_path, content)), store=store)
    assert r.code == 3, r.err
    assert expected in r.err and "Traceback" not in r.err
    assert study_numbers(store) == []


def test_a_csv_with_one_class_trains_with_a_warning(store: Path, tmp_path: Path) -> None:
    rows = "".join(f"{i},{i * 2},0\n" for i in range(12))
    r = hp("run", str(csv_study(tmp_path, "a,b,label\n" + rows)), "--json", store=store)
    assert r.code == 0, r.err
    assert "warning: " in r.err and "points.csv: every label is 0" in r.err
    assert r.json()["status"] == "completed"


def test_the_trainer_reads_csv_through_the_same_check(tmp_path: Path) -> None:
    from engine.datasets import files as csv_check
    from engine.spec.config import DataConfig
    from engine.train import data

    path = tmp_path.resolve() / "bad.csv"  # the trainer names the file by its real path
    path.write_text("a,b,label\n1,2,0\n3,x,1\n")
    cfg = DataConfig(dataset="csv", path=str(path), train_size=1, val_size=1, test_size=0)
    with pytest.raises(data.DataError) as trained:
        data.load_splits(cfg)
    with pytest.raises(csv_check.DataError) as checked:
        csv_check.check_datasets([cfg])
    assert str(trained.value) == str(checked.value)


# --- logs ------------------------------------------------------------------------------------

@pytest.mark.slow
def test_two_stores_in_one_folder_keep_their_logs_apart(tmp_path: Path) -> None:
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    started = {store: hp("run", TINY, "--seeds", str(seeds), "--detach", "--json", store=store)
               for store, seeds in ((a, 2), (b, 1))}
    for store, r in started.items():
        assert r.code == 0, r.err
        assert r.json()["study"] == 1 and r.json()["log"] == str(log_path(store, 1))
    for store in (a, b):
        wait_for(lambda s=store: hp("show", "1", "--json", store=s).json()["status"]
                 == "completed")
    logs = {store: Path(r.json()["log"]) for store, r in started.items()}
    assert logs[a] != logs[b]
    wait_for(lambda: all("completed" in p.read_text() for p in logs.values()))
    text_a, text_b = logs[a].read_text(), logs[b].read_text()
    assert "4 trials to train" in text_a and "2 trials to train" not in text_a
    assert "2 trials to train" in text_b and "4 trials to train" not in text_b


def test_a_damaged_store_is_refused_before_a_study_is_added(done: Path, tmp_path: Path) -> None:
    """Damage deep in the file (as a crash of a broken disk, or the old lock bug, leaves it): a
    new study would land in a file that may lose it; refused with how to recover, untouched."""
    import shutil

    damaged = tmp_path / "damaged" / "store.db"
    damaged.parent.mkdir()
    shutil.copy(done, damaged)
    raw = bytearray(damaged.read_bytes())
    raw[8192:] = b"\xaa" * (len(raw) - 8192)
    damaged.write_bytes(bytes(raw))
    before = damaged.read_bytes()
    r = hp("run", TINY, store=damaged)
    assert r.code == 4, r.err
    assert ("damaged" in r.err or "corrupt" in r.err) and ".recover" in r.err, r.err
    assert one_clean_line(r.err)
    assert damaged.read_bytes() == before and not Path(f"{damaged}-wal").exists()
