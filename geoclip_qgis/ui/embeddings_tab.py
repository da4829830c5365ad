"""Dock tab "GPS embeddings": a form over ``geoclip:gpsembeddings`` (no logic of its own).

Run builds the same parameters the toolbox would and hands them to :class:`RunControls`, which runs
the registered algorithm in a ``QgsProcessingAlgRunnerTask``; GeoPackage and Shapefile results are
added to the project on the main thread by Processing's own result handler.
"""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsProcessingFeatureSourceDefinition, QgsSettings
from qgis.gui import QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from model_utils.constants import EMBED_DIM

from ..compat import LAYER_FILTER_HAS_GEOMETRY
from ..guard import guarded
from ..i18n import tr
from ..processing.io.embedding_writers import FORMATS, KNOWN_EXTENSIONS, FieldLayout
from .task_runner import RunControls

KEY = "geoclip/embeddings/"
ALGORITHM = "geoclip:gpsembeddings"


class EmbeddingsTab(QWidget):
    """Pick a layer and options, press Export; the new layer appears in the project."""

    def __init__(self, iface, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.iface = iface
        s = QgsSettings()
        layout = QVBoxLayout(self)
        intro = QLabel(tr("Adds GeoCLIP's 512-d GPS embedding of each feature's location as attributes, "
                       "for classifiers and similarity search. Works offline (no image model)."))
        intro.setWordWrap(True)
        layout.addWidget(intro)

        box = QGroupBox(tr("Input"))
        form = QFormLayout(box)
        self.layer = QgsMapLayerComboBox()
        self.layer.setFilters(LAYER_FILTER_HAS_GEOMETRY)
        self.layer.setToolTip(tr("Any point, line or polygon layer, in any CRS. Lines use their centroid, "
                              "polygons a point on their surface; NULL geometries are skipped and counted."))
        self.selected_only = QCheckBox(tr("Selected features only"))
        self.selected_only.setChecked(s.value(KEY + "selected_only", False, type=bool))
        self.selected_only.setToolTip(tr("Export only the features selected in the layer"))
        form.addRow(tr("Layer"), self.layer)
        form.addRow("", self.selected_only)
        layout.addWidget(box)

        box = QGroupBox(tr("Embeddings"))
        form = QFormLayout(box)
        self.normalize = QCheckBox(tr("L2-normalise (unit length)"))
        self.normalize.setChecked(s.value(KEY + "normalize", False, type=bool))
        self.normalize.setToolTip(tr("Off: GeoCLIP's raw embedding, as the reference implementation outputs it. "
                                  "On: each embedding scaled to length 1 (cosine similarity = dot product)."))
        self.pca = QSpinBox()
        self.pca.setRange(0, EMBED_DIM)
        self.pca.setSpecialValueText("off (all 512 values)")
        self.pca.setValue(s.value(KEY + "pca", 0, type=int))
        self.pca.setToolTip(tr("Reduce to N principal components (pc000…). The PCA fit is saved beside the output "
                            "as <output>.pca.npz so new points can be projected the same way. Shapefiles: "
                            "at most ~250 keeps every DBF reader happy."))
        self.format = QComboBox()
        for fmt in FORMATS:
            self.format.addItem(fmt.label, fmt.key)
        self.format.setCurrentIndex(min(max(s.value(KEY + "format", 0, type=int), 0), len(FORMATS) - 1))
        self.format.setToolTip(tr("GeoPackage: exact values, no field limits. Shapefile: names e000…e511, but some "
                               "DBF readers stop at 255 fields. CSV: lat/lon columns. NumPy .npz / Parquet: an "
                               "id column (src_fid) to join back; .npz has no other attributes."))
        self.packed = QComboBox()
        self.packed.addItems(["One number field per value", "One binary field (compact, faster)"])
        self.packed.setCurrentIndex(1 if s.value(KEY + "packed", False, type=bool) else 0)
        self.packed.setToolTip(tr("Number fields (e000…e511) work everywhere in QGIS: attribute table, expressions, "
                               "styling. GeoPackage only: one binary field 'embedding' holding the values as "
                               "little-endian float32, half the file size and about twice as fast to write; "
                               "read it with numpy.frombuffer(blob, '<f4')."))
        self.output = QgsFileWidget()
        self.output.setStorageMode(QgsFileWidget.StorageMode.SaveFile)
        self.output.setFilePath(s.value(KEY + "output", str(Path.home() / "GeoCLIP" / "gps_embeddings.gpkg"),
                                        type=str))
        self.output.setToolTip(tr("The file to write. Its extension follows the format; an existing file is "
                               "never overwritten (choose a new name)."))
        form.addRow("", self.normalize)
        form.addRow(tr("PCA components"), self.pca)
        form.addRow(tr("Format"), self.format)
        form.addRow(tr("Embedding fields"), self.packed)
        form.addRow(tr("Output file"), self.output)
        layout.addWidget(box)
        self.format.currentIndexChanged.connect(self._format_changed)
        self._format_changed()

        self.controls = RunControls(ALGORITHM, tr("Export embeddings"))
        self.controls.run_button.setToolTip(tr("Export in the background; QGIS stays usable while it runs"))
        self.controls.progress.setToolTip(tr("Share of the layer's features done"))
        self.controls.log.setToolTip(tr("What the export did: skipped features, renamed fields, warnings"))
        self.controls.log.setPlaceholderText(tr("Messages appear here: features skipped, fields renamed, warnings."))
        self.controls.run_button.clicked.connect(self.run)
        layout.addWidget(self.controls, 1)

    @guarded
    def _format_changed(self) -> None:
        """Keep the file name's extension and the save dialog's filter in step with the format."""
        fmt = FORMATS[self.format.currentIndex()]
        self.packed.setEnabled(fmt.key == "gpkg")
        self.output.setFilter(f"{fmt.label} (*{fmt.extension})")
        path = self.output.filePath().strip()
        if path:
            current = Path(path)
            if current.suffix.lower() != fmt.extension:
                stem = current.with_suffix("") if current.suffix.lower() in KNOWN_EXTENSIONS else current
                self.output.setFilePath(str(stem) + fmt.extension)

    def parameters(self) -> dict:
        """The toolbox parameters this form stands for."""
        layer = self.layer.currentLayer()
        return {
            "INPUT": QgsProcessingFeatureSourceDefinition(layer.id(), self.selected_only.isChecked())
            if layer is not None else None,
            "NORMALIZE": self.normalize.isChecked(),
            "PCA_COMPONENTS": self.pca.value(),
            "FORMAT": self.format.currentIndex(),
            "LAYOUT": int(FieldLayout.PACKED if self.packed.isEnabled()
                          and self.packed.currentIndex() == FieldLayout.PACKED else FieldLayout.FIELDS),
            "OUTPUT": self.output.filePath().strip(),
        }

    def remember(self) -> None:
        s = QgsSettings()
        s.setValue(KEY + "selected_only", self.selected_only.isChecked())
        s.setValue(KEY + "normalize", self.normalize.isChecked())
        s.setValue(KEY + "pca", self.pca.value())
        s.setValue(KEY + "format", self.format.currentIndex())
        s.setValue(KEY + "packed", self.packed.currentIndex() == 1)
        s.setValue(KEY + "output", self.output.filePath().strip())

    @guarded
    def run(self) -> None:
        if self.layer.currentLayer() is None:
            self.controls.append(tr("ERROR: choose a layer first."))
            return
        if not self.output.filePath().strip():
            self.controls.append(tr("ERROR: choose an output file."))
            return
        self.remember()
        self.controls.start(self.parameters())

    def cancel_running(self) -> None:
        self.controls.cancel()
