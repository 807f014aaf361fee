"""Files the harness writes for people to read: created as the user's umask says, replaced whole.

`tempfile.mkstemp` creates 0600 files, so results and cache entries written through a temporary
file and a rename would be unreadable to the colleagues of a group-shared study or cache. Every
such file gets the mode a plain `open(path, "w")` would have given it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0o022)  # read it (there is no getter), then put it back at once
    os.umask(mask)
    return mask


# What `open(path, "w")` creates under this process's umask.
FILE_MODE = 0o666 & ~_umask()


def temporary_beside(path: Path, prefix: str, suffix: str = ".tmp") -> tuple[int, str]:
    """A new temporary file in `path`'s folder, with the user's mode: (file descriptor, its path)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=suffix)
    try:
        os.fchmod(fd, FILE_MODE)
    except (AttributeError, OSError):  # no fchmod (Windows), or a file system without modes
        pass
    return fd, tmp


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text`: readers see the old file or the new one, never a part."""
    fd, tmp = temporary_beside(path, f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def shown(path: str | Path | None) -> str:
    """A folder as a terminal line shows it: relative when under the current folder (short), else
    absolute (unambiguous)."""
    if path is None:
        return "(folder unknown)"
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return str(path)
    return str(path) if relative.startswith("..") else relative
