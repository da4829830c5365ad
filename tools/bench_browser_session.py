"""One GeoCLIP dock in a fresh headless QGIS, for ``tools/bench_browser.py``'s child process.

``BenchIface`` is the part of QGIS's interface the plugin and Processing's result loader use: a map canvas, a
layer panel and the bridge that keeps the canvas showing the panel's visible layers. ``DockSession`` loads the
plugin, runs the "Geolocate photos" tab on a folder and times what follows the algorithm's end.
"""

from __future__ import annotations

import gc
import statistics
import time
from pathlib import Path

import psutil

from tools.bench_rss import _peak_rss_mb


class BenchIface:
    """A map canvas and a layer panel in a main window; the plugin's toolbar and menu calls do nothing."""

    def __init__(self, size: tuple[int, int]) -> None:
        from qgis.core import QgsLayerTreeModel, QgsProject
        from qgis.gui import QgsLayerTreeMapCanvasBridge, QgsLayerTreeView, QgsMapCanvas, QgsMessageBar
        from qgis.PyQt.QtWidgets import QMainWindow

        root = QgsProject.instance().layerTreeRoot()
        self.window = QMainWindow()
        self.window.resize(*size)
        self.canvas = QgsMapCanvas(self.window)
        self.window.setCentralWidget(self.canvas)
        self.view = QgsLayerTreeView()
        self.view.setModel(QgsLayerTreeModel(root, self.view))
        self.bridge = QgsLayerTreeMapCanvasBridge(root, self.canvas)
        self.bar = QgsMessageBar()

    def mapCanvas(self):  # noqa: N802 - QgisInterface's names
        return self.canvas

    def mainWindow(self):  # noqa: N802
        return self.window

    def layerTreeView(self):  # noqa: N802
        return self.view

    def messageBar(self):  # noqa: N802
        return self.bar

    def setActiveLayer(self, layer) -> bool:  # noqa: N802
        return True

    def addDockWidget(self, area, dock) -> None:  # noqa: N802
        self.window.addDockWidget(area, dock)

    def removeDockWidget(self, dock) -> None:  # noqa: N802
        self.window.removeDockWidget(dock)

    def addToolBarIcon(self, action) -> None:  # noqa: N802
        pass

    def removeToolBarIcon(self, action) -> None:  # noqa: N802
        pass

    def addPluginToMenu(self, menu, action) -> None:  # noqa: N802
        pass

    def removePluginMenu(self, menu, action) -> None:  # noqa: N802
        pass


class DockSession:
    """QGIS with the plugin loaded and its dock built; settings kept in ``work`` (never the user's profile)."""

    def __init__(self, work: Path, size: tuple[int, int] = (1366, 768)) -> None:
        import sys

        import qgis.utils
        from qgis.core import QgsApplication

        self.work = work
        self.app = QgsApplication([], True, str(work / "profile"))
        self.app.initQgis()
        self.iface = BenchIface(size)
        qgis.utils.iface = self.iface  # Processing's result loader reads it when first imported
        sys.path.append(str(Path(QgsApplication.pkgDataPath()) / "python" / "plugins"))
        from processing.core.Processing import Processing

        Processing.initialize()
        import geoclip_qgis

        self.plugin = geoclip_qgis.classFactory(self.iface)
        self.plugin.initGui()
        self.dock = self.plugin.dock
        self.marks: dict[str, float] = {}

    def _wait(self, predicate, timeout: float = 3600.0) -> None:
        from qgis.core import QgsApplication

        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError("the run did not finish in time")
            QgsApplication.processEvents()
            time.sleep(0.005)

    def run(self, photos: Path) -> dict:
        """Geolocate ``photos`` from the dock; the times from the algorithm's end to the results shown."""
        from qgis.core import QgsProject

        controls = self.dock.geolocate_tab.controls
        executed = controls._executed  # noqa: SLF001 - timed where the task hands its results to the dock

        def timed(success, results):
            self.marks["algorithm_end"] = time.perf_counter()
            executed(success, results)
            self.marks["loaded"] = time.perf_counter()

        controls._executed = timed  # noqa: SLF001 - the task connects to it when it starts
        tab = self.dock.geolocate_tab
        tab.files.setFilePath("")
        tab.folder.setFilePath(str(photos))
        tab.output.setFilePath(str(self.work / "runs"))
        started = time.perf_counter()
        tab.run()
        browser = self.dock.results_tab
        n = len(list(photos.glob("*.jpg")))
        self._wait(lambda: "loaded" in self.marks)
        self._wait(lambda: browser.index is not None and browser.proxy.rowCount() == n)
        self.dock.tabs.setCurrentIndex(self.dock.index_of(browser))
        browser.table.resize(600, 400)
        browser.table.viewport().grab()  # the rows a view would draw, thumbnails included
        shown = time.perf_counter()
        if controls.results.get("N_PHOTOS") != n:
            raise RuntimeError(f"the run geolocated {controls.results.get('N_PHOTOS')} of {n} photos:\n"
                               + controls.log.toPlainText()[-2000:])
        layers = list(QgsProject.instance().mapLayers().values())
        gc.collect()
        return {"n": n, "algorithm_s": self.marks["algorithm_end"] - started,
                "load_s": self.marks["loaded"] - self.marks["algorithm_end"],
                "list_s": shown - self.marks["loaded"], "shown_s": shown - self.marks["algorithm_end"],
                "layers": len(layers), "layer_names": sorted(layer.name() for layer in layers),
                "rasters_written": len(controls.results.get("RASTERS", [])),
                "rss_mb": psutil.Process().memory_info().rss / 2**20, "peak_mb": _peak_rss_mb()}

    def switch_photos(self, count: int) -> dict:
        """Select ``count`` rows spread over the browser's list, one after the other; each switch's time."""
        browser = self.dock.results_tab
        rows = browser.proxy.rowCount()
        times = []
        for i in range(count):
            index = browser.proxy.index((i * rows) // count + rows // (2 * count), 0)
            start = time.perf_counter()
            browser.table.setCurrentIndex(index)
            times.append(time.perf_counter() - start)
        return {"switch_median_s": statistics.median(times), "switch_max_s": max(times), "switch_s": times}

    def render(self, size: tuple[int, int]) -> float:
        """Draw the map as the canvas shows it (the layer panel's visible layers, the canvas's extent and CRS) at
        ``size``; seconds."""
        from qgis.core import QgsMapRendererParallelJob, QgsMapSettings, QgsProject
        from qgis.PyQt.QtCore import QSize

        canvas = self.iface.canvas
        settings = QgsMapSettings()
        settings.setLayers([node.layer() for node in QgsProject.instance().layerTreeRoot().findLayers()
                            if node.isVisible()])
        settings.setDestinationCrs(canvas.mapSettings().destinationCrs())
        settings.setOutputSize(QSize(*size))
        settings.setExtent(canvas.extent())
        start = time.perf_counter()
        job = QgsMapRendererParallelJob(settings)
        job.start()
        job.waitForFinished()
        self.layers_drawn = len(settings.layers())
        return time.perf_counter() - start

    def render_everything(self, size: tuple[int, int]) -> float:
        """The browser's *Show all*, the map on the whole world, drawn; seconds."""
        from qgis.core import QgsRectangle

        self.dock.results_tab.show_everything()
        self.iface.canvas.setExtent(QgsRectangle(-180, -90, 180, 90))
        return self.render(size)

    def close(self) -> None:
        from qgis.core import QgsProject

        self.iface.canvas.waitWhileRendering()
        self.plugin.unload()
        QgsProject.instance().removeAllMapLayers()
        self.app.exitQgis()
