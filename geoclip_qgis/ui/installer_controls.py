"""Setup tab: install the missing Python packages in a background task, with a log and Cancel."""

from __future__ import annotations

from qgis.core import QgsApplication, QgsTask
from qgis.PyQt.QtCore import QObject, pyqtSignal
from qgis.PyQt.QtWidgets import QCheckBox, QHBoxLayout, QPlainTextEdit, QProgressBar, QPushButton, QVBoxLayout, QWidget

from ..guard import error_line, guarded
from ..i18n import tr
from ..setup.dependencies import DependencyStatus
from ..setup.installer import CUDA_TORCH_SIZE, Installation, add_deps_to_path, deps_folder, requirements


class _Relay(QObject):
    """Carries pip's output lines from the task's thread to the widget (queued signal)."""

    line = pyqtSignal(str)


class InstallTask(QgsTask):
    """Runs one :class:`Installation`; Cancel stops pip and keeps nothing."""

    def __init__(self, packages: list[str], allow_cuda: bool = False) -> None:
        super().__init__("GeoCLIP: installing Python packages", QgsTask.Flag.CanCancel)
        self.relay = _Relay()
        self.installation = Installation(packages, self.relay.line.emit, allow_cuda)
        self.succeeded = False

    @guarded(default=False)
    def run(self) -> bool:  # worker thread
        self.succeeded = self.installation.run()
        return self.succeeded

    @guarded
    def cancel(self) -> None:
        self.installation.cancel()
        super().cancel()


class InstallerControls(QWidget):
    """Install button, Cancel, a busy bar and pip's log; ``finished`` fires when a run ends."""

    finished = pyqtSignal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.task: InstallTask | None = None
        self.packages: list[str] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        buttons = QHBoxLayout()
        self.install_button = QPushButton(tr("Install missing packages"))
        self.install_button.setToolTip(
            tr("Runs pip in the background into {folder} (no admin rights needed; delete that folder to "
               "undo). torch comes as the CPU build (~200 MB download). QGIS's own numpy stays in use.")
            .format(folder=deps_folder()))
        self.install_button.clicked.connect(self.start)
        self.cancel_button = QPushButton(tr("Cancel"))
        self.cancel_button.setToolTip(tr("Stop pip; nothing is installed"))
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        buttons.addWidget(self.install_button)
        buttons.addWidget(self.cancel_button)
        layout.addLayout(buttons)
        self.allow_cuda = QCheckBox(tr("Allow torch's CUDA build from PyPI ({size})").format(size=CUDA_TORCH_SIZE))
        self.allow_cuda.setToolTip(tr("Used only when the CPU wheel index cannot be reached: torch then comes from "
                                      "PyPI as the CUDA build (torch and its nvidia-* wheels), which also runs on "
                                      "the CPU but downloads about 3 GB. The CPU build is taken whenever its index "
                                      "answers. Off: the CPU build or nothing."))
        layout.addWidget(self.allow_cuda)
        self.progress = QProgressBar()
        self.progress.setToolTip(tr("Busy while pip runs"))
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        layout.addWidget(self.progress)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumHeight(140)
        self.log.setPlaceholderText(tr("pip's output appears here."))
        self.log.setToolTip(tr("What pip did; on failure, its last lines say why"))
        layout.addWidget(self.log)

    @property
    def running(self) -> bool:
        return self.task is not None

    def set_missing(self, missing: list[DependencyStatus]) -> None:
        self.packages = requirements(missing)
        self.install_button.setEnabled(bool(self.packages) and not self.running)

    def show_error(self, text: str) -> None:
        """Where ``@guarded`` shows an unexpected error of this widget's slots."""
        self.log.appendPlainText(error_line(text))

    @guarded
    def start(self) -> None:
        if self.running or not self.packages:
            return
        self.log.clear()
        self.log.appendPlainText("Installing: " + ", ".join(self.packages))
        task = InstallTask(self.packages, self.allow_cuda.isChecked())
        task.relay.line.connect(self.log.appendPlainText)
        task.taskCompleted.connect(self._completed)
        task.taskTerminated.connect(self._terminated)
        self.task = task
        self.install_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setRange(0, 0)  # busy: pip gives no overall fraction
        QgsApplication.taskManager().addTask(task)

    @guarded
    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def shutdown(self) -> None:
        """Unload mid-install: stop pip (and its children) and forget the task's widgets."""
        task = self.task
        if task is None:
            return
        for signal, slot in ((task.relay.line, self.log.appendPlainText), (task.taskCompleted, self._completed),
                             (task.taskTerminated, self._terminated)):
            try:
                signal.disconnect(slot)
            except (TypeError, RuntimeError):
                pass
        task.cancel()
        task.waitForFinished(10_000)
        self.task = None

    @guarded
    def _completed(self) -> None:
        self._done(True)

    @guarded
    def _terminated(self) -> None:
        self._done(False)

    def _done(self, ok: bool) -> None:
        self.task = None
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if ok else 0)
        self.cancel_button.setEnabled(False)
        if ok:
            add_deps_to_path()
            self.log.appendPlainText(tr("Done: the packages are ready (no restart needed for new runs)."))
        else:
            self.log.appendPlainText(tr("Not installed. The log above says why; nothing was changed."))
        self.finished.emit()
