"""A full disk, said plainly.

Every writer (a run's outputs, the gallery cache, the dependency installer) uses the words here: before
writing, "needs about 180 MB, 40 MB free on the disk holding <folder>"; when a write fails anyway because
another program filled the disk, "the disk holding <folder> is full" and what was kept. Libraries report
a full disk in their own words (GDAL: "TIFFAppendToStrip:Write error at scanline 0"), so a failure counts
as a full disk when its errno says so, or when the disk has less free space than the write needed.

Standard library only: the QGIS side and the installer use it before torch or numpy exist.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from .errors import GeoClipError

FULL_ERRNOS = frozenset(code for code in (errno.ENOSPC, getattr(errno, "EDQUOT", None)) if code is not None)
FULL_WORDS = ("no space left on device", "disk quota exceeded", "not enough space on the disk",
              "there is not enough space")
# Below this much free space a failed write is taken for a full disk whatever it said: file systems keep
# some blocks back and libraries write in chunks of a few MB.
SLACK_BYTES = 8 * 1024 * 1024
MARGIN_BYTES = 2 * 1000 * 1000  # kept free on top of what a write needs
FIX = "Free some space there, or choose a folder on another disk."


class DiskFull(GeoClipError):
    """Not enough free space for a write; the message names the folder, the space and what was kept."""


def existing_ancestor(folder: str | os.PathLike) -> Path:
    """``folder`` or its nearest existing parent: the disk that will hold it."""
    path = Path(folder).expanduser().absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def free_bytes(folder: str | os.PathLike) -> int | None:
    """Bytes this process may still write on the disk holding ``folder``; None when it cannot be asked."""
    try:
        return shutil.disk_usage(existing_ancestor(folder)).free
    except OSError:
        return None


def size_text(n_bytes: float) -> str:
    """'180 MB', '1.4 GB', '512 kB': sizes as a person reads them (powers of 1000, like file managers)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= scale:
            value = n_bytes / scale
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    return f"{int(n_bytes)} bytes"


def check_space(folder: str | os.PathLike, needed: int, what: str = "This run") -> None:
    """Raise :class:`DiskFull` in one line when the disk holding ``folder`` has less free space than ``needed``
    bytes plus a margin (the file system's own blocks, temporary files: a tenth, at least MARGIN_BYTES); nothing
    when the free space cannot be asked."""
    free = free_bytes(folder)
    total = needed + max(MARGIN_BYTES, needed // 10)
    if free is not None and free < total:
        raise DiskFull(f"{what} needs about {size_text(total)}, {size_text(free)} free on the disk holding "
                       f"{folder}. {FIX}")


def is_disk_full(exc: BaseException | None, folder: str | os.PathLike, needed: int = 0) -> bool:
    """Whether the failure ``exc`` of a write under ``folder`` was the disk filling up: its errno (or one of
    its causes') says so, its text does, or, when no errno tells (GDAL's errors carry none), the disk has less
    free space left than the write needed."""
    seen, other_errno = set(), False
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in FULL_ERRNOS:
            return True
        if any(words in str(exc).lower() for words in FULL_WORDS):
            return True
        other_errno |= isinstance(exc, OSError) and exc.errno is not None  # permission denied, read-only...
        exc = exc.__cause__ or exc.__context__
    if other_errno:
        return False
    free = free_bytes(folder)
    return free is not None and free < max(SLACK_BYTES, needed)


def disk_full_message(folder: str | os.PathLike, kept: str) -> str:
    """The one wording of a disk that filled up during a write: which disk, its free space, what was kept."""
    free = free_bytes(folder)
    state = "" if free is None else f" ({size_text(free)} free)"
    return f"The disk holding {folder} is full{state}: {kept}. {FIX}"
