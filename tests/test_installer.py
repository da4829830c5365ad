"""The Setup tab's dependency installer, offline: real pip on a wheel built here, into a temp folder."""

from __future__ import annotations

import base64
import hashlib
import importlib
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest

DIST, MODULE = "geoclip-dummy-pkg", "geoclip_dummy_pkg"


def build_wheel(folder: Path, version: str = "0.1", dist: str = DIST, module: str = MODULE,
                requires: tuple[str, ...] = (), data: bytes = b"") -> Path:
    """A minimal pure-Python wheel (module, METADATA, WHEEL, RECORD with hashes); ``data`` makes it that big."""
    folder.mkdir(parents=True, exist_ok=True)
    info = f"{module}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires)
    files = {
        f"{module}/__init__.py": f"VALUE = {version!r}\n",
        f"{info}/METADATA": metadata,
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: geoclip-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    if data:
        files[f"{module}/data.bin"] = data
    record = []
    for name, text in files.items():
        raw = text if isinstance(text, bytes) else text.encode()
        digest = base64.urlsafe_b64encode(hashlib.sha256(raw).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(raw)}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = "\n".join(record) + "\n"
    path = folder / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return path


@pytest.fixture()
def offline_pip(tmp_path, monkeypatch):
    """pip sees only ``tmp_path/wheels``; installs go to ``tmp_path/deps``."""
    build_wheel(tmp_path / "wheels")
    monkeypatch.setenv("GEOCLIP_PIP_ARGS", f"--no-index --find-links {tmp_path / 'wheels'}")
    monkeypatch.setenv("GEOCLIP_DEPS_DIR", str(tmp_path / "deps"))
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    yield tmp_path / "deps"
    deps = str(tmp_path / "deps")
    if deps in sys.path:
        sys.path.remove(deps)
    sys.modules.pop(MODULE, None)
    importlib.invalidate_caches()


def test_install_into_the_folder_and_import(offline_pip):
    from geoclip_qgis.setup.installer import Installation, add_deps_to_path

    lines: list[str] = []
    assert Installation([DIST], lines.append).run(), "\n".join(lines)
    assert (offline_pip / MODULE / "__init__.py").is_file()
    assert [p.name for p in offline_pip.parent.iterdir() if "staging" in p.name] == []
    add_deps_to_path()
    assert sys.path[0] == str(offline_pip)  # first: the platform's older copies do not shadow it
    assert importlib.import_module(MODULE).VALUE == "0.1"
    assert any(line.startswith("$ ") and "--target" in line for line in lines)


@pytest.fixture()
def platform_copy(tmp_path, monkeypatch):
    """An older copy of the dummy package where the platform's packages live (as Debian 12's sympy 1.11 sits
    in dist-packages), on ``sys.path`` with its metadata; returns its folder."""
    import subprocess

    wheel = build_wheel(tmp_path / "platform-wheel", version="0.0.9")
    site = tmp_path / "dist-packages"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--target",
                    str(site), str(wheel)], check=True, capture_output=True)
    monkeypatch.syspath_prepend(str(site))
    sys.modules.pop(MODULE, None)
    yield site
    sys.modules.pop(MODULE, None)


def test_installed_packages_win_over_the_platforms_older_copies(offline_pip, platform_copy):  # noqa: ARG001
    """The walkthrough's failure: torch from the folder imported Debian's old sympy and stopped."""
    from geoclip_qgis.setup.installer import Installation, add_deps_to_path

    build_wheel(offline_pip.parent / "wheels", version="0.2")
    lines: list[str] = []
    assert Installation([DIST], lines.append).run(), "\n".join(lines)
    add_deps_to_path()
    assert importlib.import_module(MODULE).VALUE == "0.2"


