"""The GeoCLIP dock: a thin front-end over the Processing algorithms, plus setup and status."""

from __future__ import annotations

import html

from qgis.gui import QgsDockWidget, QgsFileWidget
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QFormLayout,
    QFrame,
    QGroupBox,
    QLabel,
    QLineEdit,
    QScrollArea,
    QStyle,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from .. import settings
from ..guard import guarded
from ..i18n import tr
from ..setup.dependencies import check_dependencies
from ..setup.installer import PLATFORM_ONLY, install_hint
from .installer_controls import InstallerControls


class SetupTab(QWidget):
    """Which CLIP backbone, weights and cache to use, and whether the Python side is installed."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from model_utils.constants import DEFAULT_CLIP, PRECISIONS  # here: a RefusedDock never imports it

        layout = QVBoxLayout(self)

        model_box = QGroupBox(tr("Model"))
        form = QFormLayout(model_box)
        self.clip_model = QLineEdit(settings.get("clip_model"))
        self.clip_model.setPlaceholderText(DEFAULT_CLIP)
        self.clip_model.setToolTip(
            tr("CLIP ViT-L/14 backbone: a Hugging Face repo id (downloaded once, about 1.7 GB; "
            "repo@revision pins a commit, else main's commit at download) or a local folder saved with "
            "save_pretrained. Empty: $GEOCLIP_CLIP_MODEL or {0} at its pinned commit.").format(DEFAULT_CLIP)
        )
        self.clip_folder = QgsFileWidget()
        self.clip_folder.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.clip_folder.setToolTip(tr("Pick a local CLIP folder instead of typing a repo id"))
        self.clip_folder.fileChanged.connect(self._folder_picked)
        self.weights = QgsFileWidget()
        self.weights.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.weights.setFilePath(settings.get("weights"))
        self.weights.setToolTip(
            tr("Folder with GeoCLIP weights (location_encoder_weights.pth, image_encoder_mlp_weights.pth, "
            "logit_scale_weights.pth). Empty: the ones shipped in the geoclip wheel.")
        )
        self.cache_dir = QgsFileWidget()
        self.cache_dir.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.cache_dir.setFilePath(settings.get("cache_dir"))
        self.cache_dir.setToolTip(
            tr("Where gallery embeddings are cached (computed once, about 200 MB for the 100K gallery). "
            "Empty: your user cache folder.")
        )
        form.addRow(tr("CLIP backbone"), self.clip_model)
        form.addRow(tr("…or local folder"), self.clip_folder)
        form.addRow(tr("GeoCLIP weights"), self.weights)
        form.addRow(tr("Embedding cache"), self.cache_dir)
        self.precision = QComboBox()
        self.precision.addItems(list(PRECISIONS))
        self.precision.setCurrentIndex(max(0, self.precision.findText(settings.get("precision") or "auto")))
        self.precision.setToolTip(
            tr("How the CLIP backbone computes. auto: fp16 on a GPU; on the CPU bf16 where the CPU has it "
               "natively (AVX512-BF16, AMX: about 2x faster on a 2-core test machine, the same top-1), else fp32. "
               "fp32: always full precision. bf16: also where the CPU lacks it (slower there). fp16: GPUs only. "
               "int8: CPU only, never auto; 1.5-3x faster than fp32 on a CPU without native bf16, answers close "
               "but not identical (bench/results.md)."))
        form.addRow(tr("Precision"), self.precision)
        saved_note = QLabel(tr("Choices apply to the next run and are remembered in your QGIS profile "
                            "(also for the Processing toolbox and qgis_process)."))
        saved_note.setWordWrap(True)
        form.addRow(saved_note)
        self.clip_model.editingFinished.connect(self.save)
        self.weights.fileChanged.connect(self.save)
        self.cache_dir.fileChanged.connect(self.save)
        self.precision.currentIndexChanged.connect(self.save)
        layout.addWidget(model_box)

        deps_box = QGroupBox(tr("Python dependencies"))
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
        self.installer.log.appendPlainText(tr(f"ERROR: {text} (details in the message log, tab GeoCLIP)"))

    @guarded
    def _folder_picked(self, path: str) -> None:
        self.clip_model.setText(path)
        self.save()

    @guarded
    def save(self) -> None:
        """Remember the model choices as shown (QgsSettings); every later run resolves through them."""
        settings.put("clip_model", self.clip_model.text())
        settings.put("weights", self.weights.filePath())
        settings.put("cache_dir", self.cache_dir.filePath())
        settings.put("precision", "" if self.precision.currentText() == "auto" else self.precision.currentText())

    def model_parameters(self) -> dict:
        """The choices as shown, as algorithm parameters: the dock runs what the user sees."""
        return {"CLIP_MODEL": self.clip_model.text().strip() or None,
                "WEIGHTS": self.weights.filePath().strip() or None,
                "PRECISION": self.precision.currentIndex()}

    @guarded
    def refresh_status(self) -> None:
        """Show found/missing dependencies without importing any of them."""
        deps = check_dependencies()
        rows = []
        for dep in deps:
            mark = "✔" if dep.found else ("–" if dep.optional else "✘")
            version = dep.version or "missing"
            rows.append(tr(f"{mark} <b>{dep.distribution}</b> {version} <i>({dep.purpose})</i>"))
        missing = [d for d in deps if not d.found and not d.optional]
        if missing:
            rows.append(tr("<br>Press <b>Install missing packages</b>, or install them by hand in QGIS's Python:"
                        f"<br><code>{install_hint(missing)}</code>"))
            rows += [f"<br><b>{d.distribution}</b>: {PLATFORM_ONLY[d.distribution]}." for d in missing
                     if d.distribution in PLATFORM_ONLY]
        else:
            rows.append(tr("<br>All dependencies found."))
        self.status.setText("<br>".join(rows))
        self.installer.set_missing(missing)


def scrolling(widget: QWidget) -> QScrollArea:
    """``widget`` in a scroll area: a tab never forces the dock (and QGIS's window) taller than the screen."""
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setWidget(widget)
    return area


class RefusedDock(QgsDockWidget):
    """The dock when GeoCLIP's own ``model_utils`` cannot be used (``plugin.refused``): only the reason, so
    the toolbar button still answers and no tab imports the foreign package."""

    def __init__(self, message: str, parent: QWidget | None = None) -> None:
        super().__init__("GeoCLIP", parent)
        self.message = QLabel(tr(f"<b>GeoCLIP cannot run.</b><br>{html.escape(message)}"))
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setWidget(scrolling(self.message))

    def task_tabs(self) -> list[QWidget]:
        """No tab runs anything."""
        return []

    def shutdown(self) -> None:
        """Nothing is running."""


class GeoClipDock(QgsDockWidget):
    """Dock widget hosting the plugin's tabs, each in a scroll area so the dock fits a laptop screen."""

    def __init__(self, iface, parent: QWidget | None = None) -> None:
        super().__init__("GeoCLIP", parent)
        self.iface = iface
        self.tabs = QTabWidget()
        from .embeddings_tab import EmbeddingsTab
        from .geolocate_tab import GeolocateTab
        from .text_tab import TextTab

        self.geolocate_tab = GeolocateTab(iface)
        self.text_tab = TextTab(iface)
        self.embeddings_tab = EmbeddingsTab(iface)
        self.setup_tab = SetupTab()
        for tab, title in ((self.geolocate_tab, "Geolocate photos"), (self.text_tab, "Text query"),
                           (self.embeddings_tab, "GPS embeddings"), (self.setup_tab, "Setup")):
            self.tabs.addTab(scrolling(tab), title)
        for tab in self.task_tabs():
            tab.controls.model_parameters = self.setup_tab.model_parameters
            tab.controls.iface = iface
        self.setWidget(self.tabs)
        self.visibilityChanged.connect(self.fit_width_once)

    WIDTH_SHARE = 0.4  # at most this share of QGIS's window on the first show: the map stays the larger part

    def form_width(self) -> int:
        """The width the widest tab's form asks for (a scroll area reports less than its content), with the
        vertical scroll bar and the frames."""
        inner = max(self.tabs.widget(i).widget().sizeHint().width() for i in range(self.tabs.count()))
        return inner + self.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent) + 24

    def show_error(self, text: str) -> None:
        """Where ``@guarded`` shows an unexpected error of the dock's own slots: the Setup tab's log."""
        self.setup_tab.show_error(text)

    @guarded
    def fit_width_once(self, visible: bool) -> None:
        """The first time the dock shows in a profile, widen it to its forms (QGIS gives a new right-hand dock
        about 290 px at 1366x768 and the forms were cut off); later the width the user left is QGIS's to keep."""
        main = self.iface.mainWindow()
        if not visible or settings.get("dock_fitted") or main is None or self.parentWidget() is not main:
            return
        settings.put("dock_fitted", "1")
        width = min(self.form_width(), int(main.width() * self.WIDTH_SHARE))
        if self.width() < width:
            main.resizeDocks([self], [width], Qt.Orientation.Horizontal)

    def index_of(self, tab: QWidget) -> int:
        """The tab index of ``tab`` (each tab sits inside a scroll area); -1 if it is not one."""
        return next((i for i in range(self.tabs.count()) if self.tabs.widget(i).widget() is tab), -1)

    def task_tabs(self) -> list[QWidget]:
        """The tabs that run Processing tasks (each has ``controls``)."""
        return [self.geolocate_tab, self.text_tab, self.embeddings_tab]

    def shutdown(self) -> None:
        """Before the plugin unloads: stop every running task and detach it from the widgets about to go."""
        for tab in self.task_tabs():
            tab.controls.shutdown()
        self.setup_tab.installer.shutdown()
