"""Runs inside the real QGIS desktop (``qgis --code installer_session.py``), driven by test_plugin_manager.

What an analyst does with an organisation's plugin repository, through the code of QGIS's own Plugin Manager
(``pyplugin_installer``): add the repository in its dialog, install GeoCLIP from it, run a geolocation, reload
the repositories once a newer version is published there, upgrade in the same session, run again, uninstall.
Writes a JSON record of what it saw to ``$PM_OUT/session.json`` and quits QGIS. No assertion here: a step that
raises is recorded and ends the session.
"""

from __future__ import annotations

import builtins
import json
import os
import shutil
import sys
import time
import traceback
from pathlib import Path

import processing
import pyplugin_installer
import qgis.utils
from pyplugin_installer.installer_data import officialRepo, plugins, reposGroup
from qgis.core import QgsApplication, QgsProject, QgsSettings
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QApplication, QDialog, QMessageBox
from qgis.utils import iface, pluginMetadata
from qgis.utils import plugins as loaded_plugins

OUT = Path(os.environ["PM_OUT"])
REPO_URL = os.environ["PM_REPO_URL"]  # where the test serves the repository folder
SERVED, NEXT = Path(os.environ["PM_SERVED"]), Path(os.environ["PM_NEXT_REPO"])
PHOTOS, DEPS = os.environ["PM_PHOTOS"], Path(os.environ["PM_DEPS"])
KEY, REPO_NAME = "geoclip_qgis", "GeoCLIP (organisation)"
# the profile's plugin folder: home_plugin_path up to 3.3x, HOME_PLUGIN_PATH since
PLUGINS_DIR = getattr(qgis.utils, "HOME_PLUGIN_PATH", None) or getattr(qgis.utils, "home_plugin_path", "")
STEP_SECONDS = 150.0  # a step still running after this is stuck (a dialog nobody answers): recorded, ended
record: dict = {"steps": [], "messages": [], "errors": [], "dialogs": []}


def log_message(message, tag, level) -> None:
    record["messages"].append({"tag": tag, "level": int(level), "text": message[:3000]})


QgsApplication.messageLog().messageReceived.connect(log_message)


def close_message_boxes() -> None:
    """A QMessageBox from the installer would wait for a click forever: record its text and dismiss it."""
    box = QApplication.activeModalWidget()
    if isinstance(box, QMessageBox):
        record["dialogs"].append(box.text())
        box.reject()


def fill_repository_dialog() -> None:
    """The user's part of Settings > Add...: a name, the URL, OK."""
    dialog = QApplication.activeModalWidget()
    if not isinstance(dialog, QDialog) or not hasattr(dialog, "editURL"):
        QTimer.singleShot(100, fill_repository_dialog)
        return
    dialog.editName.setText(REPO_NAME)
    dialog.editURL.setText(f"{REPO_URL}/plugins.xml")
    record["steps"].append("repository dialog filled")
    dialog.accept()


def show_experimental_plugins() -> None:
    """Settings > "Show also experimental plugins": a QgsSettingsTree entry since 3.3x, a plain key before."""
    try:
        from qgis.core import QgsSettingsTree

        QgsSettingsTree.node("plugin-manager").childSetting("allow-experimental").setValue(True)
    except (ImportError, AttributeError):
        QgsSettings().setValue("app/plugin_installer/allowExperimental", True)


def ours() -> dict[str, object]:
    """The plugin's modules in memory now (kept alive in the record, so identity is a fair test later)."""
    return {name: module for name, module in sys.modules.items()
            if name.split(".")[0] in (KEY, "model_utils") and module is not None}


def geolocate(out: str) -> dict:
    params = {"FOLDER": PHOTOS, "TOP_K": 1, "CELL_SIZE": 10.0, "OUTPUT_FOLDER": str(OUT / out)}
    result = processing.run("geoclip:geolocatephotos", params)
    for layer in list(QgsProject.instance().mapLayers().values()):
        QgsProject.instance().removeMapLayer(layer.id())
    return {"N_PHOTOS": int(result["N_PHOTOS"]), "N_FAILED": int(result["N_FAILED"])}


