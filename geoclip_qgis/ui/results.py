"""The "Results" group shared by the geolocation tabs (photos, text): top-k, raster grid, output folder."""

from __future__ import annotations

from qgis.core import QgsCoordinateReferenceSystem, QgsRectangle
from qgis.gui import QgsExtentWidget
from qgis.PyQt.QtWidgets import QCheckBox, QDoubleSpinBox, QFormLayout, QGroupBox, QLineEdit, QSpinBox, QWidget

from ..i18n import tr
from ..processing import definitions as d
from ..settings import ResultsSettings
from .form_tab import folder_widget


class ResultsOptions(QGroupBox):
    """Options of the probability rasters and top-k points; remembered in ``saved``."""

    def __init__(self, iface, saved: ResultsSettings, noun: str, parent: QWidget | None = None) -> None:
        super().__init__(tr("Results"), parent)
        self.saved = saved
        form = QFormLayout(self)
        self.top_k = QSpinBox()
        self.top_k.setRange(1, d.MAX_TOP_K)
        self.top_k.setValue(saved.top_k.read())
        self.top_k.setToolTip(
            tr("How many of GeoCLIP's best guesses to keep per {noun} (points layer)").format(noun=noun))
        self.cell = QDoubleSpinBox()
        self.cell.setDecimals(3)
        self.cell.setRange(0.001, 10.0)
        self.cell.setSingleStep(0.05)
        self.cell.setSuffix(tr(" °"))
        self.cell.setValue(saved.cell.read())
        self.cell.setToolTip(tr("Raster cell size in degrees (0.25° ≈ 28 km at the equator)"))
        self.bandwidth = QDoubleSpinBox()
        self.bandwidth.setRange(0.0, 5000.0)
        self.bandwidth.setSuffix(tr(" km"))
        self.bandwidth.setSpecialValueText(tr("auto"))  # shown at 0: the algorithm picks (50 km, or the grid spacing)
        self.bandwidth.setValue(saved.bandwidth.read())
        self.bandwidth.setToolTip(tr("How far each gallery point's probability is spread (Gaussian std. dev.). "
                                     "auto: 50 km over GeoCLIP's worldwide gallery, the grid spacing over a "
                                     "regional gallery."))
        self.extent = QgsExtentWidget()
        self.extent.setToolTip(tr("Raster extent: empty = whole world; or the map canvas / a layer's extent"))
        self.extent.setNullValueAllowed(True, tr("Whole world"))
        self.extent.clear()
        if iface is not None and iface.mapCanvas() is not None:
            self.extent.setMapCanvas(iface.mapCanvas())
        self.on_land = QCheckBox(tr("Probability on land only"))
        self.on_land.setChecked(saved.on_land.read())
        self.on_land.setToolTip(tr("Each gallery point's probability is spread over land cells only (GSHHG "
                                   "shoreline, lakes as water): coastal answers and their credible regions stay on "
                                   "land. Untick for photos taken from ships or offshore."))
        self.density = QCheckBox(tr("Density per km²"))
        self.density.setToolTip(tr("Write probability density per km² instead of mass per cell (mass per cell "
                                   "sums to 1 over the world; density divides it by the cell's area)"))
        self.regional = QCheckBox(tr("Regional gallery (city scale)"))
        self.regional.setChecked(saved.regional.read())
        self.regional.setToolTip(tr("Zoom to city scale inside the extent: rank against a dense grid of points over "
                                    "the extent (every 'cell size' degrees) "
                                    "instead of GeoCLIP's 100K worldwide gallery: zoom the map to a city, set the "
                                    "extent to the map canvas and run again. Needs an extent."))
        self.levels = QLineEdit(saved.levels.read())
        self.levels.setPlaceholderText(tr("none"))
        self.levels.setToolTip(tr("Credible regions: per {noun}, the smallest area holding that share of its "
                                  "probability, drawn as outlines (the widest dashed). Levels between 0 and 1 "
                                  "(or 50%, 90%), separated by commas; empty: none.").format(noun=noun))
        self.output = folder_widget(saved.output.read(), tr(
            "Each run writes a new subfolder here; earlier results are never overwritten"))
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
            d.TOP_K: self.top_k.value(),
            d.CELL_SIZE: self.cell.value(),
            d.BANDWIDTH_KM: self.bandwidth.value() or None,  # 0 is "auto"
            d.DENSITY: self.density.isChecked(),
            d.ON_LAND: self.on_land.isChecked(),
            d.GALLERY: int(d.GalleryMode.REGIONAL if self.regional.isChecked() else d.GalleryMode.WORLD),
            d.CREDIBLE_LEVELS: self.levels.text().strip(),
            d.OUTPUT_FOLDER: self.output.filePath(),
        }
        if not self.extent.isValid() or self.extent.outputExtent().isNull():
            params[d.EXTENT] = None
        else:
            rect: QgsRectangle = self.extent.outputExtent()
            crs: QgsCoordinateReferenceSystem = self.extent.outputCrs()
            params[d.EXTENT] = f"{rect.xMinimum()},{rect.xMaximum()},{rect.yMinimum()},{rect.yMaximum()} " \
                               f"[{crs.authid()}]"
        return params

    def remember(self) -> None:
        self.saved.top_k.write(self.top_k.value())
        self.saved.cell.write(self.cell.value())
        self.saved.bandwidth.write(self.bandwidth.value())
        self.saved.regional.write(self.regional.isChecked())
        self.saved.on_land.write(self.on_land.isChecked())
        self.saved.levels.write(self.levels.text())
        self.saved.output.write(self.output.filePath())
