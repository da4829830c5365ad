"""A virtual screen for the tests that run the real QGIS desktop (the smoke test, the Plugin Manager test)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def start_xvfb(screen: tuple[int, int] = (1366, 768)) -> tuple[subprocess.Popen, str]:
    """Xvfb on a display it picks itself (no clash with other runs)."""
    if shutil.which("Xvfb") is None:
        pytest.fail("Xvfb is missing: `make install` installs Debian's xvfb package")
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), "-screen", "0", f"{screen[0]}x{screen[1]}x24", "-nolisten", "tcp"],
        pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        number = pipe.readline().strip()
    if not number:
        proc.kill()
        pytest.fail("Xvfb did not start")
    return proc, f":{number}"