def plan():
    """The session as steps; each ``yield`` hands back a condition to wait for."""
    installer = pyplugin_installer.instance()
    settings = QgsSettings()
    # only this organisation's repository: the official one is off (no network here), experimental plugins shown
    settings.setValue(f"{reposGroup}/{officialRepo[0]}/url", officialRepo[1])
    settings.setValue(f"{reposGroup}/{officialRepo[0]}/enabled", False)
    show_experimental_plugins()
    yield lambda: True

    QTimer.singleShot(100, fill_repository_dialog)
    installer.addRepository()  # Settings > Add...; then QGIS fetches every enabled repository
    entry = plugins.all().get(KEY, {})
    record["offered"] = {k: entry.get(k) for k in ("version_available", "status", "status_exp", "experimental")}
    stable = not entry.get("experimental", False)
    installer.installPlugin(KEY, stable=stable)  # "Install plugin" (or "Install experimental plugin")
    record["installed"] = {"version": pluginMetadata(KEY, "version"), "loaded": KEY in loaded_plugins,
                           "folder": os.path.isdir(os.path.join(PLUGINS_DIR, KEY))}
    yield lambda: True

    record["first_run"] = geolocate("run1")
    sys.modules[f"{KEY}.settings"].PRECISION.write("fp32")  # a saved Setup choice
    before = ours()
    record["modules_before"] = sorted(before)
    builtins._geoclip_old_modules = before  # noqa: SLF001 - kept alive until the end
    yield lambda: True

    for item in NEXT.iterdir():  # the organisation publishes the newer version into the same repository
        shutil.copy2(item, SERVED / item.name)
    installer.reloadAndExportData()  # "Reload all repositories"
    entry = plugins.all().get(KEY, {})
    record["offered_after_publish"] = {k: entry.get(k) for k in ("version_available", "status", "status_exp")}
    installer.installPlugin(KEY, stable=stable)  # "Upgrade plugin"
    yield lambda: True

    record["second_run"] = geolocate("run2")
    now = ours()
    record["upgraded"] = {
        "version": pluginMetadata(KEY, "version"),
        "plugin_mark": getattr(sys.modules.get(KEY), "BUILD_MARK", None),
        "model_utils_mark": getattr(sys.modules.get("model_utils"), "BUILD_MARK", None),
        "stale": sorted(name for name, module in now.items() if before.get(name) is module),
        "modules": sorted(now),
        "precision_setting": QgsSettings().value("geoclip/precision"),
        "deps_marker": (DEPS / "kept.txt").is_file(),
    }
    yield lambda: True

    installer.uninstallPlugin(KEY, quiet=True)  # "Uninstall plugin" (its Yes/No box answered Yes)
    yield lambda: True  # the plugin's check runs on the next turn of the event loop
    record["uninstalled"] = {"folder": os.path.isdir(os.path.join(PLUGINS_DIR, KEY)),
                             "loaded": KEY in loaded_plugins, "deps_marker": (DEPS / "kept.txt").is_file()}


def unstick() -> None:
    """A step has waited too long: say what was on screen, keep a screenshot, close the modal dialog if any."""
    modal = QApplication.activeModalWidget()
    record["errors"].append(f"a step ran over {STEP_SECONDS:.0f} s; modal widget: "
                            f"{type(modal).__name__ if modal else None} {modal.windowTitle() if modal else ''}")
    QgsApplication.primaryScreen().grabWindow(0).save(str(OUT / "stuck.png"))
    (OUT / "session.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    if modal is not None:
        modal.reject()


class Driver:
    """Advances the plan on a timer. The installer opens modal dialogs that spin their own event loops, where
    this timer fires too: ``busy`` keeps a step from starting while another is still inside one."""

    def __init__(self) -> None:
        self.steps, self.waiting, self.busy = plan(), (lambda: True), False
        self.started = time.monotonic()
        self.timer = QTimer()
        self.timer.timeout.connect(self.tick)
        self.timer.start(100)

    def tick(self) -> None:
        close_message_boxes()
        if time.monotonic() - self.started > STEP_SECONDS:
            unstick()
            if not self.busy:
                return self.finish()
            self.started = time.monotonic()
        if self.busy:
            return None
        self.busy = True
        try:
            if self.waiting():
                self.waiting = next(self.steps)
                self.started = time.monotonic()
        except StopIteration:
            self.finish()
        except Exception:  # noqa: BLE001 - recorded for the test, which fails on it
            record["errors"].append(traceback.format_exc())
            self.finish()
        finally:
            self.busy = False
        return None

    def finish(self) -> None:
        self.timer.stop()
        QgsApplication.messageLog().messageReceived.disconnect(log_message)
        record["done"] = True
        (OUT / "session.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
        QgsProject.instance().clear()
        QgsProject.instance().setDirty(False)
        QTimer.singleShot(200, iface.actionExit().trigger)


builtins._geoclip_installer_driver = Driver()  # noqa: SLF001 - outlives this script's namespace
