"""The Geolocate tab's "Reference photos" choice: none, a folder, or a point layer of photos.

A folder is either a collection (it holds the index that 'Build reference collection' or the batch job's
embed-photos writes): geolocation uses it as it is; or a folder of geotagged photos: the collection is built
(or brought up to date: only new photos are embedded) first, under the output folder. A layer is always built
first, the same way. Nothing is computed here: the choice becomes the parameters of the two algorithms.
"""

from __future__ import annotations

import hashlib
from enum import IntEnum
from pathlib import Path

from qgis.gui import QgsFieldComboBox, QgsMapLayerComboBox
from qgis.PyQt.QtWidgets import QComboBox, QFormLayout, QStackedWidget, QWidget

from .. import settings
from ..compat import LAYER_FILTER_POINT
from ..i18n import tr
from ..paths import file_safe
from ..processing import definitions as d
from .form_tab import folder_widget

BUILD_ALGORITHM = "geoclip:buildreferences"
INDEX_FILE = "reference_index.safetensors"  # model_utils.reference.index.INDEX_FILE (no model_utils at plugin load)
COLLECTIONS = "reference_collections"  # under the output folder: the collections the dock builds


class ReferenceMode(IntEnum):
    NONE = 0
    FOLDER = 1
    LAYER = 2


class ReferenceChoice:
    """The widgets of the choice, added as two rows of ``form``; ``plan`` turns them into parameters."""

    def __init__(self, form: QFormLayout) -> None:
        self.mode = QComboBox()
        self.mode.addItems([tr("None"), tr("Folder"), tr("Layer")])
        self.mode.setToolTip(tr("Your own geotagged photos of the area: each photo is matched against them, and "
                                "GeoCLIP's answer is fused with the positions of the most similar ones (a photo "
                                "unlike all of them keeps GeoCLIP's answer)"))
        self.folder = folder_widget(settings.GEOLOCATE_REFERENCE_FOLDER.read(), tr(
            "A reference collection folder (from 'Build reference collection'), or a folder of photos with EXIF "
            "GPS: its collection is built first (later runs embed only new photos)"))
        self.layer = QgsMapLayerComboBox()
        self.layer.setFilters(LAYER_FILTER_POINT)
        self.layer.setToolTip(tr("A point layer of geotagged photos (positions from the points); its collection is "
                                 "built first"))
        self.path_field = QgsFieldComboBox()
        self.path_field.setAllowEmptyFieldName(True)
        self.path_field.setToolTip(tr("Field holding each reference photo's path (empty: guess 'photo', 'path', …)"))
        self.layer.layerChanged.connect(self.path_field.setLayer)
        self.path_field.setLayer(self.layer.currentLayer())
        self.path_field.setField(settings.GEOLOCATE_REFERENCE_FIELD.read())
        layer_row = QWidget()
        row = QFormLayout(layer_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addRow(tr("Layer"), self.layer)
        row.addRow(tr("Path field"), self.path_field)
        self.stack = QStackedWidget()
        for page in (QWidget(), self.folder, layer_row):
            self.stack.addWidget(page)
        self.mode.currentIndexChanged.connect(self.stack.setCurrentIndex)
        self.mode.setCurrentIndex(min(max(settings.GEOLOCATE_REFERENCE_MODE.read(), 0), len(ReferenceMode) - 1))
        self.stack.setCurrentIndex(self.mode.currentIndex())
        form.addRow(tr("Reference photos"), self.mode)
        form.addRow("", self.stack)

    @property
    def current(self) -> ReferenceMode:
        return ReferenceMode(self.mode.currentIndex())

    def refusal(self) -> str | None:
        """Why the choice cannot run (a line for the log), or None."""
        if self.current == ReferenceMode.FOLDER:
            folder = self.folder.filePath().strip()
            if not folder:
                return tr("Reference photos: choose a folder (a reference collection, or photos with EXIF GPS), or "
                          "choose None.")
            if not Path(folder).is_dir():
                return tr("Reference photos: the folder '{folder}' does not exist. Choose another one, or choose "
                          "None.").format(folder=folder)
        if self.current == ReferenceMode.LAYER and self.layer.currentLayer() is None:
            return tr("Reference photos: choose a point layer of photos, or choose None.")
        return None

    def existing_collection(self) -> str | None:
        """The folder, when it already is a collection (geolocation uses it as it is)."""
        folder = self.folder.filePath().strip()
        if self.current == ReferenceMode.FOLDER and folder and (Path(folder) / INDEX_FILE).is_file():
            return folder
        return None

    def build_parameters(self, output_root: str) -> dict | None:
        """The build algorithm's parameters when the collection must be built first; None otherwise."""
        if self.current == ReferenceMode.NONE or self.existing_collection() is not None:
            return None
        if self.current == ReferenceMode.FOLDER:
            folder = self.folder.filePath().strip()
            return {d.FOLDER: folder, d.RECURSIVE: True,
                    d.COLLECTION: collection_folder(output_root, Path(folder).name, str(Path(folder).resolve()))}
        layer = self.layer.currentLayer()
        return {d.PHOTO_LAYER: layer.id(), d.PATH_FIELD: self.path_field.currentField() or None,
                d.COLLECTION: collection_folder(output_root, layer.name(), layer.source())}

    def remember(self) -> None:
        settings.GEOLOCATE_REFERENCE_MODE.write(int(self.current))
        settings.GEOLOCATE_REFERENCE_FOLDER.write(self.folder.filePath())
        settings.GEOLOCATE_REFERENCE_FIELD.write(self.path_field.currentField())


def collection_folder(output_root: str, name: str, key: str) -> str:
    """Where the dock builds the collection of a photo folder or layer: under the output folder, named after it
    and a hash of where it is, so the same photos go back to the same collection (and only new ones are
    embedded)."""
    safe = file_safe(name[:40], "photos")
    tag = hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]
    return str(Path(output_root).expanduser() / COLLECTIONS / f"{safe}-{tag}")
