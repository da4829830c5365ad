"""Run a Processing algorithm from the dock in a background task, with progress, Cancel and a log.

The dock never computes anything itself: it builds the same parameter dict a user would give the
toolbox and runs the registered algorithm in a ``QgsProcessingAlgRunnerTask``. Results are loaded
on the main thread by Processing's own result handler, so layers are styled and grouped exactly as
when the algorithm runs from the toolbox.
"""

from __future__ import annotations

from collections.abc import Callable

from qgis.core import (
    QgsApplication,
    QgsProcessingAlgRunnerTask,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProject,
)
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..compat import add_html_results, handle_algorithm_results
from ..guard import error_line, guarded
from ..i18n import tr


class PanelFeedback(QgsProcessingFeedback):
    """Feedback that sends log lines to the panel as a signal.

    The algorithm calls it on the task's thread; the signal reaches the log widget through a queued
    connection on the main thread, the only thread allowed to touch widgets.
    """

    line = pyqtSignal(str)

    def __init__(self) -> None:
        super().__init__()
        self._last_error = ""

    def pushInfo(self, info: str) -> None:  # noqa: N802
        super().pushInfo(info)
        self.line.emit(info)

    def reportError(self, error: str, fatalError: bool = False) -> None:  # noqa: N802, N803
        if self.isCanceled() and error.startswith("Canceled"):
            return  # the algorithm's "Canceled: …" exception (Processing passes it on as fatal or not,
            # depending on where the cancel landed): a cancel is no error; the dock reports it once
        if error == self._last_error:
            return  # Processing passes an algorithm's exception on more than once: log it once
        self._last_error = error
        super().reportError(error, fatalError)
        self.line.emit(("ERROR: " if fatalError else "⚠ ") + error)

    def setProgressText(self, text: str) -> None:  # noqa: N802
        super().setProgressText(text)
        self.line.emit(text)


# Tasks whose widgets went away (plugin unloaded mid-run): Python keeps them, their feedback and context
# alive until QGIS reports them finished, so nothing a running task holds is deleted under it.
_DETACHED: set = set()
SHUTDOWN_WAIT_MS = 10_000  # how long unloading waits for a canceled task to stop


