"""Dock tab "Geolocate photos": a form over ``geoclip:geolocatephotos`` (no logic of its own)."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsCoordinateReferenceSystem, QgsMapLayerProxyModel, QgsRectangle, QgsSettings
from qgis.gui import QgsExtentWidget, QgsFieldComboBox, QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from .task_runner import RunControls

KEY = "geoclip/geolocate/"
ALGORITHM = "geoclip:geolocatephotos"


class GeolocateTab(QWidget):
    """Pick photos and raster options, press Run; results appear as a layer group per run."""

    def __init__(self, iface, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.iface = iface
        s = QgsSettings()
        layout = QVBoxLayout(self)

        photos = QGroupBox("Photos")
        form = QFormLayout(photos)
        self.files = QgsFileWidget()
        self.files.setStorageMode(QgsFileWidget.StorageMode.GetMultipleFiles)
        self.files.setFilter("Photos (*.jpg *.jpeg *.png *.tif *.tiff *.webp *.bmp *.gif *.JPG *.JPEG *.PNG)")
        self.files.setToolTip("One or more photo files")
        self.folder = QgsFileWidget()
        self.folder.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.folder.setFilePath(s.value(KEY + "folder", "", type=str))
        self.folder.setToolTip("A folder of photos (jpg, png, tif, webp, …)")
        self.recursive = QCheckBox("Include subfolders")
        self.recursive.setChecked(s.value(KEY + "recursive", False, type=bool))
        self.recursive.setToolTip("Also geolocate photos in the folder's subfolders")
        self.layer = QgsMapLayerComboBox()
        self.layer.setFilters(QgsMapLayerProxyModel.Filter.VectorLayer)
        self.layer.setAllowEmptyLayer(True)
        self.layer.setLayer(None)
        self.layer.setToolTip("A layer with a field of photo paths, e.g. from 'Import geotagged photos'")
        self.path_field = QgsFieldComboBox()
        self.path_field.setAllowEmptyFieldName(True)
        self.path_field.setToolTip("Field holding each photo's path (empty: guess 'photo', 'path', …)")
        self.layer.layerChanged.connect(self.path_field.setLayer)
        self.selected_only = QCheckBox("Selected features only")
        self.selected_only.setToolTip("Only the photos of the features selected in the layer")
        form.addRow("Files", self.files)
        form.addRow("Folder", self.folder)
        form.addRow("", self.recursive)
        form.addRow("Photo layer", self.layer)
        form.addRow("Path field", self.path_field)
        form.addRow("", self.selected_only)
        layout.addWidget(photos)

        options = QGroupBox("Results")
        form = QFormLayout(options)
        self.top_k = QSpinBox()
        self.top_k.setRange(1, 1000)
        self.top_k.setValue(s.value(KEY + "top_k", 5, type=int))
        self.top_k.setToolTip("How many of GeoCLIP's best guesses to keep per photo (points layer)")
        self.cell = QDoubleSpinBox()
        self.cell.setDecimals(3)
        self.cell.setRange(0.001, 10.0)
        self.cell.setSingleStep(0.05)
        self.cell.setSuffix(" °")
        self.cell.setValue(s.value(KEY + "cell", 0.25, type=float))
        self.cell.setToolTip("Raster cell size in degrees (0.25° ≈ 28 km at the equator)")
        self.bandwidth = QDoubleSpinBox()
        self.bandwidth.setRange(0.0, 5000.0)
        self.bandwidth.setSuffix(" km")
        self.bandwidth.setValue(s.value(KEY + "bandwidth", 50.0, type=float))
        self.bandwidth.setToolTip("How far each gallery point's probability is spread (Gaussian std. dev.)")
        self.extent = QgsExtentWidget()
        self.extent.setToolTip("Raster extent: empty = whole world; or the map canvas / a layer's extent")
        self.extent.setNullValueAllowed(True, "Whole world")
        self.extent.clear()
        if iface is not None and iface.mapCanvas() is not None:
            self.extent.setMapCanvas(iface.mapCanvas())
        self.density = QCheckBox("Density per km² instead of mass per cell")
        self.density.setToolTip("Mass per cell sums to 1 over the world; density divides by cell area")
        self.output = QgsFileWidget()
        self.output.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.output.setFilePath(s.value(KEY + "output", str(Path.home() / "GeoCLIP"), type=str))
        self.output.setToolTip("Each run writes a new subfolder here; earlier results are never overwritten")
        form.addRow("Top-k", self.top_k)
        form.addRow("Cell size", self.cell)
        form.addRow("Bandwidth", self.bandwidth)
        form.addRow("Extent", self.extent)
        form.addRow("", self.density)
        form.addRow("Output folder", self.output)
        layout.addWidget(options)

        self.controls = RunControls(ALGORITHM, "Geolocate")
        self.controls.run_button.clicked.connect(self.run)
        layout.addWidget(self.controls, 1)

    def parameters(self) -> dict:
        """The toolbox parameters this form stands for."""
        params = {
            "PHOTOS": QgsFileWidget.splitFilePaths(self.files.filePath()) if self.files.filePath() else [],
            "FOLDER": self.folder.filePath() or None,
            "RECURSIVE": self.recursive.isChecked(),
            "TOP_K": self.top_k.value(),
            "CELL_SIZE": self.cell.value(),
            "BANDWIDTH_KM": self.bandwidth.value(),
            "DENSITY": self.density.isChecked(),
            "OUTPUT_FOLDER": self.output.filePath(),
        }
        layer = self.layer.currentLayer()
        if layer is not None:
            from qgis.core import QgsProcessingFeatureSourceDefinition

            params["PHOTO_LAYER"] = QgsProcessingFeatureSourceDefinition(layer.id(), self.selected_only.isChecked())
            params["PATH_FIELD"] = self.path_field.currentField() or None
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
        s.setValue(KEY + "folder", self.folder.filePath())
        s.setValue(KEY + "recursive", self.recursive.isChecked())
        s.setValue(KEY + "top_k", self.top_k.value())
        s.setValue(KEY + "cell", self.cell.value())
        s.setValue(KEY + "bandwidth", self.bandwidth.value())
        s.setValue(KEY + "output", self.output.filePath())

    def run(self) -> None:
        self.remember()
        self.controls.start(self.parameters())

    def cancel_running(self) -> None:
        self.controls.cancel()
