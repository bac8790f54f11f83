"""How values read on screen: numbers, percentages, statuses, and user text made safe to print.

User text (study names, preset names and descriptions, typed references) comes from the command
line and from TOML files, so it may hold rich markup (`[bold]`) or control characters (ESC, BEL)
that would restyle or drive the terminal; printed, both must show as the literal text they are.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from rich.markup import escape
from rich.text import Text

MESSAGE_WHITESPACE = "\n\t"  # what a multi-line message may keep
STATUS_STYLE = {"diverged": "bold yellow", "failed": "bold red", "running": "bold cyan",
                "completed": "green", "interrupted": "magenta", "pending": "dim",
                "pruned": "blue"}


def fmt_value(v: Any) -> str:
    if isinstance(v, list):
        return "[" + ",".join(str(x) for x in v) + "]"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def fmt_pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def fmt_num(x: float | None, pct: bool = False) -> str:
    if x is None:
        return "-"
    return f"{100 * x:.1f}%" if pct else f"{x:.4f}"


def styled_status(status: str) -> str:
    """A trial's or study's status (a plain string) in its colour, as rich markup."""
    style = STATUS_STYLE.get(status)
    return f"[{style}]{status}[/]" if style else status


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


def cell_width(value: Any) -> int:
    """Columns a table cell takes (markup such as a styled status does not count)."""
    return Text.from_markup(value).cell_len if isinstance(value, str) else len(str(value))
