"""The "Results" group shared by the geolocation tabs (photos, text): top-k, raster grid, output folder."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsCoordinateReferenceSystem, QgsRectangle, QgsSettings
from qgis.gui import QgsExtentWidget, QgsFileWidget
from qgis.PyQt.QtWidgets import QCheckBox, QDoubleSpinBox, QFormLayout, QGroupBox, QLineEdit, QSpinBox, QWidget

from ..i18n import tr
from ..processing.algorithms.geolocation import GalleryMode


class ResultsOptions(QGroupBox):
    """Options of the probability rasters and top-k points; remembered under ``key``."""

    def __init__(self, iface, key: str, noun: str, parent: QWidget | None = None) -> None:
        super().__init__("Results", parent)
        self.key = key
        s = QgsSettings()
        form = QFormLayout(self)
        self.top_k = QSpinBox()
        self.top_k.setRange(1, 1000)
        self.top_k.setValue(s.value(key + "top_k", 5, type=int))
        self.top_k.setToolTip(tr(f"How many of GeoCLIP's best guesses to keep per {noun} (points layer)"))
        self.cell = QDoubleSpinBox()
        self.cell.setDecimals(3)
        self.cell.setRange(0.001, 10.0)
        self.cell.setSingleStep(0.05)
        self.cell.setSuffix(tr(" °"))
        self.cell.setValue(s.value(key + "cell", 0.25, type=float))
        self.cell.setToolTip(tr("Raster cell size in degrees (0.25° ≈ 28 km at the equator)"))
        self.bandwidth = QDoubleSpinBox()
        self.bandwidth.setRange(0.0, 5000.0)
        self.bandwidth.setSuffix(tr(" km"))
        self.bandwidth.setSpecialValueText(tr("auto"))  # shown at 0: the algorithm picks (50 km, or the grid spacing)
        self.bandwidth.setValue(s.value(key + "bandwidth", 0.0, type=float))
        self.bandwidth.setToolTip(tr("How far each gallery point's probability is spread (Gaussian std. dev.). "
                                     "auto: 50 km over GeoCLIP's worldwide gallery, the grid spacing over a "
                                     "regional gallery."))
        self.extent = QgsExtentWidget()
        self.extent.setToolTip(tr("Raster extent: empty = whole world; or the map canvas / a layer's extent"))
        self.extent.setNullValueAllowed(True, tr("Whole world"))
        self.extent.clear()
        if iface is not None and iface.mapCanvas() is not None:
            self.extent.setMapCanvas(iface.mapCanvas())
        self.on_land = QCheckBox(tr("Probability on land only (untick for photos taken at sea)"))
        self.on_land.setChecked(s.value(key + "on_land", True, type=bool))
        self.on_land.setToolTip(tr("Each gallery point's probability is spread over land cells only (GSHHG "
                                   "shoreline, lakes as water): coastal answers and their credible regions stay on "
                                   "land. Untick for photos taken from ships or offshore."))
        self.density = QCheckBox(tr("Density per km² instead of mass per cell"))
        self.density.setToolTip(tr("Mass per cell sums to 1 over the world; density divides by cell area"))
        self.regional = QCheckBox(tr("Regional gallery: zoom to city scale inside the extent"))
        self.regional.setChecked(s.value(key + "regional", False, type=bool))
        self.regional.setToolTip(tr("Rank against a dense grid of points over the extent (every 'cell size' degrees) "
                                 "instead of GeoCLIP's 100K worldwide gallery: zoom the map to a city, set the "
                                 "extent to the map canvas and run again. Needs an extent."))
        self.levels = QLineEdit(s.value(key + "levels", "0.5, 0.9", type=str))
        self.levels.setPlaceholderText(tr("none"))
        self.levels.setToolTip(tr(f"Credible regions: per {noun}, the smallest area holding that share of its "
                                  "probability, drawn as outlines (the widest dashed). Levels between 0 and 1 "
                                  "(or 50%, 90%), separated by commas; empty: none."))
        self.output = QgsFileWidget()
        self.output.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.output.setFilePath(s.value(key + "output", str(Path.home() / "GeoCLIP"), type=str))
        self.output.setToolTip(tr("Each run writes a new subfolder here; earlier results are never overwritten"))
        form.addRow(tr("Top-k"), self.top_k)
        form.addRow(tr("Cell size"), self.cell)
        form.addRow(tr("Bandwidth"), self.bandwidth)
        form.addRow(tr("Extent"), self.extent)
        form.addRow("", self.on_land)
        form.addRow("", self.density)
        form.addRow("", self.regional)
        form.addRow(tr("Credible regions"), self.levels)
        form.addRow(tr("Output folder"), self.output)

    def parameters(self) -> dict:
        params = {
            "TOP_K": self.top_k.value(),
            "CELL_SIZE": self.cell.value(),
            "BANDWIDTH_KM": self.bandwidth.value() or None,  # 0 is "auto"
            "DENSITY": self.density.isChecked(),
            "ON_LAND": self.on_land.isChecked(),
            "GALLERY": int(GalleryMode.REGIONAL if self.regional.isChecked() else GalleryMode.WORLD),
            "CREDIBLE_LEVELS": self.levels.text().strip(),
            "OUTPUT_FOLDER": self.output.filePath(),
        }
        if not self.extent.isValid() or self.extent.outputExtent().isNull():
            params["EXTENT"] = None
        else:
            rect: QgsRectangle = self.extent.outputExtent()
            crs: QgsCoordinateReferenceSystem = self.extent.outputCrs()
            params["EXTENT"] = f"{rect.xMinimum()},{rect.xMaximum()},{rect.yMinimum()},{rect.yMaximum()} " \
                               f"[{crs.authid()}]"
        return params

    def remember(self) -> None:
        s = QgsSettings()
        s.setValue(self.key + "top_k", self.top_k.value())
        s.setValue(self.key + "cell", self.cell.value())
        s.setValue(self.key + "bandwidth", self.bandwidth.value())
        s.setValue(self.key + "regional", self.regional.isChecked())
        s.setValue(self.key + "on_land", self.on_land.isChecked())
        s.setValue(self.key + "levels", self.levels.text().strip())
        s.setValue(self.key + "output", self.output.filePath())
