"""Install missing Python packages from inside QGIS, into a folder of the plugin's own.

Why a folder of our own (``<QGIS profile>/python/geoclip_deps``) and not QGIS's site-packages: it
needs no admin rights and it can be deleted to undo everything. It goes at the *front* of ``sys.path``:
the platform's older copies of pure-Python packages must not shadow what torch & co. were resolved
against (with the folder last, Debian 12's sympy 1.11 broke torch 2.13's import, which needs 1.13).
What QGIS's own compiled modules link against stays the platform's: numpy is pinned to QGIS's version
for pip and pip's copy of it is dropped (``PLATFORM_PINNED``); pyproj is never installed
(``PLATFORM_ONLY``). pip installs into a staging folder first; only a finished install is moved in, so
a failed or canceled run leaves the folder as it was.
"""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from . import indexes
from .dependencies import DependencyStatus
from .indexes import TORCH_CPU_INDEX, TORCH_INDEX_ENV, default_index, extra_pip_args, probeable, torch_index

CUDA_TORCH_SIZE = "about 3 GB"  # torch plus its nvidia-* wheels
PIP_MISSING_HINT = ("Debian/Ubuntu: sudo apt-get install python3-pip; Windows: the python3-pip package in the "
                    "OSGeo4W installer; macOS: the official QGIS bundle ships pip")


def deps_folder() -> Path:
    """Where installed packages live: ``$GEOCLIP_DEPS_DIR``, else ``<QGIS profile>/python/geoclip_deps``."""
    env = os.environ.get("GEOCLIP_DEPS_DIR")
    if env:
        return Path(env).expanduser()
    from qgis.core import QgsApplication

    return Path(QgsApplication.qgisSettingsDirPath()) / "python" / "geoclip_deps"


def add_deps_to_path() -> None:
    """Put the folder first on ``sys.path`` (see the module docstring for why first), after dropping any
    copy of a PLATFORM_PINNED package that a by-hand install put there."""
    folder = str(deps_folder())
    if folder not in sys.path and Path(folder).is_dir():
        drop_platform_copies(Path(folder))  # asked before the folder is on the path and could answer
        sys.path.insert(0, folder)
        import importlib

        importlib.invalidate_caches()


IDENTITY_CODE = "import sys; print(sys.version); print(sys.implementation.cache_tag)"


def qgis_python_identity() -> str:
    """The running interpreter's version and ABI tag: pip must install for exactly this Python."""
    return f"{sys.version}\n{sys.implementation.cache_tag}"


def interpreter_identity(executable: str) -> str | None:
    """What ``executable`` reports as its version and ABI tag; None if it does not run as a Python."""
    try:
        done = subprocess.run([executable, "-c", IDENTITY_CODE], capture_output=True, text=True, timeout=30,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def interpreter_candidates() -> list[str]:
    """Where QGIS's own Python may live (``sys.executable`` is often the QGIS binary), then PATH."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    paths = [Path(sys.executable)]
    for base in (Path(sys.base_prefix), Path(sys.prefix), Path(sys.exec_prefix)):
        paths += [base / "bin" / f"python{version}", base / "bin" / "python3", base / "python.exe",
                  base / "python3.exe"]
    for folder in os.environ.get("PATH", "").split(os.pathsep):  # every one on PATH, not only the first
        if folder:
            paths += [Path(folder) / f"python{version}", Path(folder) / "python3"]
    seen, unique = set(), []
    for path in paths:
        if path.is_file() and os.access(path, os.X_OK) and path.name.lower().startswith("python") \
                and str(path) not in seen:
            seen.add(str(path))
            unique.append(str(path))
    return unique


@functools.lru_cache(maxsize=4)
def _matching_interpreter(wanted: str, candidates: tuple[str, ...]) -> str | None:
    """The first candidate that reports ``wanted``; remembered, as the Setup tab asks on every refresh."""
    return next((c for c in candidates if interpreter_identity(c) == wanted), None)


def python_executable() -> str:
    """The interpreter QGIS embeds, proven by running it: same ``sys.version`` and ABI tag.

    Under pyenv or conda the first ``python3`` on PATH is often another Python; pip would then
    install packages QGIS cannot import.
    """
    tried = tuple(interpreter_candidates())
    found = _matching_interpreter(qgis_python_identity(), tried)
    if found is not None:
        return found
    raise RuntimeError(
        f"No Python interpreter here is the one QGIS runs (Python {sys.version.split()[0]}, "
        f"{sys.implementation.cache_tag}); tried: {', '.join(tried) or 'none found'}. Install the packages "
        "by hand with the command above, using the Python that came with QGIS.")


PLATFORM_ONLY = {"pyproj": "pip's pyproj wheel carries a second PROJ library that clashes with QGIS's own: "
                            "install your platform's package (Debian/Ubuntu: sudo apt-get install python3-pyproj; "
                            "Windows: OSGeo4W's python3-pyproj)"}


# Compiled into what QGIS's Python already runs (GDAL's bindings, Processing): the platform's copy is the
# one imported, so pip resolves everything else against its version and the copy pip installs is dropped.
PLATFORM_PINNED = ("numpy",)


def platform_pins() -> list[str]:
    """``name==version`` of each PLATFORM_PINNED distribution QGIS's Python has (read from metadata, not
    imported)."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for name in PLATFORM_PINNED:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            continue
    return pins


