"""Before pip runs: QGIS's Python has pip, each package index pip will use answers (probed once, bounded), torch
stays the CPU build unless the user agreed to the CUDA build's size, and the by-hand commands (Setup tab,
README) are the installer's own. Loopback servers only; no network."""

from __future__ import annotations

import re
import shlex
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import PROXY_VARIABLES

ROOT = Path(__file__).resolve().parents[1]


class _Index(BaseHTTPRequestHandler):
    """A package index stand-in: answers HEAD with ``status`` (a mirror may refuse HEAD) and records paths."""

    status = 200
    seen: list[str] = []

    def do_HEAD(self):  # noqa: N802 - http.server API
        type(self).seen.append(self.path)
        self.send_response(type(self).status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):  # quiet
        pass


@pytest.fixture()
def index_server():
    """A local index; ``.status`` sets its answer, ``.seen`` what it was asked. Yields its URL."""

    class Handler(_Index):
        seen: list[str] = []

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.handler = Handler
    yield server
    server.shutdown()
    server.server_close()


def _url(server, path: str = "/simple") -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


@pytest.fixture()
def dead_index():
    """``refused`` (nothing listens) or ``silent`` (the kernel accepts, nothing ever answers): yields a URL maker."""
    sockets = []

    def make(kind: str) -> str:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        if kind == "silent":
            sock.listen(8)
            sockets.append(sock)
        else:
            sock.close()
        return f"http://127.0.0.1:{port}/whl/cpu"

    yield make
    for sock in sockets:
        sock.close()


@pytest.fixture()
def online_install(tmp_path, monkeypatch):
    """An install that would use indexes (no ``--no-index``), into ``tmp_path/deps``; no proxy from the machine.
    Returns a function running an Installation whose pip steps are recorded, not run: (ok, lines, commands)."""
    from geoclip_qgis.setup import indexes, installer

    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("GEOCLIP_PIP_ARGS", raising=False)
    monkeypatch.setenv("GEOCLIP_DEPS_DIR", str(tmp_path / "deps"))
    monkeypatch.setattr(indexes, "PROBE_SECONDS", 0.5)
    probes: list[tuple[list[str], float]] = []
    real = indexes.indexes_reachable

    def spy(urls, timeout):
        probes.append((list(urls), timeout))
        return real(urls, timeout)

    monkeypatch.setattr(indexes, "indexes_reachable", spy)

    def run(packages: list[str], allow_cuda: bool = False):
        lines: list[str] = []
        commands: list[list[str]] = []
        installation = installer.Installation(packages, lines.append, allow_cuda=allow_cuda)
        installation._run_step = lambda command: commands.append(command) or True  # noqa: SLF001 - pip not run
        return installation.run(), lines, commands

    run.probes = probes
    return run


# ------------------------------------------------------------------ index probing
@pytest.mark.parametrize("kind", ["refused", "silent"])
def test_an_unreachable_cpu_index_fails_in_one_line_within_the_probe_timeout(online_install, index_server,
                                                                            dead_index, monkeypatch, tmp_path, kind):
    cpu = dead_index(kind)
    monkeypatch.setenv("GEOCLIP_TORCH_INDEX", cpu)
    monkeypatch.setenv("PIP_INDEX_URL", _url(index_server))
    ok, lines, commands = online_install(["torch", "transformers"])
    assert ok is False and commands == []  # pip never ran
    assert len(lines) == 1 and f"{cpu} cannot be reached" in lines[0]
    assert "CUDA build" in lines[0] and "GEOCLIP_TORCH_INDEX" in lines[0] and "--index-url" in lines[0]
    # each index probed once, together, with the configured timeout (a silent index costs that, not pip's retries)
    assert online_install.probes == [([cpu, _url(index_server)], 0.5)]
    assert index_server.handler.seen == ["/simple/"]
    assert not (tmp_path / "deps").exists()


@pytest.mark.parametrize("kind", ["refused", "silent"])
def test_the_probe_gives_up_after_its_timeout(dead_index, monkeypatch, kind):
    """Bounded by construction: the probe's socket timeout, and a thread join of timeout + 1 s on top."""
    from geoclip_qgis.setup import indexes

    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    url = dead_index(kind)
    joins: list[float | None] = []
    real_join = threading.Thread.join

    def join(self, timeout=None):
        if self.name == "geoclip-index-probe":
            joins.append(timeout)
        return real_join(self, timeout)

    monkeypatch.setattr(threading.Thread, "join", join)
    assert indexes.indexes_reachable([url], timeout=0.3) == {url: False}
    assert len(joins) == 1 and joins[0] is not None and joins[0] <= 1.3


