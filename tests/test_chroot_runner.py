"""The QGIS 3.40 / 3.44 chroot runner fails in one clear line when a prerequisite is missing.

(The runner itself is exercised for real by `.ci/run`, which runs the whole suite through it.)
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "qgis_chroot.sh"


def _run(args: list[str], env: dict[str, str] | None = None, user: str | None = None,
         tmp_path: Path | None = None) -> subprocess.CompletedProcess:
    command = [str(SCRIPT), *args]
    if user is not None:
        command = ["setpriv", "--reuid", user, "--regid", user, "--clear-groups", *command]
    full_env = {**os.environ, "GEOCLIP_CHROOT_CACHE": str(tmp_path / "cache"), **(env or {})}
    return subprocess.run(command, capture_output=True, text=True, env=full_env, timeout=60, check=False)


def test_unknown_variant_prints_usage(tmp_path):
    result = _run(["qgis999"], tmp_path=tmp_path)
    assert result.returncode == 2 and "usage:" in result.stderr


def test_unreachable_mirror_fails_in_one_line_and_builds_nothing(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("as a normal user the root check comes first (tested below)")
    # the mirror is probed before debootstrap ever runs; a stand-in keeps the test independent of the host
    stand_in = tmp_path / "bin" / "debootstrap"
    stand_in.parent.mkdir()
    stand_in.write_text("#!/bin/sh\necho 'debootstrap must not run' >&2\nexit 99\n")
    stand_in.chmod(0o755)
    env = {"DEBIAN_MIRROR": "http://127.0.0.1:9/debian", "PATH": f"{stand_in.parent}:{os.environ['PATH']}"}
    result = _run(["qgis340", "test"], env=env, tmp_path=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "make test-qgis340: Debian mirror http://127.0.0.1:9/debian is unreachable (set DEBIAN_MIRROR to one that is)"]
    assert not (tmp_path / "cache").exists()


def test_missing_debootstrap_is_named(tmp_path):
    result = _run(["qgis340", "test"], env={"PATH": "/usr/bin:/bin"}, tmp_path=tmp_path)
    if os.geteuid() != 0:
        assert "needs root" in result.stderr
    else:
        assert result.stderr.strip().splitlines() == [
            "make test-qgis340: debootstrap is missing: sudo apt-get install debootstrap"]
    assert result.returncode == 1


def test_without_root_it_says_so(tmp_path):
    if os.geteuid() != 0:
        result = _run(["qgis344", "test"], tmp_path=tmp_path)
    else:
        tmp_path.chmod(0o777)
        result = _run(["qgis344", "test"], user="65534", tmp_path=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "make test-qgis344: needs root (debootstrap, mount and chroot); run it with sudo"]