def test_the_platforms_numpy_is_pinned_and_kept(offline_pip, platform_copy, monkeypatch):  # noqa: ARG001
    """What QGIS's compiled modules link against (numpy) stays the platform's: pip resolves against that
    version and its own copy is dropped, at install time and from a folder filled by hand."""
    from geoclip_qgis.setup import installer

    monkeypatch.setattr(installer, "PLATFORM_PINNED", (DIST,))  # the dummy plays numpy
    wheels = offline_pip.parent / "wheels"
    build_wheel(wheels, version="0.0.9")
    build_wheel(wheels, version="0.2")  # newer than the platform's: pip would take it unpinned
    build_wheel(wheels, dist="geoclip-dummy-app", module="geoclip_dummy_app", requires=(DIST,))
    lines: list[str] = []
    assert installer.Installation(["geoclip-dummy-app"], lines.append).run(), "\n".join(lines)
    assert any(line.startswith("$ ") and " -c " in line for line in lines)  # the pins, as constraints
    assert f"Keeping QGIS's own {DIST} (pip's copy of the same version is not installed)." in lines
    assert (offline_pip / "geoclip_dummy_app").is_dir() and not (offline_pip / MODULE).exists()
    assert not list(offline_pip.glob(f"{MODULE}-*.dist-info"))

    # a by-hand install put a copy there: it goes when the folder is added to the path
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--target",
                    str(offline_pip), str(wheels / f"{MODULE}-0.2-py3-none-any.whl")], check=True,
                   capture_output=True)
    installer.add_deps_to_path()
    assert importlib.import_module(MODULE).VALUE == "0.0.9" and not (offline_pip / MODULE).exists()
    assert importlib.import_module("geoclip_dummy_app")
    sys.modules.pop("geoclip_dummy_app", None)


def test_failure_says_why_and_changes_nothing(offline_pip):
    from geoclip_qgis.setup.installer import Installation

    assert Installation([DIST], lambda _l: None).run()
    before = sorted(p.name for p in offline_pip.iterdir())
    lines: list[str] = []
    assert not Installation(["geoclip-no-such-package"], lines.append).run()
    text = "\n".join(lines)
    assert "pip failed" in text and "geoclip-no-such-package" in text
    assert sorted(p.name for p in offline_pip.iterdir()) == before
    assert [p.name for p in offline_pip.parent.iterdir() if "staging" in p.name] == []


def test_cancel_stops_pip_and_keeps_nothing(offline_pip):
    from geoclip_qgis.setup.installer import Installation

    lines: list[str] = []
    installation = Installation([DIST], lines.append)

    def cancel_when_started():
        deadline = time.monotonic() + 30
        while installation._process is None and time.monotonic() < deadline:
            time.sleep(0.005)
        installation.cancel()

    canceller = threading.Thread(target=cancel_when_started)
    canceller.start()
    assert not installation.run()
    canceller.join()
    assert "Canceled: nothing was installed." in lines
    assert not offline_pip.exists() or not any(offline_pip.iterdir())
    assert [p.name for p in offline_pip.parent.iterdir() if "staging" in p.name] == []


def test_pyproj_is_left_to_the_platform():
    from geoclip_qgis.setup.dependencies import DependencyStatus
    from geoclip_qgis.setup.installer import requirements

    missing = [DependencyStatus(m, d, "", False, None) for m, d in
               (("torch", "torch"), ("pyproj", "pyproj"), ("geoclip", "geoclip"))]
    assert requirements(missing) == ["torch", "geoclip==1.3.0"]


def test_pip_commands_keep_torch_and_the_weights_wheel_apart(tmp_path, monkeypatch):
    from geoclip_qgis.setup.installer import TORCH_CPU_INDEX, pip_commands

    monkeypatch.delenv("GEOCLIP_PIP_ARGS", raising=False)
    monkeypatch.delenv("GEOCLIP_TORCH_INDEX", raising=False)
    commands = pip_commands(["torch", "transformers", "geoclip==1.3.0"], tmp_path)
    assert len(commands) == 3
    torch, rest, weights = commands
    # torch alone, from the CPU index only: with PyPI beside it pip may take the multi-GB CUDA build
    assert torch[-3:] == ["--index-url", TORCH_CPU_INDEX, "torch"] and "--extra-index-url" not in torch
    import numpy

    # typed by a person: QGIS's numpy pinned beside the packages (resolved against it, dropped afterwards)
    assert rest[-2:] == ["transformers", f"numpy=={numpy.__version__}"] and "--index-url" not in rest
    assert weights[-2:] == ["--no-deps", "geoclip==1.3.0"]
    pins = tmp_path / "pins.txt"
    pinned = pip_commands(["torch", "transformers"], tmp_path, constraints=pins)  # the installer's own run
    assert pinned[1][-1] == "transformers" and pinned[1][pinned[1].index("-c") + 1] == str(pins)
    assert all(c[1:4] == ["-m", "pip", "install"] and str(tmp_path) in c for c in commands)
    cuda = pip_commands(["torch"], tmp_path, cuda_torch=True)[0]  # CPU index unreachable and the user agreed
    assert "--index-url" not in cuda and cuda[-1] == "torch"


