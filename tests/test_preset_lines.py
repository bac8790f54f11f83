"""The key locator: which line of a TOML text defines a dotted key (tomllib gives none)."""

from __future__ import annotations

from engine.presets import KeyLocator

LOCATOR_TEXT = '''\
name = "x"                      # 1
description = """               # 2
[not_a_table]
lr = 3
"""
[data]                          # 6
noise = 0.1
  "train_size" = 10             # 8
[ study . "vary" ]              # 9
lr = [                          # 10
  0.1, # hidden = [1]
  "]", '[x]',
]
hidden = [[10],                 # 14
          [20]]
'quoted.key' = 1                # 16
[[runs]]                        # 17
a.b.c = 'x = 1'                 # 18
[[runs]]                        # 19
[model]                         # 20
inline = { activation = "relu", hidden = [10] }   # 21
'''


def test_locator_lines() -> None:
    loc = KeyLocator(LOCATOR_TEXT)
    assert loc.line("name") == 1
    assert loc.line("description") == 2
    assert loc.line("data") == 6
    assert loc.line("data.noise") == 7
    assert loc.line("data.train_size") == 8
    assert loc.line("study") == 9 and loc.line("study.vary") == 9
    assert loc.line("study.vary.lr") == 10
    assert loc.line("study.vary.hidden") == 14
    assert loc.line(("study", "vary", "quoted.key")) == 16
    assert loc.line("runs") == 17
    assert loc.line("runs.a") == 18 and loc.line("runs.a.b.c") == 18
    assert loc.line("model") == 20 and loc.line("model.inline") == 21


def test_locator_ignores_values_and_strings() -> None:
    loc = KeyLocator(LOCATOR_TEXT)
    assert loc.line("not_a_table") is None  # inside a multi-line string
    assert loc.line("study.vary.x") == 9  # '[x]' inside an array is not a header
    assert ("study", "vary", "hidden", "x") not in loc.lines


def test_locator_fallbacks() -> None:
    loc = KeyLocator(LOCATOR_TEXT)
    assert loc.line("data.path") == 6  # missing key -> its section header
    assert loc.line("model.inline.activation") == 21  # inside an inline table -> the key
    assert loc.line("train.lr") is None  # no such section
    assert KeyLocator("").line("train") is None


def test_locator_dotted_keys_and_duplicates() -> None:
    loc = KeyLocator("study.vary.lr = [1]\n[train]\nlr = 1\nlr = 2\n")
    assert loc.line("study") == loc.line("study.vary") == loc.line("study.vary.lr") == 1
    assert loc.line("train.lr") == 3
    assert loc.duplicates == [(("train", "lr"), 4)]


def test_locator_crlf_and_tabs() -> None:
    loc = KeyLocator("[train]\r\n\tlr = 0.1\r\nepochs\t=\t3\r\n")
    assert (loc.line("train.lr"), loc.line("train.epochs")) == (2, 3)


def test_locator_quoted_keys_are_decoded() -> None:
    loc = KeyLocator('[train]\n"l\\nr" = 1\n"\\u0061b" = 2\n\'lit\\n\' = 3\n')
    assert loc.line(("train", "l\nr")) == 2
    assert loc.line(("train", "ab")) == 3
    assert loc.line(("train", "lit\\n")) == 4
