"""Defect 1 of the install issue, on the platform's own Python: Debian 12/13 mark their interpreter
externally managed (PEP 668), so ``pip install --user`` stops; the installer's ``--target`` command
works there. Offline: pip sees only a wheel built by the test."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from tests.test_installer import DIST, MODULE, build_wheel

# the interpreter the test venv was made from: the one QGIS embeds on Debian (same version and ABI)
SYSTEM_PYTHON = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"


def _pip(args: list[str], home: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "VIRTUAL_ENV", "PYTHON"))}
    env.update(HOME=str(home), PIP_NO_CACHE_DIR="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    return subprocess.run([str(SYSTEM_PYTHON), "-m", "pip", *args], capture_output=True, text=True, env=env,
                          timeout=300, check=False)


def test_target_install_works_where_pep_668_refuses_user_installs(tmp_path, monkeypatch):
    from geoclip_qgis.setup.installer import pip_commands

    marker = Path(sysconfig.get_paths(vars={"installed_base": sys.base_prefix})["stdlib"]) / "EXTERNALLY-MANAGED"
    assert marker.is_file(), f"{marker} missing: this platform is not PEP 668-managed, the test means nothing"
    wheels = tmp_path / "wheels"
    build_wheel(wheels)
    offline = ["--no-index", "--find-links", str(wheels)]

    refused = _pip(["install", "--user", *offline, DIST], tmp_path / "home")
    assert refused.returncode != 0 and "externally-managed-environment" in refused.stderr + refused.stdout

    target = tmp_path / "deps"
    monkeypatch.setenv("GEOCLIP_PIP_ARGS", " ".join(offline))
    pins = tmp_path / "pins.txt"  # as the installer runs it: QGIS's pins as constraints (none needed here)
    pins.write_text("", encoding="utf-8")
    (command,) = pip_commands([DIST], target, python=str(SYSTEM_PYTHON), constraints=pins)
    assert command[0] == str(SYSTEM_PYTHON) and "--target" in command and "--user" not in command
    done = _pip(command[3:], tmp_path / "home")  # the same arguments after "python -m pip"
    assert done.returncode == 0, done.stderr
    assert (target / MODULE / "__init__.py").is_file()