def test_setup_tab_installs_in_a_task(loaded_plugin, offline_pip, monkeypatch, artifacts_dir):
    from qgis.core import QgsApplication

    from geoclip_qgis.setup import dependencies

    monkeypatch.setattr(dependencies, "REQUIRED", (*dependencies.REQUIRED, (MODULE, DIST, "test package")))
    setup = loaded_plugin.dock.setup_tab
    setup.refresh_status()
    controls = setup.installer
    assert controls.install_button.isEnabled() and DIST in controls.packages
    assert "geoclip_dummy_pkg" not in sys.modules
    for widget in (controls.install_button, controls.cancel_button, controls.progress, controls.log):
        assert widget.toolTip()
    controls.start()
    assert controls.running and controls.cancel_button.isEnabled()
    deadline = time.monotonic() + 120
    while controls.running and time.monotonic() < deadline:
        QgsApplication.processEvents()
        time.sleep(0.02)
    log = controls.log.toPlainText()
    assert not controls.running and "Done: the packages are ready" in log, log
    assert f"✔ <b>{DIST}</b> 0.1" in setup.status.text()
    assert not controls.install_button.isEnabled() or DIST not in controls.packages
    tabs = loaded_plugin.dock.tabs
    tabs.setCurrentIndex(tabs.indexOf(setup))
    loaded_plugin.dock.resize(460, 820)
    assert loaded_plugin.dock.grab().save(str(artifacts_dir / "dock_setup_installer.png"))


# ------------------------------------------------------------------ the interpreter, and Cancel
def _fake_python(folder: Path, name: str) -> Path:
    """A 'python' that is not QGIS's (another version, as a pyenv shim would be)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\necho '3.11.7 (main, Dec  1 2023) [GCC 12.2.0]'\necho 'cpython-311'\n")
    path.chmod(0o755)
    return path


@pytest.fixture()
def pyenv_shims(tmp_path, monkeypatch) -> Path:
    """Fake pythons of another version first on PATH (as pyenv's shims), QGIS's own Python behind them;
    ``sys.executable`` is QGIS's binary, not a Python."""
    import os

    shims = tmp_path / "shims"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    for name in (f"python{version}", "python3"):
        _fake_python(shims, name)
    real = Path(sys.base_prefix) / "bin" / f"python{version}"
    monkeypatch.setenv("PATH", f"{shims}{os.pathsep}{real.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(sys, "executable", str(tmp_path / "qgis"))
    return shims


def test_pip_runs_the_interpreter_qgis_runs_not_the_first_on_path(pyenv_shims, tmp_path, monkeypatch):
    from geoclip_qgis.setup import installer

    shims = pyenv_shims
    for attr in ("base_prefix", "prefix", "exec_prefix"):
        monkeypatch.setattr(sys, attr, str(tmp_path / "nowhere"))
    chosen = installer.python_executable()
    assert Path(chosen).parent != shims
    assert installer.interpreter_identity(chosen) == installer.qgis_python_identity()


def test_no_matching_interpreter_is_a_clear_error_before_pip(tmp_path, monkeypatch):
    from geoclip_qgis.setup import installer

    shims = tmp_path / "shims"
    _fake_python(shims, "python3")
    monkeypatch.setenv("PATH", str(shims))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "qgis"))
    for attr in ("base_prefix", "prefix", "exec_prefix"):
        monkeypatch.setattr(sys, attr, str(tmp_path / "nowhere"))
    lines: list[str] = []
    assert installer.Installation(["anything"], lines.append).run() is False
    assert any("No Python interpreter here is the one QGIS runs" in line and str(shims) in line for line in lines)
    assert not any(line.startswith("$ ") for line in lines)  # pip never started


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its parent counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in state


