"""Dock tab "Setup": which CLIP backbone, weights, cache and precision every run uses, and whether the Python
side is installed (with the installer that adds what is missing)."""

from __future__ import annotations

from qgis.PyQt.QtWidgets import QComboBox, QFormLayout, QGroupBox, QLabel, QLineEdit, QVBoxLayout, QWidget

from .. import settings
from ..guard import guarded
from ..i18n import tr
from ..processing import definitions as d
from ..setup.dependencies import check_dependencies
from ..setup.installer import PLATFORM_ONLY, install_hint
from .form_tab import folder_widget
from .installer_controls import InstallerControls
from .map_options import MapOptions


class SetupTab(QWidget):
    """Which CLIP backbone, weights and cache to use, and whether the Python side is installed."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from model_utils.constants import DEFAULT_CLIP, PRECISIONS  # here: a RefusedDock never imports it

        layout = QVBoxLayout(self)

        model_box = QGroupBox(tr("Model"))
        form = QFormLayout(model_box)
        self.clip_model = QLineEdit(settings.CLIP_MODEL.read())
        self.clip_model.setPlaceholderText(DEFAULT_CLIP)
        self.clip_model.setToolTip(
            tr("CLIP ViT-L/14 backbone: a Hugging Face repo id (downloaded once, about 1.7 GB; "
               "repo@revision pins a commit, else main's commit at download) or a local folder saved with "
               "save_pretrained. Empty: $GEOCLIP_CLIP_MODEL or {default} at its pinned commit.")
            .format(default=DEFAULT_CLIP)
        )
        self.clip_folder = folder_widget("", tr("Pick a local CLIP folder instead of typing a repo id"))
        self.clip_folder.fileChanged.connect(self._folder_picked)
        self.weights = folder_widget(settings.WEIGHTS.read(), tr(
            "Folder with GeoCLIP weights (location_encoder_weights.pth, image_encoder_mlp_weights.pth, "
            "logit_scale_weights.pth). Empty: the ones shipped in the geoclip wheel."))
        self.cache_dir = folder_widget(settings.CACHE_DIR.read(), tr(
            "Where gallery embeddings are cached (computed once, about 200 MB for the 100K gallery). "
            "Empty: your user cache folder."))
        form.addRow(tr("CLIP backbone"), self.clip_model)
        form.addRow(tr("…or local folder"), self.clip_folder)
        form.addRow(tr("GeoCLIP weights"), self.weights)
        form.addRow(tr("Embedding cache"), self.cache_dir)
        self.precision = QComboBox()
        self.precision.addItems(list(PRECISIONS))
        self.precision.setCurrentIndex(max(0, self.precision.findText(settings.PRECISION.read() or "auto")))
        self.precision.setToolTip(
            tr("How the CLIP backbone computes. auto: fp16 on a GPU; on the CPU bf16 where the CPU has it "
               "natively (AVX512-BF16, AMX: faster than fp32 with the same answers), else fp32. "
               "fp32: always full precision. bf16: also where the CPU lacks it (slower there). fp16: GPUs only. "
               "int8: CPU only, never auto; faster than fp32 on a CPU without native bf16, with answers close "
               "to fp32's but not identical (the README gives measured figures)."))
        form.addRow(tr("Precision"), self.precision)
        saved_note = QLabel(tr("Choices apply to the next run and are remembered in your QGIS profile "
                            "(also for the Processing toolbox and qgis_process)."))
        saved_note.setWordWrap(True)
        form.addRow(saved_note)
        self._saved = self._choices()
        self.clip_model.editingFinished.connect(self.save)
        self.weights.fileChanged.connect(self.save)
        self.cache_dir.fileChanged.connect(self.save)
        self.precision.currentIndexChanged.connect(self.save)
        layout.addWidget(model_box)
        self.map_options = MapOptions()
        layout.addWidget(self.map_options)

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

    def shutdown(self) -> None:
        """Before the dock goes: stop the installer, and let no field that loses its focus as it is destroyed save
        what it shows over what a newer dock saved (a later plugin's Setup tab then read an empty backbone)."""
        self.installer.shutdown()
        self.clip_model.editingFinished.disconnect(self.save)
        self.map_options.web_map.editingFinished.disconnect(self.map_options.save)

    def show_error(self, text: str) -> None:
        """Where ``@guarded`` shows an unexpected error of this tab's slots."""
        self.installer.show_error(text)

    @guarded
    def _folder_picked(self, path: str) -> None:
        self.clip_model.setText(path)
        self.save()

    def _choices(self) -> dict:
        """The model choices as shown, by setting."""
        precision = "" if self.precision.currentText() == "auto" else self.precision.currentText()
        return {settings.CLIP_MODEL: self.clip_model.text(), settings.WEIGHTS: self.weights.filePath(),
                settings.CACHE_DIR: self.cache_dir.filePath(), settings.PRECISION: precision}

    @guarded
    def save(self) -> None:
        """Remember the model choices changed here (QgsSettings); every later run resolves through them. Only what
        changed in this tab is written: a tab of a dock not yet gone never writes its stale view back over a
        newer choice."""
        choices = self._choices()
        for setting, value in choices.items():
            if value != self._saved.get(setting):
                setting.write(value)
        self._saved = choices

    def model_parameters(self) -> dict:
        """The choices as shown, as algorithm parameters: the dock runs what the user sees."""
        return {d.CLIP_MODEL: self.clip_model.text().strip() or None,
                d.WEIGHTS: self.weights.filePath().strip() or None,
                d.PRECISION: self.precision.currentIndex()}

    @guarded
    def refresh_status(self) -> None:
        """Show found/missing dependencies without importing any of them."""
        deps = check_dependencies()
        rows = []
        for dep in deps:
            mark = "✔" if dep.found else ("–" if dep.optional else "✘")
            rows.append(tr("{mark} <b>{name}</b> {version} <i>({purpose})</i>").format(
                mark=mark, name=dep.distribution, version=dep.version or tr("missing"), purpose=dep.purpose))
        missing = [dep for dep in deps if not dep.found and not dep.optional]
        if missing:
            rows.append(tr("<br>Press <b>Install missing packages</b>, or install them by hand in QGIS's Python:"
                           "<br><code>{command}</code>").format(command=install_hint(missing)))
            rows += [f"<br><b>{dep.distribution}</b>: {PLATFORM_ONLY[dep.distribution]}." for dep in missing
                     if dep.distribution in PLATFORM_ONLY]
        else:
            rows.append(tr("<br>All dependencies found."))
        self.status.setText("<br>".join(rows))
        self.installer.set_missing(missing)
