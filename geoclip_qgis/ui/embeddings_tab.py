"""Dock tab "GPS embeddings": a form over ``geoclip:gpsembeddings`` (no logic of its own).

Run builds the same parameters the toolbox would and hands them to :class:`RunControls`, which runs
the registered algorithm in a ``QgsProcessingAlgRunnerTask``; GeoPackage and Shapefile results are
added to the project on the main thread by Processing's own result handler.
"""

from __future__ import annotations

from pathlib import Path

from qgis.gui import QgsFileWidget
from qgis.PyQt.QtWidgets import QCheckBox, QComboBox, QLabel, QSpinBox, QWidget

from model_utils.constants import EMBED_DIM

from .. import settings
from ..compat import LAYER_FILTER_HAS_GEOMETRY
from ..guard import guarded
from ..i18n import tr
from ..processing import definitions as d
from ..processing.io.embedding_writers import FORMATS, KNOWN_EXTENSIONS, FieldLayout
from .form_tab import FormTab

ALGORITHM = "geoclip:gpsembeddings"
# the dock's short names of the algorithm's LAYOUT choices (its LAYOUT_LABELS are the long ones)
LAYOUT_NAMES = {FieldLayout.FIELDS: "One number field per value",
                FieldLayout.PACKED: "One binary field (compact, faster)"}


def narrow_combo() -> QComboBox:
    """A combo box as wide as the dock allows: its long choices are read in full in the open list, so the tab
    needs no horizontal scrollbar in a dock a third of a laptop screen wide."""
    combo = QComboBox()
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(14)
    return combo


class EmbeddingsTab(FormTab):
    """Pick a layer and options, press Export; the new layer appears in the project."""

    ALGORITHM = ALGORITHM

    def __init__(self, iface, parent: QWidget | None = None) -> None:
        super().__init__(iface, parent)
        intro = QLabel(tr("Adds GeoCLIP's 512-d GPS embedding of each feature's location as attributes, "
                       "for classifiers and similarity search. Works offline (no image model)."))
        intro.setWordWrap(True)
        self.column.addWidget(intro)

        form = self.add_box(tr("Input"))
        self.add_layer_picker(form, tr("Layer"), LAYER_FILTER_HAS_GEOMETRY,
                              tr("Any point, line or polygon layer, in any CRS. Lines use their centroid, "
                                 "polygons a point on their surface; NULL geometries are skipped and counted."),
                              tr("Export only the features selected in the layer"), settings.EMBEDDINGS_SELECTED_ONLY)
        form.addRow("", self.selected_only)

        form = self.add_box(tr("Embeddings"))
        self.normalize = QCheckBox(tr("L2-normalise (unit length)"))
        self.normalize.setChecked(settings.EMBEDDINGS_NORMALIZE.read())
        self.normalize.setToolTip(tr("Off: GeoCLIP's raw embedding, as the reference implementation outputs it. "
                                  "On: each embedding scaled to length 1 (cosine similarity = dot product)."))
        self.pca = QSpinBox()
        self.pca.setRange(0, EMBED_DIM)
        self.pca.setSpecialValueText(tr("off (all {n} values)").format(n=EMBED_DIM))
        self.pca.setValue(settings.EMBEDDINGS_PCA.read())
        self.pca.setToolTip(tr("Reduce to N principal components (pc000…). The PCA fit is saved beside the output "
                            "as <output>.pca.npz so new points can be projected the same way. Shapefiles: "
                            "at most ~250 keeps every DBF reader happy."))
        self.format = narrow_combo()
        for fmt in FORMATS:
            self.format.addItem(fmt.label, fmt.key)
        self.format.setCurrentIndex(min(max(settings.EMBEDDINGS_FORMAT.read(), 0), len(FORMATS) - 1))
        self.format.setToolTip(tr("GeoPackage: exact values, no field limits. Shapefile: names e000…e511, but some "
                               "DBF readers stop at 255 fields. CSV: lat/lon columns. NumPy .npz / Parquet: an "
                               "id column (src_fid) to join back; .npz has no other attributes."))
        self.packed = narrow_combo()
        for mode in FieldLayout:  # item i is FieldLayout(i), as in the algorithm's enum parameter
            self.packed.addItem(LAYOUT_NAMES[mode], int(mode))
        saved = FieldLayout.PACKED if settings.EMBEDDINGS_PACKED.read() else FieldLayout.FIELDS
        self.packed.setCurrentIndex(self.packed.findData(int(saved)))
        self.packed.setToolTip(tr("Number fields (e000…e511) work everywhere in QGIS: attribute table, expressions, "
                               "styling. GeoPackage only: one binary field 'embedding' holding the values as "
                               "little-endian float32, half the file size and about twice as fast to write; "
                               "read it with numpy.frombuffer(blob, '<f4')."))
        self.output = QgsFileWidget()
        self.output.setStorageMode(QgsFileWidget.StorageMode.SaveFile)
        self.output.setFilePath(settings.EMBEDDINGS_OUTPUT.read())
        self.output.setToolTip(tr("The file to write. Its extension follows the format; an existing file is "
                               "never overwritten (choose a new name)."))
        form.addRow("", self.normalize)
        form.addRow(tr("PCA components"), self.pca)
        form.addRow(tr("Format"), self.format)
        form.addRow(tr("Embedding fields"), self.packed)
        form.addRow(tr("Output file"), self.output)
        self.format.currentIndexChanged.connect(self._format_changed)
        self._format_changed()

        controls = self.add_controls(tr("Export embeddings"),
                                     tr("Export in the background; QGIS stays usable while it runs"))
        controls.progress.setToolTip(tr("Share of the layer's features done"))
        controls.log.setToolTip(tr("What the export did: skipped features, renamed fields, warnings"))
        controls.log.setPlaceholderText(tr("Messages appear here: features skipped, fields renamed, warnings."))

    def layout_choice(self) -> FieldLayout:
        """The field layout the form asks for: packed only where the format allows it (GeoPackage)."""
        if self.packed.isEnabled() and FieldLayout(self.packed.currentData()) is FieldLayout.PACKED:
            return FieldLayout.PACKED
        return FieldLayout.FIELDS

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
        return {
            d.INPUT: self.layer_source(),
            d.NORMALIZE: self.normalize.isChecked(),
            d.PCA_COMPONENTS: self.pca.value(),
            d.FORMAT: self.format.currentIndex(),
            d.LAYOUT: int(self.layout_choice()),
            d.OUTPUT: self.output.filePath().strip(),
        }

    def remember(self) -> None:
        settings.EMBEDDINGS_SELECTED_ONLY.write(self.selected_only.isChecked())
        settings.EMBEDDINGS_NORMALIZE.write(self.normalize.isChecked())
        settings.EMBEDDINGS_PCA.write(self.pca.value())
        settings.EMBEDDINGS_FORMAT.write(self.format.currentIndex())
        settings.EMBEDDINGS_PACKED.write(FieldLayout(self.packed.currentData()) is FieldLayout.PACKED)
        settings.EMBEDDINGS_OUTPUT.write(self.output.filePath())

    def refusal(self) -> str | None:
        if self.layer.currentLayer() is None:
            return tr("ERROR: choose a layer first.")
        if not self.output.filePath().strip():
            return tr("ERROR: choose an output file.")
        return None
