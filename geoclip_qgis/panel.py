"""The GeoCLIP dock: a thin front-end over the Processing algorithms, plus setup and status."""

from __future__ import annotations

from qgis.gui import QgsDockWidget, QgsFileWidget
from qgis.PyQt.QtWidgets import (
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from . import settings
from .dependencies import check_dependencies, install_hint
from .guard import guarded
from .installer import PLATFORM_ONLY
from .panel_installer import InstallerControls


class SetupTab(QWidget):
    """Which CLIP backbone, weights and cache to use, and whether the Python side is installed."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)

        model_box = QGroupBox("Model")
        form = QFormLayout(model_box)
        self.clip_model = QLineEdit(settings.get("clip_model"))
        self.clip_model.setPlaceholderText(settings.DEFAULT_CLIP)
        self.clip_model.setToolTip(
            "CLIP ViT-L/14 backbone: a Hugging Face repo id (downloaded once, about 1.7 GB) or a "
            "local folder saved with save_pretrained. Empty: $GEOCLIP_CLIP_MODEL or "
            f"{settings.DEFAULT_CLIP}."
        )
        self.clip_folder = QgsFileWidget()
        self.clip_folder.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.clip_folder.setToolTip("Pick a local CLIP folder instead of typing a repo id")
        self.clip_folder.fileChanged.connect(self.clip_model.setText)
        self.weights = QgsFileWidget()
        self.weights.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.weights.setFilePath(settings.get("weights"))
        self.weights.setToolTip(
            "Folder with GeoCLIP weights (location_encoder_weights.pth, image_encoder_mlp_weights.pth, "
            "logit_scale_weights.pth). Empty: the ones shipped in the geoclip wheel."
        )
        self.cache_dir = QgsFileWidget()
        self.cache_dir.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.cache_dir.setFilePath(settings.get("cache_dir"))
        self.cache_dir.setToolTip(
            "Where gallery embeddings are cached (computed once, about 200 MB for the 100K gallery). "
            "Empty: your user cache folder."
        )
        form.addRow("CLIP backbone", self.clip_model)
        form.addRow("…or local folder", self.clip_folder)
        form.addRow("GeoCLIP weights", self.weights)
        form.addRow("Embedding cache", self.cache_dir)
        self.save_button = QPushButton("Remember these choices")
        self.save_button.setToolTip("Store them in your QGIS profile; they apply to the next run")
        self.save_button.clicked.connect(self.save)
        form.addRow(self.save_button)
        layout.addWidget(model_box)

        deps_box = QGroupBox("Python dependencies")
        deps_layout = QVBoxLayout(deps_box)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(self.status.textInteractionFlags())
        deps_layout.addWidget(self.status)
        self.installer = InstallerControls()
        self.installer.finished.connect(self.refresh_status)
        deps_layout.addWidget(self.installer)
        layout.addWidget(deps_box)
        layout.addStretch(1)
        self.refresh_status()

    def show_error(self, text: str) -> None:
        """Where ``@guarded`` shows an unexpected error of this tab's slots."""
        self.installer.log.appendPlainText(f"ERROR: {text} (details in the message log, tab GeoCLIP)")

    @guarded
    def save(self) -> None:
        """Persist the model choices (QgsSettings) and export them to the environment."""
        settings.put("clip_model", self.clip_model.text().strip())
        settings.put("weights", self.weights.filePath().strip())
        settings.put("cache_dir", self.cache_dir.filePath().strip())

    @guarded
    def refresh_status(self) -> None:
        """Show found/missing dependencies without importing any of them."""
        deps = check_dependencies()
        rows = []
        for dep in deps:
            mark = "✔" if dep.found else "✘"
            version = dep.version or "missing"
            rows.append(f"{mark} <b>{dep.distribution}</b> {version} <i>({dep.purpose})</i>")
        missing = [d for d in deps if not d.found]
        if missing:
            rows.append("<br>Press <b>Install missing packages</b>, or install them by hand in QGIS's Python:"
                        f"<br><code>{install_hint(missing)}</code>")
            rows += [f"<br><b>{d.distribution}</b>: {PLATFORM_ONLY[d.distribution]}." for d in missing
                     if d.distribution in PLATFORM_ONLY]
        else:
            rows.append("<br>All dependencies found.")
        self.status.setText("<br>".join(rows))
        self.installer.set_missing(missing)


class GeoClipDock(QgsDockWidget):
    """Dock widget hosting the plugin's tabs."""

    def __init__(self, iface, parent: QWidget | None = None) -> None:
        super().__init__("GeoCLIP", parent)
        self.iface = iface
        settings.apply_to_environment()
        self.tabs = QTabWidget()
        from .panel_geolocate import GeolocateTab

        self.geolocate_tab = GeolocateTab(iface)
        self.tabs.addTab(self.geolocate_tab, "Geolocate photos")
        from .panel_text import TextTab

        self.text_tab = TextTab(iface)
        self.tabs.addTab(self.text_tab, "Text query")
        from .panel_embeddings import EmbeddingsTab

        self.tabs.addTab(EmbeddingsTab(iface), "GPS embeddings")
        self.setup_tab = SetupTab()
        self.tabs.addTab(self.setup_tab, "Setup")
        self.setWidget(self.tabs)

    def shutdown(self) -> None:
        """Cancel running work before the plugin unloads (tabs with tasks override this)."""
        for index in range(self.tabs.count()):
            tab = self.tabs.widget(index)
            cancel = getattr(tab, "cancel_running", None)
            if cancel is not None:
                cancel()
