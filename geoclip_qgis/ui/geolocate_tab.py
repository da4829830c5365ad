"""Dock tab "Geolocate photos": a form over ``geoclip:geolocatephotos`` (no logic of its own)."""

from __future__ import annotations

from qgis.gui import QgsFieldComboBox, QgsFileWidget
from qgis.PyQt.QtWidgets import QCheckBox, QWidget

from .. import settings
from ..compat import LAYER_FILTER_VECTOR
from ..guard import guarded
from ..i18n import tr
from ..processing import definitions as d
from .form_tab import FormTab, folder_widget
from .reference_choice import BUILD_ALGORITHM, ReferenceChoice
from .results import ResultsOptions

ALGORITHM = "geoclip:geolocatephotos"


BASE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp", ".gif")


def installed_suffixes() -> tuple[str, ...]:
    """The photo suffixes model_utils can open here (HEIC only with pillow-heif, AVIF only with a Pillow that
    reads it); the common ones when Pillow itself is missing (the Setup tab says so)."""
    try:
        from model_utils.photos.images import IMAGE_EXTENSIONS
    except ImportError:
        return BASE_SUFFIXES
    return tuple(sorted(IMAGE_EXTENSIONS))


def photo_file_filter(suffixes) -> str:
    """A file dialog filter for these suffixes, in both cases (Linux file names are case-sensitive)."""
    patterns = " ".join(f"*{s} *{s.upper()}" for s in suffixes)
    photos, everything = tr("Photos"), tr("All files")  # outside the f-string: pylupdate5 extracts them here
    return f"{photos} ({patterns});;{everything} (*)"


class GeolocateTab(FormTab):
    """Pick photos and raster options, press Run; results appear as a layer group per run."""

    ALGORITHM = ALGORITHM

    def __init__(self, iface, parent: QWidget | None = None) -> None:
        super().__init__(iface, parent)
        form = self.add_box(tr("Photos"))
        self.files = QgsFileWidget()
        self.files.setStorageMode(QgsFileWidget.StorageMode.GetMultipleFiles)
        self.files.setFilter(photo_file_filter(BASE_SUFFIXES))  # the installed formats on first show
        self._formats_read = False
        self.files.setToolTip(tr("One or more photo files"))
        self.folder = folder_widget(settings.GEOLOCATE_FOLDER.read(), tr(
            "A folder of photos (jpg, png, tif, webp, heic, …); files that are not photos are counted by reason in "
            "the log"))
        self.recursive = QCheckBox(tr("Include subfolders"))
        self.recursive.setChecked(settings.GEOLOCATE_RECURSIVE.read())
        self.recursive.setToolTip(tr("Also geolocate photos in the folder's subfolders"))
        form.addRow(tr("Files"), self.files)
        form.addRow(tr("Folder"), self.folder)
        form.addRow("", self.recursive)
        self.add_layer_picker(form, tr("Photo layer"), LAYER_FILTER_VECTOR,
                              tr("A layer with a field of photo paths, e.g. from 'Import geotagged photos'"),
                              tr("Only the photos of the features selected in the layer"),
                              settings.GEOLOCATE_SELECTED_ONLY, optional=True)
        self.path_field = QgsFieldComboBox()
        self.path_field.setAllowEmptyFieldName(True)
        self.path_field.setToolTip(tr("Field holding each photo's path (empty: guess 'photo', 'path', …)"))
        self.layer.layerChanged.connect(self.path_field.setLayer)
        form.addRow(tr("Path field"), self.path_field)
        form.addRow("", self.selected_only)
        self.references = ReferenceChoice(form)

        self.results = ResultsOptions(iface, settings.results_settings("geolocate"), tr("photo"))
        for name in ("top_k", "cell", "bandwidth", "extent", "density", "output"):
            setattr(self, name, getattr(self.results, name))  # the form's widgets, by name
        self.column.addWidget(self.results)
        self.add_controls(tr("Geolocate"))

    @guarded
    def showEvent(self, event) -> None:  # noqa: N802 - Qt API
        """On first show, offer in the file dialog exactly the formats this QGIS's Python can open (read from
        model_utils, which loads Pillow and pillow-heif: not while the plugin loads)."""
        super().showEvent(event)
        if not self._formats_read:
            self._formats_read = True
            self.files.setFilter(photo_file_filter(installed_suffixes()))

    def parameters(self) -> dict:
        """The toolbox parameters this form stands for."""
        params = {
            d.PHOTOS: QgsFileWidget.splitFilePaths(self.files.filePath()) if self.files.filePath() else [],
            d.FOLDER: self.folder.filePath() or None,
            d.RECURSIVE: self.recursive.isChecked(),
            **self.results.parameters(),
        }
        source = self.layer_source()
        if source is not None:
            params[d.PHOTO_LAYER] = source
            params[d.PATH_FIELD] = self.path_field.currentField() or None
        collection = self.references.existing_collection()
        if collection is not None:
            params[d.REFERENCES] = collection
        return params

    def refusal(self) -> str | None:
        return self.references.refusal()

    def remember(self) -> None:
        settings.GEOLOCATE_FOLDER.write(self.folder.filePath())
        settings.GEOLOCATE_RECURSIVE.write(self.recursive.isChecked())
        settings.GEOLOCATE_SELECTED_ONLY.write(self.selected_only.isChecked())
        self.references.remember()
        self.results.remember()

    @guarded
    def run(self) -> None:
        """Geolocate; when the reference photos must be built into a collection first, build, then geolocate
        with it (one progress bar and Cancel for both steps)."""
        problem = self.refusal()
        if problem:
            self.controls.append(problem)
            return
        self.remember()
        params = self.parameters()
        build = self.references.build_parameters(self.output.filePath() or self.results.saved.output.default)
        if build is None:
            self.controls.start(params)
            return
        self.controls.start(build, BUILD_ALGORITHM,
                            then=lambda built: self.controls.start({**params, d.REFERENCES: built[d.COLLECTION]}))