class RunControls(QWidget):
    """Run / Cancel buttons, a progress bar and a log, driving one algorithm at a time."""

    finished = pyqtSignal(bool, dict)  # success, results

    def __init__(self, algorithm_id: str, run_label: str = "Run", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.algorithm_id = algorithm_id
        self.task: QgsProcessingAlgRunnerTask | None = None
        self.context: QgsProcessingContext | None = None
        self.feedback: PanelFeedback | None = None
        self.algorithm = None
        self.parameters: dict = {}
        self.results: dict = {}
        self.then: Callable[[dict], bool] | None = None  # the next step, after this run succeeds
        self.model_parameters: Callable[[], dict] | None = None  # the Setup tab's choices, set by the dock
        self.iface = None  # set by the dock: the map canvas zooms to each run's results
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        buttons = QHBoxLayout()
        self.run_button = QPushButton(run_label)
        self.run_button.setToolTip(tr("Start in the background; QGIS stays usable while it runs"))
        self.cancel_button = QPushButton(tr("Cancel"))
        self.cancel_button.setToolTip(tr("Stop after the current batch; nothing partial is kept"))
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        layout.addLayout(buttons)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.progress.setToolTip(tr("Progress of the current run"))
        layout.addWidget(self.progress)
        self.report_link = QLabel()
        self.report_link.setOpenExternalLinks(True)
        self.report_link.setToolTip(tr("The last run's report; also listed in Processing's Results Viewer"))
        self.report_link.hide()
        layout.addWidget(self.report_link)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(2000)
        self.log.setToolTip(tr("What the run did: progress, per-file problems and the result"))
        self.log.setPlaceholderText(tr("Messages and per-photo errors appear here."))
        layout.addWidget(self.log)

    @property
    def running(self) -> bool:
        return self.task is not None

    def append(self, text: str) -> None:
        """Main thread only (worker lines arrive through ``PanelFeedback.line``); keeps the last line in view."""
        self.log.appendPlainText(text)
        bar = self.log.verticalScrollBar()
        bar.setValue(bar.maximum())

    def show_error(self, text: str) -> None:
        """Where ``@guarded`` shows an unexpected error of this widget's slots."""
        self.append(error_line(text))

    def with_model_choices(self, algorithm, parameters: dict) -> dict:
        """``parameters`` plus the Setup tab's model choices that ``algorithm`` takes (GPS embeddings take the
        weights but no backbone or precision): the dock runs what the user sees, and sends nothing unknown."""
        choices = self.model_parameters() if self.model_parameters is not None else {}
        taken = {key: value for key, value in choices.items() if algorithm.parameterDefinition(key) is not None}
        return {**taken, **parameters}

    @guarded(default=False)
    def start(self, parameters: dict, algorithm_id: str = "", then: Callable[[dict], bool] | None = None) -> bool:
        """Run the algorithm (or ``algorithm_id``, a step before it) with ``parameters``; False (and a log line) if
        it cannot start. ``then``: called with the results when this run succeeds, to start the next step (its
        layers are not loaded: the last step's are); it returns whether it did."""
        if self.running:
            return False
        algorithm_id = algorithm_id or self.algorithm_id
        algorithm = QgsApplication.processingRegistry().createAlgorithmById(algorithm_id)
        if algorithm is None:
            self.append(tr("ERROR: algorithm {id} is not registered (is the plugin enabled?)")
                        .format(id=algorithm_id))
            return False
        parameters = self.with_model_choices(algorithm, parameters)
        self.context = QgsProcessingContext()
        self.context.setProject(QgsProject.instance())
        self.feedback = PanelFeedback()
        self.feedback.line.connect(self.append)
        ok, message = algorithm.checkParameterValues(parameters, self.context)
        if not ok:
            self.append(tr("ERROR: {message}").format(message=message))
            return False
        self.algorithm, self.parameters, self.results, self.then = algorithm, parameters, {}, then
        self.task = QgsProcessingAlgRunnerTask(algorithm, parameters, self.context, self.feedback)
        self.task.progressChanged.connect(self._progress)
        self.task.executed.connect(self._executed)
        self.progress.setValue(0)
        self.report_link.hide()
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.append(tr("▶ {name} started").format(name=algorithm.displayName()))
        QgsApplication.taskManager().addTask(self.task)
        return True

    def show_reports(self, paths: list[str]) -> None:
        """A clickable link to the run's report under the progress bar (hidden when there is none)."""
        from qgis.PyQt.QtCore import QUrl

        links = [f'<a href="{QUrl.fromLocalFile(p).toString()}">Open the report</a>' for p in paths]
        self.report_link.setText(" · ".join(links))
        self.report_link.setVisible(bool(links))

    def result_layers(self) -> list:
        """The project's layers that this run loaded (matched by file source)."""
        if self.context is None:
            return []
        sources = {str(path).split("|")[0] for path in self.context.layersToLoadOnCompletion().keys()}
        return [layer for layer in QgsProject.instance().mapLayers().values()
                if layer.source().split("|")[0] in sources]

    def zoom_to_results(self) -> None:
        """Show the run: the canvas zooms to the union of its layers' extents."""
        canvas = self.iface.mapCanvas() if self.iface is not None else None
        layers = self.result_layers()
        if canvas is None or not layers:
            return
        from qgis.core import QgsCoordinateTransform, QgsRectangle

        target = canvas.mapSettings().destinationCrs()
        extent = QgsRectangle()
        for layer in layers:
            transform = QgsCoordinateTransform(layer.crs(), target, QgsProject.instance())
            extent.combineExtentWith(transform.transformBoundingBox(layer.extent()))
        if not extent.isEmpty():
            canvas.setExtent(extent)
            canvas.refresh()

    def shutdown(self, wait_ms: int = SHUTDOWN_WAIT_MS) -> None:
        """Unload mid-run: cancel, disconnect the task from these widgets, wait (bounded) for it to stop."""
        task, feedback = self.task, self.feedback
        if task is None:
            return
        feedback.cancel()
        task.cancel()
        for signal, slot in ((feedback.line, self.append), (task.executed, self._executed),
                             (task.progressChanged, self._progress)):
            try:
                signal.disconnect(slot)
            except (TypeError, RuntimeError):  # already disconnected
                pass
        held = (task, feedback, self.context, self.algorithm)
        _DETACHED.add(held)
        release = guarded(lambda *_: _DETACHED.discard(held))
        task.taskCompleted.connect(release)
        task.taskTerminated.connect(release)
        task.waitForFinished(wait_ms)
        self.task = None

    @guarded
    def _progress(self, value: float) -> None:
        self.progress.setValue(int(value))

    @guarded
    def cancel(self) -> None:
        """Ask the running task to stop between batches."""
        if self.task is not None:
            self.append(tr("Canceling after the current batch…"))
            self.feedback.cancel()
            self.task.cancel()

    @guarded
    def _executed(self, success: bool, results: dict) -> None:
        """Main thread: load result layers through Processing's handler, then reset the controls.

        The controls are reset and ``finished`` is emitted even when loading the layers fails, so
        the dock never stays stuck in "running".
        """
        canceled = self.feedback.isCanceled()
        ok = bool(success and not canceled)
        then, self.then = (self.then if ok else None), None
        try:
            if then is not None:  # a step before the last: say it is done, and go on
                self.show_reports(add_html_results(self.algorithm, dict(results or {})))
                self.append(tr("✔ {name} done").format(name=self.algorithm.displayName()))
            elif ok:
                handle_algorithm_results(self.algorithm, self.context, self.feedback, self.parameters)
                self.zoom_to_results()
                self.show_reports(add_html_results(self.algorithm, dict(results or {})))
                self.progress.setValue(100)
                self.append(tr("✔ Done"))
            else:
                self.append("■ Canceled: nothing was kept." if canceled else "✘ Failed: see the messages above.")
                self.progress.setValue(0)
        except Exception:
            ok, then = False, None
            self.progress.setValue(0)
            raise  # @guarded logs it and shows it in the log box
        finally:
            self.results = dict(results or {})
            self.task = None
            if then is None or not then(self.results):
                self.run_button.setEnabled(True)
                self.cancel_button.setEnabled(False)
                self.finished.emit(ok and then is None, self.results)