def drop_platform_copies(folder: Path) -> list[str]:
    """Delete what pip put in ``folder`` for the PLATFORM_PINNED distributions the platform has (call it
    while ``folder`` is not on ``sys.path``); returns their names."""
    from importlib.metadata import distributions

    owned = {pin.split("==")[0] for pin in platform_pins()}
    dropped = []
    for dist in distributions(path=[str(folder)]):
        name = (dist.metadata["Name"] or "").lower()
        if name not in owned:
            continue
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in sorted(tops - {"bin"}):  # bin/ holds every package's scripts
            entry = folder / top
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            elif entry.exists() or entry.is_symlink():
                entry.unlink()
        dropped.append(name)
    return dropped


def requirements(missing: list[DependencyStatus]) -> list[str]:
    """pip requirement strings for what is missing (the GeoCLIP wheel pinned, as the weights need);
    packages that must come from the platform (``PLATFORM_ONLY``) are left out."""
    return ["geoclip==1.3.0" if d.distribution == "geoclip" else d.distribution for d in missing
            if d.distribution not in PLATFORM_ONLY]


def pip_commands(packages: list[str], staging: Path, cuda_torch: bool = False,
                 python: str | None = None, constraints: Path | None = None) -> list[list[str]]:
    """The pip calls, into ``staging``, each a list for ``subprocess``.

    torch comes alone from the CPU wheel index and from nowhere else (with PyPI beside it, pip may
    take PyPI's CUDA build, several GB), unless ``cuda_torch``: the CPU index could not be reached and
    the user agreed to the size, so torch comes from the default index; the
    GeoCLIP wheel comes with ``--no-deps`` (its own requirements would pull a second torch stack);
    ``$GEOCLIP_PIP_ARGS`` is appended to every call. The platform's pins (QGIS's numpy) steer the
    resolution: from the ``constraints`` file the installer writes, else (a command for a person to
    type) as requirements beside the packages; either way that copy is dropped afterwards.
    """
    base = [python or python_executable(), "-m", "pip", "install", "--target", str(staging), "--no-input",
            "--disable-pip-version-check", "--progress-bar", "off", "--retries", "1", "--timeout", "20"]
    pinned = ["-c", str(constraints)] if constraints is not None else []
    pins = [] if constraints is not None else platform_pins()
    extra = extra_pip_args()
    plain = [p for p in packages if not p.startswith("geoclip==") and p != "torch"]
    weights = [p for p in packages if p.startswith("geoclip==")]
    commands = []
    if "torch" in packages:
        source = [] if cuda_torch or "--no-index" in extra else ["--index-url", torch_index()]
        commands.append([*base, *source, *pinned, *extra, "torch"])
    if plain:
        commands.append([*base, *pinned, *extra, *plain, *pins])
    if weights:
        commands.append([*base, *extra, "--no-deps", *weights])
    return commands


