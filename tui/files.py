"""Writing the user's files (presets, exports) so that a failure never leaves half a file."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomically(path: Path, text: str) -> None:
    """Write beside `path`, then rename over it: readers see the old file or the whole new one.

    Raises OSError (the caller says what could not be written); the temporary file is removed.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
