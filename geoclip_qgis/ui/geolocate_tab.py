"""Dock tab "Geolocate photos": a form over ``geoclip:geolocatephotos`` (no logic of its own)."""

from __future__ import annotations

from qgis.core import QgsSettings
from qgis.gui import QgsFieldComboBox, QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QGroupBox,
    QVBoxLayout,
    QWidget,
)

from ..compat import LAYER_FILTER_VECTOR
from ..guard import guarded
from ..i18n import tr
from .results import ResultsOptions
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

        photos = QGroupBox(tr("Photos"))
        form = QFormLayout(photos)
        self.files = QgsFileWidget()
        self.files.setStorageMode(QgsFileWidget.StorageMode.GetMultipleFiles)
        self.files.setFilter("Photos (*.jpg *.jpeg *.png *.tif *.tiff *.webp *.bmp *.gif *.JPG *.JPEG *.PNG)")
        self.files.setToolTip(tr("One or more photo files"))
        self.folder = QgsFileWidget()
        self.folder.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.folder.setFilePath(s.value(KEY + "folder", "", type=str))
        self.folder.setToolTip(tr("A folder of photos (jpg, png, tif, webp, …)"))
        self.recursive = QCheckBox(tr("Include subfolders"))
        self.recursive.setChecked(s.value(KEY + "recursive", False, type=bool))
        self.recursive.setToolTip(tr("Also geolocate photos in the folder's subfolders"))
        self.layer = QgsMapLayerComboBox()
        self.layer.setFilters(LAYER_FILTER_VECTOR)
        self.layer.setAllowEmptyLayer(True)
        self.layer.setLayer(None)
        self.layer.setToolTip(tr("A layer with a field of photo paths, e.g. from 'Import geotagged photos'"))
        self.path_field = QgsFieldComboBox()
        self.path_field.setAllowEmptyFieldName(True)
        self.path_field.setToolTip(tr("Field holding each photo's path (empty: guess 'photo', 'path', …)"))
        self.layer.layerChanged.connect(self.path_field.setLayer)
        self.selected_only = QCheckBox(tr("Selected features only"))
        self.selected_only.setToolTip(tr("Only the photos of the features selected in the layer"))
        form.addRow(tr("Files"), self.files)
        form.addRow(tr("Folder"), self.folder)
        form.addRow("", self.recursive)
        form.addRow(tr("Photo layer"), self.layer)
        form.addRow(tr("Path field"), self.path_field)
        form.addRow("", self.selected_only)
        layout.addWidget(photos)

        self.results = ResultsOptions(iface, KEY, tr("photo"))
        for name in ("top_k", "cell", "bandwidth", "extent", "density", "output"):
            setattr(self, name, getattr(self.results, name))  # the form's widgets, by name
        layout.addWidget(self.results)

        self.controls = RunControls(ALGORITHM, tr("Geolocate"))
        self.controls.run_button.clicked.connect(self.run)
        layout.addWidget(self.controls, 1)

    def parameters(self) -> dict:
        """The toolbox parameters this form stands for."""
        params = {
            "PHOTOS": QgsFileWidget.splitFilePaths(self.files.filePath()) if self.files.filePath() else [],
            "FOLDER": self.folder.filePath() or None,
            "RECURSIVE": self.recursive.isChecked(),
            **self.results.parameters(),
        }
        layer = self.layer.currentLayer()
        if layer is not None:
            from qgis.core import QgsProcessingFeatureSourceDefinition

            params["PHOTO_LAYER"] = QgsProcessingFeatureSourceDefinition(layer.id(), self.selected_only.isChecked())
            params["PATH_FIELD"] = self.path_field.currentField() or None
        return params

    def remember(self) -> None:
        s = QgsSettings()
        s.setValue(KEY + "folder", self.folder.filePath())
        s.setValue(KEY + "recursive", self.recursive.isChecked())
        self.results.remember()

    @guarded
    def run(self) -> None:
        self.remember()
        self.controls.start(self.parameters())

    def cancel_running(self) -> None:
        self.controls.cancel()