def install_hint(missing: list[DependencyStatus]) -> str:
    """The commands the installer runs, for a user who prefers a terminal. ``--target`` into the
    plugin's own folder: Debian/Ubuntu (PEP 668 "externally-managed-environment") accept it where a
    ``pip install --user`` is refused. The interpreter shown is the one the installer would run, proven
    QGIS's own (the first candidate was a pyenv shim on a desktop whose PATH had one); when none is, a
    plain name and the Setup tab's log say why."""
    try:
        python = python_executable()
    except RuntimeError:
        python = "python" if os.name == "nt" else "python3"
    commands = pip_commands(requirements(missing), deps_folder(), python=python)
    return " && ".join(shell_join(command) for command in commands)


def shell_join(command: list[str], windows: bool | None = None) -> str:
    """One command line a person can paste: cmd.exe's quoting on Windows (double quotes; POSIX single quotes
    are literal characters there), the POSIX shell's elsewhere."""
    if os.name == "nt" if windows is None else windows:
        return subprocess.list2cmdline(command)
    return shlex.join(command)


# pip runs in a process group of its own, so Cancel can end everything it started
NEW_PROCESS_GROUP: dict = ({"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP} if os.name == "nt"
                           else {"start_new_session": True})


def end_process_tree(process: subprocess.Popen) -> None:
    """Terminate ``process`` and its descendants (its process group; ``taskkill /T`` on Windows)."""
    try:
        if os.name == "nt":
            taskkill = os.path.join(os.environ.get("SystemRoot", r"C:\Windows"), "System32", "taskkill.exe")
            subprocess.run([taskkill, "/T", "/F", "/PID", str(process.pid)], capture_output=True, check=False)
        else:
            import signal

            os.killpg(process.pid, signal.SIGTERM)
    except (OSError, ProcessLookupError):
        pass  # already gone


class Installation:
    """One pip run, in a thread-safe shape a QgsTask can drive: ``run()`` blocks, ``cancel()`` stops it."""

    def __init__(self, packages: list[str], log: Callable[[str], None], allow_cuda: bool = False) -> None:
        self.packages = packages
        self.allow_cuda = allow_cuda
        self.log = log
        self.target = deps_folder()
        self.staging = self.target.with_name(f".{self.target.name}.staging-{os.getpid()}")
        self._process: subprocess.Popen | None = None
        self._canceled = threading.Event()

    def cancel(self) -> None:
        """Stop pip and every process it started (build backends, pip's own subprocesses)."""
        self._canceled.set()
        process = self._process
        if process is not None and process.poll() is None:
            end_process_tree(process)

    @property
    def canceled(self) -> bool:
        return self._canceled.is_set()

    def run(self) -> bool:
        """Install, then move the result in; False (with the reason logged) on failure or cancel. A disk too
        small for the packages is refused up front, and one that fills up on the way is named as full."""
        from model_utils.disk import is_disk_full

        from .install_space import full_message, space_problem

        problem = space_problem(self.target, self.packages)
        if problem:
            self.log(problem)
            return False
        pins = self.staging.with_name(self.staging.name + ".pins.txt")
        try:
            return self._install(pins)
        except OSError as exc:
            if not is_disk_full(exc, self.target):
                raise
            self.log(full_message(self.target))
            return False
        finally:
            shutil.rmtree(self.staging, ignore_errors=True)
            pins.unlink(missing_ok=True)

    def _install(self, pins: Path) -> bool:
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging.mkdir(parents=True)
        pins.write_text("".join(f"{pin}\n" for pin in platform_pins()), encoding="utf-8")
        try:
            python = python_executable()
        except RuntimeError as exc:  # no interpreter that is QGIS's own
            self.log(str(exc))
            return False
        if not self._has_pip(python):
            return False
        cuda_torch = self._sources(python)
        if cuda_torch is None:
            return False
        commands = pip_commands(self.packages, self.staging, cuda_torch, python=python, constraints=pins)
        for command in commands:
            if self.canceled or not self._run_step(command):
                return False
        for name in drop_platform_copies(self.staging):
            self.log(f"Keeping QGIS's own {name} (pip's copy of the same version is not installed).")
        self._merge()
        return True

    def _has_pip(self, python: str) -> bool:
        """``python -m pip --version`` before anything else: QGIS's Python often comes without pip (Debian's
        qgis does not pull python3-pip), and pip's own "No module named pip" says nothing about the fix."""
        try:
            done = subprocess.run([python, "-m", "pip", "--version"], capture_output=True, text=True, timeout=60,
                                  check=False)
            if done.returncode == 0:
                return True
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.log(f"QGIS's Python ({python}) has no pip, so nothing was installed. Install pip for it "
                 f"({PIP_MISSING_HINT}), then press Install again.")
        return False

    def _sources(self, python: str) -> bool | None:
        """Probe each index pip will use once (all at once, bounded by ``indexes.PROBE_SECONDS``); None, with
        one line naming the ways out, when one cannot be reached. Otherwise whether torch comes from the
        default index: only when the CPU index is unreachable and the user allowed the CUDA build's size."""
        if "--no-index" in extra_pip_args() or not self.packages:
            return False  # wheels on disk: no index is used
        wants_torch = "torch" in self.packages
        cpu, default = torch_index(), default_index(python)
        urls = [u for u in dict.fromkeys([cpu] if wants_torch else []) if probeable(u)]
        urls += [default] if probeable(default) and default not in urls else []
        answers = indexes.indexes_reachable(urls, indexes.PROBE_SECONDS)
        reachable = lambda url: answers.get(url, True)  # noqa: E731 - not probed (credentials...): pip judges
        cpu_down = wants_torch and not reachable(cpu)
        cuda_torch = cpu_down and self.allow_cuda and reachable(default)
        unreachable, ways = [], []
        if cpu_down and not cuda_torch:
            unreachable.append(f"the PyTorch CPU wheel index {cpu}")
            ways += [] if self.allow_cuda else [f"allow the CUDA build from PyPI ({CUDA_TORCH_SIZE}) in the Setup tab"]
            ways += [f"set {TORCH_INDEX_ENV} to a reachable mirror of that index",
                     f"install torch's CPU build by hand ({python} -m pip install --target {self.target} "
                     f"--index-url {TORCH_CPU_INDEX} torch, where that index is reachable)"]
        if (cpu_down and self.allow_cuda or any(p != "torch" for p in self.packages)) and not reachable(default):
            unreachable.append(f"the package index {default}")
            ways += ["check the network and the proxy (HTTPS_PROXY)",
                     "set PIP_INDEX_URL (or GEOCLIP_PIP_ARGS=\"--index-url URL\") to a reachable mirror",
                     "set GEOCLIP_PIP_ARGS=\"--no-index --find-links DIR\" to install wheels from a folder"]
        if unreachable:
            what = " and ".join(unreachable)
            self.log(f"{what[0].upper()}{what[1:]} cannot be reached from here, so nothing was installed. "
                     f"Either {'; or '.join(ways)}.")
            return None
        if cuda_torch:
            self.log(f"The PyTorch CPU wheel index {cpu} cannot be reached: as allowed, torch comes from {default} "
                     f"as its CUDA build ({CUDA_TORCH_SIZE}).")
        return cuda_torch

    def _run_step(self, command: list[str]) -> bool:
        self.log("$ " + " ".join(shlex.quote(c) for c in command))
        tail: list[str] = []
        try:
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                       errors="replace", **NEW_PROCESS_GROUP)
        except OSError as exc:
            self.log(f"Could not start pip: {exc}")
            return False
        with process:  # closes pip's output pipe however the step ends (no ResourceWarning)
            self._process = process
            if self.canceled:  # canceled while starting: the cancel found no process yet
                end_process_tree(process)
            for line in process.stdout:
                line = line.rstrip()
                if line:
                    self.log(line)
                    tail = (tail + [line])[-8:]
            code = process.wait()
        if self.canceled:
            self.log("Canceled: nothing was installed.")
            return False
        if code != 0:
            from .install_space import full_message, pip_said_full

            self.log(full_message(self.target) if pip_said_full(tail) else
                     f"pip failed (exit {code}); nothing was installed. Last lines:\n" + "\n".join(tail))
            return False
        return True

    def _merge(self) -> None:
        """Move every top-level entry of the staging folder into the target (replacing same names)."""
        self.target.mkdir(parents=True, exist_ok=True)
        for entry in sorted(self.staging.iterdir()):
            destination = self.target / entry.name
            if destination.is_dir() and not destination.is_symlink():
                shutil.rmtree(destination)
            elif destination.exists() or destination.is_symlink():
                destination.unlink()
            os.replace(entry, destination)
        self.log(f"Installed into {self.target}")
