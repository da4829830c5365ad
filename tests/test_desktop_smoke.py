"""The real QGIS desktop on a virtual screen: the plugin installed from its ZIP, used as a new user would.

Starts Xvfb (1366x768, a laptop screen) and ``qgis`` with a fresh profile holding only this plugin,
installed from the ZIP that ``make package`` builds. ``tests/desktop_session.py`` drives the dock
inside QGIS; screenshots land in ``tests/_artifacts/desktop/``. What a headless test cannot see is
checked here: Qt's warnings on stderr, the message log, the layer panel's legends, the window size.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.xvfb import start_xvfb
from tools.package import build
from tools.samples.photos import write_gps_photo, write_photos

SESSION = Path(__file__).with_name("desktop_session.py")
SCREEN = (1366, 768)


def _profile(root: Path, plugin_zip: Path) -> Path:
    """A fresh QGIS profile with the plugin unpacked from the ZIP and enabled, as Install from ZIP leaves it."""
    profile = root / "profiles" / "default"
    plugins = profile / "python" / "plugins"
    plugins.mkdir(parents=True)
    with zipfile.ZipFile(plugin_zip) as zf:
        zf.extractall(plugins)
    ini = profile / "QGIS" / "QGIS3.ini"
    ini.parent.mkdir(parents=True)
    ini.write_text("[PythonPlugins]\ngeoclip_qgis=true\n\n[qgis]\ncheckVersion=false\nshowTips=false\n"
                   "allowCrashReporting=false\n", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def desktop_session(tmp_path_factory, tiny_clip, geoclip_cache_dir):
    """Run the scripted session once; yield (record, stderr, screenshot folder)."""
    work = tmp_path_factory.mktemp("desktop")
    out = Path(__file__).parent / "_artifacts" / "desktop"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    photos, many = work / "photos", work / "many"
    write_photos(photos, n=2)
    write_gps_photo(photos / "paris.jpg", 48.8584, 2.2945)
    write_photos(many, n=32, seed=3)  # widths shrink per photo: 32 keeps them positive
    references = work / "references"
    for i, (lat, lon) in enumerate([(48.8584, 2.2945), (48.8606, 2.3376), (-33.8568, 151.2153), (-33.8523, 151.2108)]):
        write_gps_photo(references / f"ref_{i}.jpg", lat, lon, seed=10 + i)
    profiles = _profile(work / "qgis", build(work / "geoclip_qgis.zip"))
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "PYTHONPATH")}
    xvfb, display = start_xvfb(SCREEN)
    env.update(DISPLAY=display, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", GEOCLIP_CLIP_MODEL=str(tiny_clip),
               GEOCLIP_CACHE_DIR=str(geoclip_cache_dir), SMOKE_OUT=str(out), SMOKE_PHOTOS=str(photos),
               SMOKE_MANY_PHOTOS=str(many), SMOKE_REFERENCES=str(references),
               # torch & co. as a user installs them for QGIS's Python (here: this venv's packages)
               PYTHONPATH=sysconfig.get_paths()["purelib"])
    try:
        done = subprocess.run(
            [shutil.which("qgis") or "qgis", "--profiles-path", str(profiles), "--profile", "default", "--nologo",
             "--noversioncheck", "--nocustomization", "--code", str(SESSION)],
            env=env, capture_output=True, text=True, timeout=300, check=False)
    finally:
        xvfb.kill()
        xvfb.wait()
    (out / "qgis_stderr.txt").write_text(done.stderr, encoding="utf-8")
    assert done.returncode == 0 and "died on signal" not in done.stderr, done.stderr[-3000:]  # a clean exit
    session = out / "session.json"
    assert session.is_file(), f"QGIS exited ({done.returncode}) without finishing the session:\n{done.stderr[-3000:]}"
    yield json.loads(session.read_text(encoding="utf-8")), done.stderr, out


def test_the_session_ran_every_step_without_python_errors(desktop_session):
    record, _stderr, out = desktop_session
    assert record["errors"] == []
    assert record.get("done")
    problems = [m for m in record["messages"]
                if m["tag"] in ("Python error", "Python warning") or (m["tag"] == "GeoCLIP" and m["level"] >= 2)]
    assert problems == []
    shots = sorted(p.name for p in out.glob("*.png"))
    assert shots == ["01_dock_open.png", "02_geolocated.png", "03_photo_by_photo.png", "04_text_query.png",
                     "04b_references.png", "05_canceled.png", "06_unloaded_mid_run.png"]
    assert all((out / name).stat().st_size > 20_000 for name in shots)  # real pictures, not blank frames


def test_no_widget_is_touched_from_a_worker_thread(desktop_session):
    _record, stderr, _out = desktop_session
    bad = [line for line in stderr.splitlines() if "Cannot queue arguments" in line or "QObject::" in line]
    assert bad == []


def test_the_window_fits_a_laptop_screen_with_the_dock_and_toolbox(desktop_session):
    window = desktop_session[0]["window"]
    assert window["toolbox_visible"]
    assert "ProcessingToolbox" in window["tabified_with"], window  # a tab beside the toolbox, not a third panel
    assert window["min_hint_height"] <= SCREEN[1] and window["height"] <= SCREEN[1], window
    # first show in a new profile: wide enough for the forms (QGIS gave ~290 px and cut them), capped at 40 %
    wanted = min(window["form_width"], int(window["width"] * 0.4))
    assert wanted - 8 <= window["dock_width"] <= int(window["width"] * 0.4) + 8, window


def test_first_run_results_are_styled_and_stacked_right(desktop_session):
    record = desktop_session[0]
    assert record["geolocate_results"]["N_PHOTOS"] == "3", record["geolocate_log"]
    for state in (record["tree_after_first_run"], record["tree_after_text"]):
        newest = state[0]
        assert newest["layers"][0]["kind"] == "vector"  # points above the rasters
        rasters = [layer for layer in newest["layers"] if layer["kind"] == "raster"]
        assert rasters and all(r["legend_max"] == r["data_max"] for r in rasters), rasters
        assert [r["visible"] for r in rasters] == [True] + [False] * (len(rasters) - 1)
        assert all(not g["checked"] and not g["expanded"] for g in state[1:])


def test_the_browser_steps_through_three_photos_with_the_keyboard(desktop_session):
    browser = desktop_session[0]["browser"]
    assert browser["rows"] == 3 and browser["rows_in_view"] == 3, browser  # the whole run in view at 1366x768
    assert browser["bottom_layer"] == "World (QGIS's world map)"  # the basemap under the results (screenshot 03)
    assert browser["layers"] == 5  # the run's points, truth lines, regions, one raster; the world map
    steps = browser["steps"]
    assert len({step["photo"] for step in steps}) == 3
    for step in steps:
        assert step["visible_rasters"] == [step["raster"]]  # the photo's own raster, and only it
        (x0, y0, x1, y1), (rx0, ry0, rx1, ry1) = step["extent"], step["region"]
        assert x0 <= rx0 and y0 <= ry0 and rx1 <= x1 and ry1 <= y1, step  # its 90% region in view


def test_the_reference_choice_builds_the_collection_then_geolocates_with_it(desktop_session):
    record = desktop_session[0]
    log = record["references_log"]
    assert "Build reference collection done" in log and "4 photos with a position" in log, log
    newest = record["tree_after_references"][0]
    names = [layer["name"] for layer in newest["layers"]]
    matched = names.index("Matched reference photos")  # above the lines, regions and rasters, below the points
    assert names.index("Top-k predictions") < matched < names.index("Best guess to matched references") \
        < names.index("Credible regions"), names


def test_cancel_and_unload_mid_run_are_clean(desktop_session):
    record = desktop_session[0]
    assert record["cancel_log"].count("Canceled") == 1 and "Failed" not in record["cancel_log"], record["cancel_log"]
    # QGIS's own bar for a task that ends in failure ("Task failed"): a cancel must not raise it
    assert not any("task failed" in text.lower() or "geolocate" in text.lower() and "fail" in text.lower()
                   for text in record["message_bar_after_cancel"]), record["message_bar_after_cancel"]
    assert record["running_before_unload"] is True
    assert record["tasks_after_unload"] == 0
