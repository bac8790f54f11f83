"""User text made safe to print: study names, preset names and descriptions, typed references.

They come from the command line and from TOML files, so they may hold rich markup (`[bold]`) or
control characters (ESC, BEL) that would restyle or drive the terminal; printed, both must show as
the literal text they are.
"""

from __future__ import annotations

import unicodedata

from rich.markup import escape

MESSAGE_WHITESPACE = "\n\t"  # what a multi-line message may keep


def printable(text: str, keep: str = "") -> str:
    """`text` with every control character (but those in `keep`) shown as an escape: \\x1b."""
    return "".join(_shown(c) if unicodedata.category(c) == "Cc" and c not in keep else c
                   for c in text)


def markup_safe(value: object) -> str:
    """A table cell or title from user text: printable, and rich markup shown as written."""
    return escape(printable(str(value)))


def control_character(text: str) -> str | None:
    """The first control character in `text`, shown as an escape, or None when there is none."""
    return next((_shown(c) for c in text if unicodedata.category(c) == "Cc"), None)


def _shown(c: str) -> str:
    return f"\\x{ord(c):02x}"  # control characters (category Cc) are all below U+0100
