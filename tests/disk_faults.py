"""A full disk: shared by the tests that check nothing half-written is left.

Every file of a report or export reaches its final name through ``os.replace`` in ``model_utils.safe_files``;
failing that rename for one kind of file is the latest point a write can fail. :func:`small_disk` mounts a real
small file system instead, where GDAL, SQLite and pip fail as they do on a full disk.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def disk_full_on(monkeypatch, suffix: str) -> None:
    """Make renaming a file whose target ends in ``suffix`` fail with ENOSPC; other renames work."""
    import model_utils.safe_files as safe_files

    real = safe_files.os.replace

    def replace(src, dst):
        if str(dst).endswith(suffix):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(safe_files.os, "replace", replace)


@contextlib.contextmanager
def small_disk(folder: Path, size: str) -> Iterator[Path]:
    """A real file system of ``size`` (tmpfs, e.g. "3m") mounted at ``folder`` for the block: writes that do
    not fit fail with ENOSPC where the libraries really write. Needs root (CI and ``make test`` here run as
    root); elsewhere the test is skipped with that reason."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0777", "tmpfs", str(folder)], check=True,
                   capture_output=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False, capture_output=True)


def fill(folder: Path, leave: int) -> Path:
    """Fill the disk holding ``folder`` until about ``leave`` bytes are free ("another program filled it")."""
    import shutil

    filler = folder / "filler.bin"
    free = shutil.disk_usage(folder).free
    with open(filler, "wb") as fh:
        fh.write(b"\0" * max(0, free - leave))
    return filler
