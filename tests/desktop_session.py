"""Runs inside the real QGIS desktop (``qgis --code desktop_session.py``), driven by test_desktop_smoke.

It does what a new user does with the dock: open it beside the Processing Toolbox, geolocate a
folder, run a text query, cancel a run, unload the plugin mid-run. It writes screenshots and a
JSON record of what it saw to ``$SMOKE_OUT``, then quits QGIS. The test reads the JSON and stderr.
No assertion here: a step that raises is recorded and ends the session.
"""

from __future__ import annotations

import builtins
import json
import os
import time
import traceback
from pathlib import Path

from qgis.core import QgsApplication, QgsColorRampLegendNode, QgsProject, QgsRasterLayer, QgsVectorLayer
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QDockWidget
from qgis.utils import iface, plugins, unloadPlugin

OUT = Path(os.environ["SMOKE_OUT"])
PHOTOS = os.environ["SMOKE_PHOTOS"]
MANY_PHOTOS = os.environ["SMOKE_MANY_PHOTOS"]
REFERENCES = os.environ["SMOKE_REFERENCES"]
STEP_TIMEOUT = 180.0
record: dict = {"steps": [], "messages": [], "errors": []}



def log_message(message, tag, level) -> None:
    record["messages"].append({"tag": tag, "level": int(level), "text": message[:2000]})


QgsApplication.messageLog().messageReceived.connect(log_message)


def screenshot(name: str) -> None:
    QgsApplication.processEvents()
    shot = QgsApplication.primaryScreen().grabWindow(0)
    shot.save(str(OUT / f"{name}.png"))
    record["steps"].append(f"screenshot {name}")


def layer_tree_state(group_name_prefix: str = "GeoCLIP ") -> list[dict]:
    """Per run group: its layers top to bottom, visibility, and each raster's legend range vs. its data."""
    root = QgsProject.instance().layerTreeRoot()
    model = iface.layerTreeView().layerTreeModel()
    groups = []
    for group in [g for g in root.children() if g.name().startswith(group_name_prefix)]:
        layers = []
        for node in group.findLayers():
            layer = node.layer()
            entry = {"name": layer.name(), "kind": "raster" if isinstance(layer, QgsRasterLayer) else
                     "vector" if isinstance(layer, QgsVectorLayer) else "other", "visible": node.isVisible()}
            if isinstance(layer, QgsRasterLayer):
                ramps = [n for n in model.layerLegendNodes(node) if isinstance(n, QgsColorRampLegendNode)]
                entry["legend_max"] = ramps[0].settings().maximumLabel() if ramps else None
                entry["data_max"] = f"{layer.dataProvider().bandStatistics(1).maximumValue:.3g}"
            layers.append(entry)
        groups.append({"name": group.name(), "expanded": group.isExpanded(),
                       "checked": group.itemVisibilityChecked(), "layers": layers})
    return groups


def rendered():
    """A condition: the map canvas finished drawing (rendering runs in the background)."""
    canvas = iface.mapCanvas()
    canvas.refresh()
    start = time.monotonic()
    return lambda: time.monotonic() - start > 0.5 and not canvas.isDrawing()


def box(rect) -> list[float]:
    return [rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum()]


def browse_three_photos(dock):
    """The Results tab after the run: three photos stepped through with the arrow key; after each, which raster
    layers are visible, the photo's raster and 90% region, and the map's extent (all in the map's CRS)."""
    from qgis.core import QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsRectangle
    from qgis.PyQt.QtCore import Qt
    from qgis.PyQt.QtTest import QTest

    browser = dock.results_tab
    dock.tabs.setCurrentIndex(dock.index_of(browser))
    yield lambda: browser.index is not None
    root = QgsProject.instance().layerTreeRoot()
    record["browser"] = {"rows": browser.proxy.rowCount(), "steps": [],
                         "bottom_layer": root.children()[-1].name(), "layers": len(QgsProject.instance().mapLayers()),
                         "rows_in_view": sum(browser.table.viewport().rect().contains(browser.table.visualRect(
                             browser.proxy.index(r, 0))) for r in range(browser.proxy.rowCount()))}
    browser.table.setFocus()
    canvas = iface.mapCanvas()
    for _ in range(3):
        QTest.keyClick(browser.table, Qt.Key.Key_Down)
        yield rendered()
        row = browser.current_row()
        to_map = QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:4326"),
                                        canvas.mapSettings().destinationCrs(), QgsProject.instance())
        record["browser"]["steps"].append({
            "photo": row.source, "raster": row.raster, "extent": box(canvas.extent()),
            "region": box(to_map.transformBoundingBox(QgsRectangle(*row.bbox))),
            "visible_rasters": [node.layer().source() for node in root.findLayers()
                                if isinstance(node.layer(), QgsRasterLayer) and node.isVisible()]})


def run_and_show(controls, key: str, shot: str):
    """Run a tab to its end; keep its log and the layer tree under ``key``, draw the map, take ``shot``."""
    controls.run_button.click()
    yield lambda: not controls.running
    record[f"{key}_log"] = controls.log.toPlainText()
    record[f"tree_after_{key}"] = layer_tree_state()
    yield rendered()
    screenshot(shot)