@pytest.mark.skipif(sys.platform == "win32", reason="process groups: the POSIX path is tested here")
def test_cancel_ends_pip_and_everything_it_started(tmp_path):
    import gc
    import warnings

    from geoclip_qgis.setup.installer import Installation

    script = ("import subprocess, sys, time\n"
              "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
              "print('CHILD', child.pid, flush=True)\n"
              "time.sleep(120)\n")
    lines: list[str] = []
    installation = Installation([], lines.append)
    outcome: dict = {}

    def work(step=installation._run_step):  # noqa: SLF001 - one step is the unit
        outcome["ok"] = step([sys.executable, "-c", script])

    worker = threading.Thread(target=work)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        worker.start()
        deadline = time.monotonic() + 60
        while not any(line.startswith("CHILD") for line in lines) and time.monotonic() < deadline:
            time.sleep(0.05)
        child = int(next(line for line in lines if line.startswith("CHILD")).split()[1])
        parent = installation._process.pid  # noqa: SLF001
        installation.cancel()
        worker.join(60)
        assert installation._process.stdout.closed  # noqa: SLF001 - pip's pipe, closed however the step ended
        del installation, worker, work  # anything left open is finalised now, inside the warnings window
        gc.collect()
    assert outcome == {"ok": False} and "Canceled: nothing was installed." in lines
    deadline = time.monotonic() + 10
    while (_alive(child) or _alive(parent)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(parent) and not _alive(child), "a process of the canceled install is still running"
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


def test_the_setup_tab_command_is_what_the_installer_runs(qgis_app, tmp_path, monkeypatch):  # noqa: ARG001
    """--target into the plugin's folder (accepted where PEP 668 refuses --user), QGIS's interpreter, CPU torch."""
    import shlex

    from geoclip_qgis.setup.dependencies import DependencyStatus
    from geoclip_qgis.setup.installer import TORCH_CPU_INDEX, install_hint

    monkeypatch.setenv("GEOCLIP_DEPS_DIR", str(tmp_path / "deps"))
    monkeypatch.delenv("GEOCLIP_PIP_ARGS", raising=False)
    monkeypatch.delenv("GEOCLIP_TORCH_INDEX", raising=False)
    missing = [DependencyStatus("torch", "torch", "", False, None),
               DependencyStatus("transformers", "transformers", "", False, None),
               DependencyStatus("geoclip", "geoclip", "", False, None)]
    commands = [shlex.split(part) for part in install_hint(missing).split(" && ")]
    assert len(commands) == 3
    assert all(c[1:4] == ["-m", "pip", "install"] and c[c.index("--target") + 1] == str(tmp_path / "deps")
               for c in commands)
    assert "--user" not in install_hint(missing) and "--break-system-packages" not in install_hint(missing)
    assert commands[0][-3:] == ["--index-url", TORCH_CPU_INDEX, "torch"]
    assert commands[2][-2:] == ["--no-deps", "geoclip==1.3.0"]
    assert Path(commands[0][0]).name.startswith("python")  # QGIS's own interpreter, not the QGIS binary


def test_the_setup_tab_command_names_the_interpreter_the_installer_proved(pyenv_shims, tmp_path, monkeypatch):
    """Seen in the desktop walk-through: the Setup tab showed a pyenv shim (the first candidate) while the
    installer itself ran /usr/bin/python3.11; the command a person copies must name QGIS's own Python."""
    import shlex

    from geoclip_qgis.setup import installer
    from geoclip_qgis.setup.dependencies import DependencyStatus

    shims = pyenv_shims
    monkeypatch.setenv("GEOCLIP_DEPS_DIR", str(tmp_path / "deps"))
    for attr in ("base_prefix", "prefix", "exec_prefix"):
        monkeypatch.setattr(sys, attr, str(shims))  # QGIS's prefix guess points at the shim folder too
    hint = installer.install_hint([DependencyStatus("torch", "torch", "", False, None)])
    python = shlex.split(hint.split(" && ")[0])[0]
    assert Path(python).parent != shims
    assert installer.interpreter_identity(python) == installer.qgis_python_identity()
