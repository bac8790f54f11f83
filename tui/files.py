"""Writing the user's files (presets, exports) so that a failure never leaves half a file."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path


class NotRegularFile(OSError):
    """The path names a directory, device, fifo or socket: writing there would replace it."""

    def __init__(self, path: Path, kind: str) -> None:
        super().__init__(errno.EEXIST, f"it is {kind}, not a regular file", str(path))


def write_atomically(path: Path, text: str) -> None:
    """Write beside the file, then rename over it: readers see the old file or the whole new one.

    Only regular files are written: a symlink is written through (the link stays, its target gets
    the text), and a path that is something else (`/dev/full`, a fifo, a directory) raises
    NotRegularFile. Raises OSError (the caller says what could not be written); the temporary
    file is removed.
    """
    target = _destination(path)
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        tmp.unlink(missing_ok=True)  # left by a write that was killed
        # O_EXCL: never follow a link that stands where the temporary file goes
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with open(fd, "w", encoding="utf-8") as f:
            f.write(text)
        _keep_mode(target, tmp)
        os.replace(tmp, target)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def _destination(path: Path) -> Path:
    """The regular file that writing `path` must replace: itself, or what its symlink names."""
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        return target  # a new file (or a dangling link's future target)
    if not stat.S_ISREG(mode):
        raise NotRegularFile(target, _kind(mode))
    return target


def _kind(mode: int) -> str:
    kinds = [(stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a fifo"),
             (stat.S_ISSOCK, "a socket")]
    return next((name for test, name in kinds if test(mode)), "something else")


def _keep_mode(target: Path, tmp: Path) -> None:
    """A file replaced keeps its permissions (a private 0600 export stays private)."""
    with contextlib.suppress(FileNotFoundError):
        os.chmod(tmp, stat.S_IMODE(target.stat().st_mode))
