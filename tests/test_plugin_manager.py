"""Install, run, upgrade and uninstall through QGIS's Plugin Manager, from a repository ``make repo`` writes.

The repository is served on 127.0.0.1; the real ``qgis`` (under Xvfb, a fresh profile without the plugin)
runs ``tests/installer_session.py``, which uses the Plugin Manager's own code (``pyplugin_installer``) as an
analyst's clicks do: Settings > Add... the repository, install GeoCLIP, geolocate a folder, publish a newer
version into the same repository, reload the repositories, upgrade, geolocate again, uninstall. The newer
version differs from the first in its version and in a mark in ``geoclip_qgis`` and ``model_utils``, so the
test can tell whose code runs after the upgrade. Both ZIPs are built once for the module.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sysconfig
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.xvfb import start_xvfb
from tools.package import build
from tools.plugin_repo import build_repo
from tools.samples.photos import write_photos

SESSION = Path(__file__).with_name("installer_session.py")
NEWER = "9.9.9"  # far above any real version: the repository's upgrade


def _newer_zip(first: Path, out: Path) -> Path:
    """The first ZIP as a newer release: its version raised, and a mark in both packages' __init__.py."""
    marks = {"geoclip_qgis/__init__.py", "geoclip_qgis/model_utils/__init__.py"}
    with zipfile.ZipFile(first) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for name in zin.namelist():
            data = zin.read(name)
            if name == "geoclip_qgis/metadata.txt":
                data = re.sub(rb"(?m)^version=.*$", f"version={NEWER}".encode(), data)
            elif name in marks:
                data += f'\nBUILD_MARK = "{NEWER}"\n'.encode()
            zout.writestr(name, data)
    return out


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # the test reads the session's record, not the server's log
        pass


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    """(served folder, URL, folder of the newer release): the first release served on 127.0.0.1."""
    work = tmp_path_factory.mktemp("plugin-repo")
    served = work / "served"
    served.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True, name="plugin-repo").start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    first = build(work / "geoclip_qgis.zip")
    build_repo(served, url, first)  # what `make repo` writes, served where the organisation hosts it
    build_repo(work / "next", url, _newer_zip(first, work / "newer.zip"))
    yield served, url, work / "next"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def session(repository, tmp_path_factory, tiny_clip, geoclip_cache_dir):
    """Run the scripted Plugin Manager session once; yield (record, stderr, profile folder)."""
    served, url, newer = repository
    work = tmp_path_factory.mktemp("pm-session")
    profile = work / "qgis" / "profiles" / "default"
    ini = profile / "QGIS" / "QGIS3.ini"
    ini.parent.mkdir(parents=True)
    ini.write_text("[qgis]\ncheckVersion=false\nshowTips=false\nallowCrashReporting=false\n", encoding="utf-8")
    deps = profile / "python" / "geoclip_deps"  # as the Setup tab leaves it: must outlive upgrade and uninstall
    deps.mkdir(parents=True)
    (deps / "kept.txt").write_text("installed by the Setup tab\n")
    write_photos(work / "photos", n=1)
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "PYTHONPATH")
           and not k.lower().endswith("_proxy")}  # QGIS fetches from 127.0.0.1 directly
    xvfb, display = start_xvfb()
    env.update(DISPLAY=display, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", GEOCLIP_CLIP_MODEL=str(tiny_clip),
               GEOCLIP_CACHE_DIR=str(geoclip_cache_dir), PM_OUT=str(work), PM_REPO_URL=url, PM_SERVED=str(served),
               PM_NEXT_REPO=str(newer), PM_PHOTOS=str(work / "photos"), PM_DEPS=str(deps),
               PYTHONPATH=sysconfig.get_paths()["purelib"])  # torch & co., as the Setup tab provides them
    try:
        done = subprocess.run(
            [shutil.which("qgis") or "qgis", "--profiles-path", str(work / "qgis"), "--profile", "default",
             "--nologo", "--noversioncheck", "--nocustomization", "--code", str(SESSION)],
            env=env, capture_output=True, text=True, timeout=420, check=False)
    finally:
        xvfb.kill()
        xvfb.wait()
    record_file = work / "session.json"
    assert record_file.is_file(), f"QGIS exited ({done.returncode}) before the session ended:\n{done.stderr[-3000:]}"
    assert done.returncode == 0 and "died on signal" not in done.stderr, done.stderr[-3000:]
    yield json.loads(record_file.read_text(encoding="utf-8")), done.stderr, profile


def test_installed_from_the_repository_and_ran(session):
    record = session[0]
    assert record["errors"] == [] and record.get("done"), record["errors"]
    assert "repository dialog filled" in record["steps"]
    assert record["offered"]["version_available"] == _metadata_version()
    assert record["installed"] == {"version": _metadata_version(), "loaded": True, "folder": True}
    assert record["first_run"] == {"N_PHOTOS": 1, "N_FAILED": 0}


def test_the_upgrade_runs_the_new_code_and_keeps_settings_and_dependencies(session):
    record = session[0]
    assert record["offered_after_publish"]["version_available"] == NEWER
    upgraded = record["upgraded"]
    assert upgraded["version"] == NEWER
    assert upgraded["plugin_mark"] == NEWER and upgraded["model_utils_mark"] == NEWER  # the new code runs
    assert upgraded["stale"] == []  # no module object from before the upgrade is left in sys.modules
    assert "model_utils.model.geoclip" in upgraded["modules"] and "model_utils.model.geoclip" in record[
        "modules_before"]  # both runs went through the model: the check above covers it
    assert record["second_run"] == {"N_PHOTOS": 1, "N_FAILED": 0}
    assert upgraded["precision_setting"] == "fp32" and upgraded["deps_marker"]


def test_uninstall_removes_the_plugin_and_says_what_stays_and_how_to_remove_it(session, geoclip_cache_dir):
    record, _stderr, profile = session
    assert record["uninstalled"] == {"folder": False, "loaded": False, "deps_marker": True}
    said = [m["text"] for m in record["messages"] if m["tag"] == "GeoCLIP" and "was uninstalled" in m["text"]]
    assert len(said) == 1, said
    text = said[0]
    assert str(profile / "python" / "geoclip_deps") in text and str(geoclip_cache_dir) in text
    assert "delete those folders" in text and " MB)" in text


def test_nothing_was_logged_as_an_error_and_no_dialog_stopped_the_session(session):
    record = session[0]
    assert record["dialogs"] == []
    critical = 2  # Qgis.MessageLevel.Critical (3 is Success: "Plugin uninstalled successfully" on 3.40)
    errors = [m for m in record["messages"] if m["level"] == critical or m["tag"] in ("Python error", "Python warning")]
    assert errors == []


def _metadata_version() -> str:
    text = (Path(__file__).resolve().parents[1] / "metadata.txt").read_text(encoding="utf-8")
    return re.search(r"(?m)^version=(.*)$", text)[1].strip()
