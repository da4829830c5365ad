"""A full disk at the last step of a write: shared by the tests that check nothing half-written is left.

Every file of a report or export reaches its final name through ``os.replace`` in ``model_utils.safe_files``;
failing that rename for one kind of file is the latest point a write can fail.
"""

from __future__ import annotations

import errno


def disk_full_on(monkeypatch, suffix: str) -> None:
    """Make renaming a file whose target ends in ``suffix`` fail with ENOSPC; other renames work."""
    import model_utils.safe_files as safe_files

    real = safe_files.os.replace

    def replace(src, dst):
        if str(dst).endswith(suffix):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(safe_files.os, "replace", replace)