def plan():
    """The session, as steps; each ``yield`` is a condition to wait for before the next step."""
    main = iface.mainWindow()
    plugin = plugins["geoclip_qgis"]
    dock = plugin.dock
    toolbox = main.findChild(QDockWidget, "ProcessingToolbox")
    if toolbox is not None:
        toolbox.show()
    main.move(0, 0)  # no window manager here to place it
    main.resize(1366, 768)
    yield lambda: True
    plugin.action.trigger()  # the toolbar button
    yield lambda: dock.isVisible()
    yield lambda: True
    record["window"] = {"height": main.height(), "width": main.width(),
                        "dock_width": dock.width(), "form_width": dock.form_width(),
                        "min_hint_height": main.minimumSizeHint().height(),
                        "dock_min_hint_height": dock.minimumSizeHint().height(),
                        "toolbox_visible": bool(toolbox and toolbox.isVisible()),
                        "tabified_with": [other.objectName() for other in main.tabifiedDockWidgets(dock)]}
    screenshot("01_dock_open")

    tab = dock.geolocate_tab
    tab.files.setFilePath("")
    tab.folder.setFilePath(PHOTOS)
    tab.output.setFilePath(str(OUT / "runs"))
    tab.cell.setValue(2.0)
    dock.tabs.setCurrentIndex(dock.index_of(tab))
    tab.controls.run_button.click()
    yield lambda: not tab.controls.running
    record["geolocate_log"] = tab.controls.log.toPlainText()
    record["geolocate_results"] = {k: str(v) for k, v in tab.controls.results.items()}
    record["tree_after_first_run"] = layer_tree_state()
    yield rendered()
    screenshot("02_geolocated")
    yield from browse_three_photos(dock)
    screenshot("03_photo_by_photo")

    text = dock.text_tab
    dock.tabs.setCurrentIndex(dock.index_of(text))
    text.queries.setPlainText("Pyramids of Giza")
    text.results.cell.setValue(2.0)
    text.results.output.setFilePath(str(OUT / "runs"))
    yield from run_and_show(text.controls, "text", "04_text_query")

    dock.tabs.setCurrentIndex(dock.index_of(tab))
    tab.references.mode.setCurrentIndex(1)  # Reference photos: Folder (of photos: built first, then used)
    tab.references.folder.setFilePath(REFERENCES)
    yield from run_and_show(tab.controls, "references", "04b_references")
    tab.references.mode.setCurrentIndex(0)
    dock.tabs.setCurrentIndex(dock.index_of(tab))  # a run ends on the Results tab

    tab.folder.setFilePath(MANY_PHOTOS)
    tab.controls.run_button.click()
    tab.controls.cancel_button.click()
    yield lambda: not tab.controls.running
    record["cancel_log"] = tab.controls.log.toPlainText()
    record["message_bar_after_cancel"] = [w.text() if hasattr(w, "text") else str(w)
                                          for w in iface.messageBar().items()]
    yield rendered()
    screenshot("05_canceled")

    tab.controls.run_button.click()
    record["running_before_unload"] = tab.controls.running
    unloadPlugin("geoclip_qgis")
    started = time.monotonic()
    yield lambda: QgsApplication.taskManager().countActiveTasks() == 0 or time.monotonic() - started > 60
    for _ in range(50):
        QgsApplication.processEvents()
    record["tasks_after_unload"] = QgsApplication.taskManager().countActiveTasks()
    yield rendered()
    screenshot("06_unloaded_mid_run")


class Driver:
    """Advances the plan on a timer, so QGIS's event loop keeps running between steps."""

    def __init__(self) -> None:
        self.steps = plan()
        self.waiting = lambda: True
        self.deadline = time.monotonic() + STEP_TIMEOUT
        self.timer = QTimer()
        self.timer.timeout.connect(self.tick)
        self.timer.start(100)

    def tick(self) -> None:
        try:
            if not self.waiting():
                if time.monotonic() > self.deadline:
                    raise TimeoutError(f"step waited more than {STEP_TIMEOUT:.0f} s")
                return
            self.waiting = next(self.steps)
            self.deadline = time.monotonic() + STEP_TIMEOUT
        except StopIteration:
            self.finish()
        except Exception:  # noqa: BLE001 - recorded for the test, which fails on it
            record["errors"].append(traceback.format_exc())
            self.finish()

    def finish(self) -> None:
        self.timer.stop()
        QgsApplication.messageLog().messageReceived.disconnect(log_message)  # no Python calls during exit
        record["done"] = True
        (OUT / "session.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
        # QGIS asks before quitting when layers live under the temp folder (as a CI checkout may): the
        # session's layers are recorded already, so the project is cleared and nothing can ask
        QgsProject.instance().clear()
        QgsProject.instance().setDirty(False)
        QTimer.singleShot(200, iface.actionExit().trigger)  # as a user quits: Project > Exit QGIS


builtins._geoclip_desktop_driver = Driver()  # noqa: SLF001 - outlives this script's namespace