def test_an_unreachable_package_index_fails_in_one_line(online_install, index_server, dead_index, monkeypatch):
    monkeypatch.setenv("GEOCLIP_TORCH_INDEX", _url(index_server, "/whl/cpu"))
    pypi = dead_index("silent")
    monkeypatch.setenv("PIP_INDEX_URL", pypi)
    ok, lines, commands = online_install(["torch", "transformers", "geoclip==1.3.0"])
    assert ok is False and commands == []
    assert len(lines) == 1 and f"package index {pypi} cannot be reached" in lines[0]
    assert "PIP_INDEX_URL" in lines[0] and "--find-links" in lines[0]


def test_the_index_of_geoclip_pip_args_is_the_one_probed(online_install, index_server, monkeypatch):
    mirror = _url(index_server, "/mirror/simple")
    monkeypatch.setenv("GEOCLIP_PIP_ARGS", f"--index-url {mirror}")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/not-this-one")
    ok, lines, commands = online_install(["transformers"])
    assert ok, lines
    assert online_install.probes == [([mirror], 0.5)] and index_server.handler.seen == ["/mirror/simple/"]
    assert commands and all(c[c.index("--index-url") + 1] == mirror for c in commands)


def test_no_index_means_no_probe(online_install, monkeypatch, tmp_path):
    monkeypatch.setenv("GEOCLIP_PIP_ARGS", f"--no-index --find-links {tmp_path}")
    ok, _lines, commands = online_install(["torch", "transformers"])
    assert ok and len(commands) == 2 and online_install.probes == []


@pytest.mark.parametrize(("status", "reachable"), [(200, True), (403, True), (404, True), (405, True),
                                                   (407, False), (502, False)])
def test_an_http_error_from_the_index_means_it_answered(index_server, monkeypatch, status, reachable):
    from geoclip_qgis.setup.indexes import indexes_reachable

    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    index_server.handler.status = status
    url = _url(index_server)
    assert indexes_reachable([url], timeout=5.0) == {url: reachable}


def test_the_probe_speaks_http_only(tmp_path):
    """A file: (or ftp:, data:) URL is never opened, not even when it names a file that exists: the opener has
    no handler for anything but http(s)."""
    import urllib.request

    from geoclip_qgis.setup import indexes

    page = tmp_path / "index.html"
    page.write_text("<html></html>")
    url = page.as_uri()
    assert indexes.indexes_reachable([url], timeout=1.0) == {url: False}
    with pytest.raises(urllib.error.URLError, match="unknown url type"):
        indexes._http_only_opener().open(url)  # noqa: SLF001 - the opener itself, past probeable()
    with urllib.request.urlopen(url) as answer:  # the default opener would have read it
        assert answer.read() == b"<html></html>"


# ------------------------------------------------------------------ torch: the CPU build unless agreed otherwise
@pytest.mark.parametrize("allow_cuda", [False, True])
def test_a_reachable_cpu_index_is_used_whatever_the_consent(online_install, index_server, monkeypatch, allow_cuda):
    cpu = _url(index_server, "/whl/cpu")
    monkeypatch.setenv("GEOCLIP_TORCH_INDEX", cpu)
    monkeypatch.setenv("PIP_INDEX_URL", _url(index_server))
    index_server.handler.status = 405  # a mirror refusing HEAD still answered
    ok, lines, commands = online_install(["torch", "transformers"], allow_cuda=allow_cuda)
    assert ok, lines
    torch = [c for c in commands if c[-1] == "torch"]
    assert len(torch) == 1 and torch[0][torch[0].index("--index-url") + 1] == cpu
    assert [c for c in commands if "--index-url" not in c] == [c for c in commands if c[-1] != "torch"]
    assert not any("CUDA" in line for line in lines)


@pytest.mark.parametrize("allow_cuda", [False, True])
def test_the_cuda_build_only_when_the_cpu_index_is_unreachable_and_agreed(online_install, index_server, dead_index,
                                                                         monkeypatch, allow_cuda):
    from geoclip_qgis.setup.installer import CUDA_TORCH_SIZE

    cpu = dead_index("refused")
    monkeypatch.setenv("GEOCLIP_TORCH_INDEX", cpu)
    monkeypatch.setenv("PIP_INDEX_URL", _url(index_server))
    ok, lines, commands = online_install(["torch", "transformers"], allow_cuda=allow_cuda)
    torch = [c for c in commands if "torch" in c]
    if not allow_cuda:  # no command may fetch torch from anywhere but the CPU index: here, none runs at all
        assert ok is False and torch == [] and commands == []
        return
    assert ok, lines
    assert len(torch) == 1 and "--index-url" not in torch[0]  # PyPI's (the configured index's) build
    assert any(f"{cpu} cannot be reached" in line and CUDA_TORCH_SIZE in line for line in lines)


