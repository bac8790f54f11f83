"""Finding presets on disk (shipped, ./presets, the user's folder, extra folders) and resolving
a preset argument (a path or a name) to a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.presets import PresetError, find_presets, resolve_preset_arg, shipped_presets_dir

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_NAMES = {p.stem for p in (ROOT / "presets").glob("*.toml")}


@pytest.fixture
def preset_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with ./presets and a user config dir (isolated by conftest)."""
    work = tmp_path / "work"
    (work / "presets").mkdir(parents=True)
    monkeypatch.chdir(work)
    user = tmp_path / "config" / "hp-tui" / "presets"
    user.mkdir(parents=True)
    return tmp_path


def test_find_presets_sources_and_broken_user_preset(preset_home: Path) -> None:
    user = preset_home / "config" / "hp-tui" / "presets"
    (user / "mine.toml").write_text('description = "mine"\n[train]\nlr = 0.5\n')
    (user / "broken.toml").write_text("[train]\nlr = -1\n")
    (user / "binary.toml").write_bytes(b"\x00\x01")
    (user / "notes.txt").write_text("not a preset")
    (preset_home / "work" / "presets" / "proj.toml").write_text('[model]\nhidden = [3]\n')
    infos = {(i.source, i.name): i for i in find_presets()}
    assert {("shipped", n) for n in SHIPPED_NAMES} <= set(infos)
    assert infos[("user", "mine")].ok and infos[("user", "mine")].description == "mine"
    assert infos[("project", "proj")].preset is not None
    broken = infos[("user", "broken")]
    assert broken.preset is None and broken.error is not None
    assert "train.lr" in str(broken.error) and ":2:" in str(broken.error)
    assert not infos[("user", "binary")].ok
    assert ("user", "notes") not in infos
    assert all(i.ok for i in infos.values() if i.source == "shipped")


def test_find_presets_extra_dirs_and_missing_dirs(preset_home: Path, tmp_path: Path) -> None:
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "x.toml").write_text("")
    infos = find_presets(extra_dirs=[extra, tmp_path / "does-not-exist"])
    assert [i.source for i in infos if i.name == "x"] == ["extra"]


def test_user_dir_defaults_to_home_config(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    from engine.presets import user_presets_dir
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert user_presets_dir() == tmp_path / ".config" / "hp-tui" / "presets"


def test_resolve_preset_arg(preset_home: Path) -> None:
    shipped = shipped_presets_dir()
    assert resolve_preset_arg("notebook") == shipped / "notebook.toml"
    assert resolve_preset_arg("notebook.toml") == shipped / "notebook.toml"
    own = preset_home / "work" / "mine.toml"
    own.write_text("")
    assert resolve_preset_arg(str(own)) == own
    assert resolve_preset_arg("mine.toml") == Path("mine.toml")  # a file in the cwd
    with pytest.raises(PresetError, match=r"did you mean notebook\?"):
        resolve_preset_arg("notebok")
    with pytest.raises(PresetError, match="no such file"):
        resolve_preset_arg("some/dir/notebook.toml")


def test_local_presets_shadow_shipped_ones(preset_home: Path) -> None:
    user = preset_home / "config" / "hp-tui" / "presets" / "tiny.toml"
    user.write_text("[train]\nepochs = 1\n")
    assert resolve_preset_arg("tiny") == user
    project = Path("presets") / "tiny.toml"
    project.write_text("")
    assert resolve_preset_arg("tiny").resolve() == project.resolve()


def test_a_directory_named_like_a_preset_does_not_hide_it(preset_home: Path) -> None:
    Path("notebook").mkdir()
    assert resolve_preset_arg("notebook") == shipped_presets_dir() / "notebook.toml"
    Path("mydir").mkdir()
    assert resolve_preset_arg("mydir") == Path("mydir")  # then load_preset says "a directory"
