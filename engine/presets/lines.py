"""Where keys are defined in TOML text: tomllib gives line numbers only for syntax errors, so
`KeyLocator` scans the source itself and maps dotted key paths to the lines that define them,
which lets every preset error name its line."""

from __future__ import annotations

import re
from collections.abc import Sequence

BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


class KeyLocator:
    """Maps dotted key paths of a TOML text to the 1-based line that defines them.

    Understands table headers (`[a.b]`, `[[a]]`), bare, quoted and dotted keys, and skips values
    (multi-line arrays and strings, comments) so that nothing inside a value is taken for a key.
    Keys inside inline tables are not indexed; `line()` falls back to the nearest enclosing key
    that is, which for `vary = {lr = [...]}` is the right line anyway.
    """

    def __init__(self, text: str) -> None:
        self.lines: dict[tuple[str, ...], int] = {}
        # Keys assigned twice (a TOML error that tomllib reports without a useful line).
        self.duplicates: list[tuple[tuple[str, ...], int]] = []
        self._assigned: set[tuple[str, ...]] = set()
        # (first line, last line, key) of values that span several lines: a syntax error inside
        # one is most likely an unclosed bracket or string opened on the first line.
        self.spans: list[tuple[int, int, tuple[str, ...]]] = []
        self._scan(text)

    def line(self, key: str | Sequence[str]) -> int | None:
        """The line of `key`, else of its nearest enclosing table or key, else None."""
        parts = tuple(key.split(".")) if isinstance(key, str) else tuple(key)
        while parts:
            if parts in self.lines:
                return self.lines[parts]
            parts = parts[:-1]
        return None

    def _record(self, path: tuple[str, ...], line: int, assignment: bool) -> None:
        for i in range(1, len(path)):
            self.lines.setdefault(path[:i], line)
        if assignment and path in self._assigned:
            self.duplicates.append((path, line))
        if assignment:
            self._assigned.add(path)
        self.lines.setdefault(path, line)

    def _scan(self, text: str) -> None:
        table: tuple[str, ...] = ()
        i, n, line = 0, len(text), 1
        while i < n:
            while i < n and text[i] in " \t\r":
                i += 1
            if i >= n:
                break
            c = text[i]
            if c == "\n":
                line, i = line + 1, i + 1
            elif c == "#":
                i = _to_eol(text, i)
            elif c == "[":
                array = text.startswith("[[", i)
                parts, i = _parse_key(text, i + (2 if array else 1))
                if parts:
                    table = tuple(parts)
                    # [[x]] may repeat; [x] may not, nor follow an assignment x = ...
                    self._record(table, line, assignment=not array)
                i = _to_eol(text, i)
            else:
                parts, i = _parse_key(text, i)
                if parts and i < n and text[i] == "=":
                    path, first = table + tuple(parts), line
                    self._record(path, line, assignment=True)
                    i, line = _skip_value(text, i + 1, line)
                    if line > first:
                        self.spans.append((first, line, path))
                else:
                    i = _to_eol(text, i)


def _to_eol(text: str, i: int) -> int:
    j = text.find("\n", i)
    return len(text) if j < 0 else j


def _parse_key(text: str, i: int) -> tuple[list[str], int]:
    """A (possibly dotted, possibly quoted) key starting at i; returns its parts and the end."""
    parts: list[str] = []
    n = len(text)
    while i < n:
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] in "\"'":
            quote = text[i]
            j = i + 1
            while j < n and text[j] != quote and text[j] != "\n":
                j += 2 if quote == '"' and text[j] == "\\" else 1
            raw = text[i + 1 : j]
            parts.append(_unescape(raw) if quote == '"' else raw)
            i = j + 1
        else:
            m = BARE_KEY.match(text, i)
            if not m:
                break
            parts.append(m.group())
            i = m.end()
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] == ".":
            i += 1
            continue
        break
    return parts, i


_ESCAPE = re.compile(r'\\(?:u([0-9A-Fa-f]{4})|U([0-9A-Fa-f]{8})|(.))', re.S)
_SIMPLE_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}


def _unescape(raw: str) -> str:
    """A TOML basic string's escapes decoded (keys are matched on their decoded text)."""
    def one(m: re.Match[str]) -> str:
        code = m.group(1) or m.group(2)
        if code:
            try:
                return chr(int(code, 16))
            except ValueError:
                return m.group()
        return _SIMPLE_ESCAPES.get(m.group(3), m.group())

    return _ESCAPE.sub(one, raw)


def _skip_value(text: str, i: int, line: int) -> tuple[int, int]:
    """Skip one value (to the end of its logical line); returns the new index and line."""
    n, depth = len(text), 0
    while i < n:
        c = text[i]
        if c == "\n":
            if depth == 0:
                return i, line
            line += 1
            i += 1
        elif c == "#":
            i = _to_eol(text, i)
        elif text.startswith('"""', i) or text.startswith("'''", i):
            end = _end_of_multiline(text, i)
            line += text.count("\n", i, end)
            i = end
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if c == '"' and text[j] == "\\" else 1
            i = j + 1 if j < n and text[j] == c else j
        else:
            if c in "[{":
                depth += 1
            elif c in "]}":
                depth = max(0, depth - 1)
            i += 1
    return i, line


def _end_of_multiline(text: str, i: int) -> int:
    delim = text[i : i + 3]
    j = i + 3
    while j < len(text):
        if delim == '"""' and text[j] == "\\":
            j += 2
            continue
        if text.startswith(delim, j):
            j += 3
            # Up to two more quotes may follow: they end the content, not the delimiter.
            extra = 0
            while extra < 2 and j < len(text) and text[j] == delim[0]:
                j, extra = j + 1, extra + 1
            return j
        j += 1
    return len(text)