def test_the_cuda_checkbox_states_the_size_starts_off_and_reaches_the_installer(qgis_app, tmp_path,  # noqa: ARG001
                                                                               monkeypatch):
    from geoclip_qgis.setup.installer import CUDA_TORCH_SIZE
    from geoclip_qgis.ui import installer_controls

    monkeypatch.setenv("GEOCLIP_DEPS_DIR", str(tmp_path / "deps"))
    controls = installer_controls.InstallerControls()
    box = controls.allow_cuda
    assert not box.isChecked()
    assert CUDA_TORCH_SIZE in box.text() and "3 GB" in box.text()
    assert "cannot be reached" in box.toolTip()
    started: list = []

    class Manager:
        def addTask(self, task):  # noqa: N802 - QGIS API
            started.append(task)

    class App:
        @staticmethod
        def taskManager():  # noqa: N802 - QGIS API
            return Manager()

    monkeypatch.setattr(installer_controls, "QgsApplication", App)
    controls.packages = ["torch"]
    box.setChecked(True)
    controls.start()
    assert len(started) == 1 and started[0].installation.allow_cuda is True
    controls.task = None


# ------------------------------------------------------------------ pip itself
def test_an_interpreter_without_pip_is_one_clear_line(tmp_path, monkeypatch):
    from geoclip_qgis.setup import installer

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "nopip")], check=True)
    python = tmp_path / "nopip" / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    monkeypatch.setattr(installer, "python_executable", lambda: str(python))
    monkeypatch.setenv("GEOCLIP_DEPS_DIR", str(tmp_path / "deps"))
    lines: list[str] = []
    assert installer.Installation(["torch"], lines.append).run() is False
    assert len(lines) == 1 and f"({python}) has no pip" in lines[0]
    assert "sudo apt-get install python3-pip" in lines[0]
    assert not (tmp_path / "deps").exists()


# ------------------------------------------------------------------ the commands a person types
def test_windows_gets_cmd_quoting():
    from geoclip_qgis.setup.installer import shell_join

    command = [r"C:\Program Files\QGIS 3.40\apps\Python312\python.exe", "-m", "pip", "install", "--target",
               r"C:\Users\Ana\AppData\Roaming\QGIS\QGIS3\profiles\default\python\geoclip_deps", "torch"]
    line = shell_join(command, windows=True)
    assert "'" not in line
    assert line.startswith(r'"C:\Program Files\QGIS 3.40\apps\Python312\python.exe" -m pip install --target ')
    assert line.endswith(" torch")
    assert shell_join(command, windows=False) == shlex.join(command)


def _readme_packages() -> list[str]:
    """The distributions the README's by-hand install block names (options and their values left out)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Install into a desktop QGIS"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    packages = []
    for command in block.replace("\\\n", " ").splitlines():
        command = re.sub(r"\$\([^)]*\)", "", command.split("#")[0])
        words = command.split()
        if "install" not in words:
            continue
        words = words[words.index("install") + 1:]
        skip = False
        for word in words:
            if skip:
                skip = False
            elif word in ("--target", "--index-url", "-c"):
                skip = True
            elif not word.startswith("-"):
                packages.append(word)
    return packages


def test_the_readme_installs_what_the_installer_installs():
    from geoclip_qgis.setup.dependencies import REQUIRED, DependencyStatus
    from geoclip_qgis.setup.installer import requirements

    everything = requirements([DependencyStatus(m, d, "", False, None) for m, d, _ in REQUIRED])
    readme = [re.split(r"[=<>]=", p)[0] if not p.startswith("geoclip==") else p for p in _readme_packages()]
    assert sorted(readme) == sorted(everything)


def test_make_package_needs_no_venv():
    """README step 2 on a fresh machine: ``make package`` runs tools/package.py with the system Python."""
    makefile = (ROOT / "Makefile").read_text()
    rule = re.search(r"^package:(.*)\n\t(.*)$", makefile, re.M)
    assert "$(STAMP)" not in rule.group(1) and rule.group(2).startswith("$(PYTHON_SYS) tools/package.py")


def test_both_indexes_down_with_consent_is_still_one_line(online_install, dead_index, monkeypatch):
    cpu, pypi = dead_index("refused"), dead_index("silent")
    monkeypatch.setenv("GEOCLIP_TORCH_INDEX", cpu)
    monkeypatch.setenv("PIP_INDEX_URL", pypi)
    ok, lines, commands = online_install(["torch"], allow_cuda=True)
    assert ok is False and commands == [] and len(lines) == 1
    assert f"index {cpu} and the package index {pypi} cannot be reached" in lines[0]
    assert "allow the CUDA build" not in lines[0]  # already allowed: not offered as a way out
