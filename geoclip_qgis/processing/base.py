"""What every GeoCLIP algorithm shares: model parameters, feedback bridging, clear failures.

Algorithms freeze QGIS inputs into plain data in ``prepareAlgorithm`` (on the main thread) and hand
``model_utils`` two callbacks built from the feedback object, so the model side never sees Qt.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingMultiStepFeedback,
    QgsProcessingParameterEnum,
    QgsProcessingParameterString,
)
from qgis.PyQt.QtGui import QIcon

from model_utils.constants import DEVICES, PRECISIONS
from model_utils.progress import IsCanceled, Progress

from ..compat import FLAG_ADVANCED
from ..i18n import tr
from ..paths import ensure_model_utils_importable, resource
from . import definitions as d
from .io.geometry import WGS84

T = TypeVar("T")


class GeoClipAlgorithm(QgsProcessingAlgorithm):
    """Base class: group, icon, the model parameters, and helpers for subclasses."""


    def group(self) -> str:
        return ""

    def groupId(self) -> str:  # noqa: N802
        return ""

    def icon(self) -> QIcon:
        return QIcon(resource("icon.svg"))

    def createInstance(self):  # noqa: N802
        return type(self)()

    NO_INPUT = ""  # an algorithm with optional inputs of which one is needed says so here, and in has_input

    def has_input(self, parameters, context) -> bool:
        return True

    def checkParameterValues(self, parameters, context):  # noqa: N802 - QGIS API
        """Refuse a run with no input at all before a task starts (the dock and the toolbox both ask)."""
        ok, message = super().checkParameterValues(parameters, context)
        if ok and self.NO_INPUT and not self.has_input(parameters, context):
            return False, self.NO_INPUT
        return ok, message

    def prepareAlgorithm(self, parameters, context, feedback) -> bool:  # noqa: N802 - QGIS API
        """Reads the parameters on the main thread into ``self.job`` (``prepare``), before the task starts.

        A bad parameter found here is raised again by ``processAlgorithm``: QGIS would turn an exception
        from this method into a generic "There were errors executing the algorithm" for ``processing.run``
        callers, and the message is the useful part."""
        self.job, self.refusal = None, ""
        try:
            self.job = self.prepare(parameters, context, feedback)
        except QgsProcessingException as exc:
            # the message only: the exception's traceback would keep this run's context and feedback alive
            # in a cycle with the algorithm, to be torn down after QGIS itself (a crash at exit)
            self.refusal = str(exc)
        return True

    def prepare(self, parameters, context, feedback):
        """The run's plain-data job (a frozen dataclass), or None for an algorithm that reads its
        parameters in ``process``."""
        return None

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API
        """Runs ``process`` in a thread Python starts itself (see ``in_python_thread``), then gives what it
        freed back to the system (a run of 1,000 photos left QGIS ~100 MB larger otherwise)."""
        if getattr(self, "refusal", ""):
            raise QgsProcessingException(self.refusal)
        from model_utils.memory import return_freed_memory

        try:
            return in_python_thread(lambda: self.process(parameters, context, feedback))
        finally:
            return_freed_memory()

    def process(self, parameters, context, feedback) -> dict:
        """The algorithm's work (what ``processAlgorithm`` is elsewhere)."""
        raise NotImplementedError

    def add_model_parameters(self, image_side: bool = True) -> None:
        """Advanced parameters choosing the backbone, weights, device and precision."""
        params = []
        if image_side:
            params.append(QgsProcessingParameterString(
                d.CLIP_MODEL, tr("CLIP backbone (repo id[@revision] or local folder; empty = panel setting / "
                "$GEOCLIP_CLIP_MODEL / openai/clip-vit-large-patch14)"), optional=True))
        params.append(QgsProcessingParameterString(
            d.WEIGHTS, tr("GeoCLIP weights folder (empty = $GEOCLIP_WEIGHTS / the geoclip wheel)"), optional=True))
        params.append(QgsProcessingParameterEnum(
            d.DEVICE, tr("Device"), options=DEVICES, defaultValue=0))
        if image_side:
            params.append(QgsProcessingParameterEnum(
                d.PRECISION, tr("Precision (auto: fp16 on a GPU; on the CPU bf16 where the CPU has it natively, "
                                   "else fp32; int8: CPU only, faster, close to fp32)"),
                options=PRECISIONS, defaultValue=0))
        for param in params:
            param.setFlags(param.flags() | FLAG_ADVANCED)
            self.addParameter(param)

    def model_choices(self, parameters, context) -> dict:
        """Plain-data model options for ``model_utils.model.geoclip.shared_model``: each resolved by
        ``settings.resolve`` (parameter, saved setting, then model_utils' environment variable/default)."""
        from .. import settings

        choices = {
            "weights": settings.resolve(settings.WEIGHTS, self.parameterAsString(parameters, d.WEIGHTS, context)),
            "device": DEVICES[self.parameterAsEnum(parameters, d.DEVICE, context)],
            "cache_dir": settings.resolve(settings.CACHE_DIR),
        }
        if self.parameterDefinition(d.CLIP_MODEL) is not None:
            choices["clip_model"] = settings.resolve(
                settings.CLIP_MODEL, self.parameterAsString(parameters, d.CLIP_MODEL, context))
            given = PRECISIONS[self.parameterAsEnum(parameters, d.PRECISION, context)]
            choices["precision"] = settings.resolve(settings.PRECISION, "" if given == "auto" else given) or "auto"
        return choices

    def grid_spec(self, parameters, context, extent_name: str, cell_name: str):
        """A ``GridSpec`` in EPSG:4326 from an optional extent (any CRS; empty = world) and a cell size."""
        ensure_model_utils_importable()
        from model_utils.maps.grid import GridSpec

        cell = self.parameterAsDouble(parameters, cell_name, context)
        if parameters.get(extent_name) in (None, ""):
            bounds = (-180.0, -90.0, 180.0, 90.0)
        else:
            rect = self.parameterAsExtent(parameters, extent_name, context, WGS84)
            if rect.isNull() or rect.width() <= 0 or rect.height() <= 0:
                raise QgsProcessingException(
                    f"The extent has zero area ({rect.toString()}); draw or pick an extent with an area, "
                    f"or leave it empty for the whole world.")
            bounds = (max(rect.xMinimum(), -180.0), max(rect.yMinimum(), -90.0),
                      min(rect.xMaximum(), 180.0), min(rect.yMaximum(), 90.0))
        try:
            return GridSpec(*bounds, cell_size=cell)
        except ValueError as exc:
            raise QgsProcessingException(f"Raster extent / cell size: {exc}") from exc

    def load_model(self, choices: dict, feedback: QgsProcessingFeedback):
        """The process-wide shared GeoCLIP for ``choices`` (``model_choices``; loaded once, reused by later
        runs)."""
        try:
            ensure_model_utils_importable()
        except ImportError as exc:  # a foreign model_utils, or ours missing: the message says which
            raise QgsProcessingException(str(exc)) from exc
        try:
            from model_utils.errors import GeoClipError
            from model_utils.model.geoclip import shared_model
        except ImportError as exc:
            raise QgsProcessingException(
                f"GeoCLIP needs Python packages that are not installed ({exc.name}). Open the GeoCLIP "
                "panel's Setup tab to see what is missing and how to install it.") from exc
        feedback.pushInfo("Loading GeoCLIP (the first run in a QGIS session takes longest)…")
        try:
            model = shared_model(**choices)
        except (GeoClipError, ValueError) as exc:
            raise QgsProcessingException(str(exc)) from exc
        if not getattr(model, "precision_said", False):  # once per loaded model, not every run
            feedback.pushInfo(model.precision.note[0].upper() + model.precision.note[1:] + ".")
            model.precision_said = True
        return model


def in_python_thread(work: Callable[[], T]) -> T:
    """Run ``work`` in a fresh Python thread and wait for it; its exception is raised here.

    QGIS runs tasks on pooled Qt threads whose Python thread state comes from sip. torch's C++ side
    (pybind11) caches a thread state of its own per OS thread, and under Python 3.13 the two meeting
    on one thread is fatal: QGIS 3.40's desktop aborted with "_PyThreadState_Attach: non-NULL old
    thread state" when a second run loaded CLIP on a reused pool thread. A thread that Python starts
    has one consistent thread state, and a new one per run.
    """
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["result"] = work()
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="geoclip-run", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def stages(feedback: QgsProcessingFeedback, count: int) -> QgsProcessingMultiStepFeedback:
    """``count`` equal stages of one progress bar (``setCurrentStep(i)`` before stage ``i``): each stage reports
    0..100 % of its own, and the bar only moves forward. A cancel that came before is kept."""
    steps = QgsProcessingMultiStepFeedback(count, feedback)
    if feedback.isCanceled():
        steps.cancel()
    return steps


def progress_callbacks(feedback: QgsProcessingFeedback
                       ) -> tuple[Progress, IsCanceled]:
    """(progress, is_canceled) for model_utils: a fraction 0..1 becomes 0..100 % of ``feedback`` (a stage of
    ``stages``). Never backwards: a model_utils step that starts its count again (a second downloaded file)
    holds the bar where it is."""
    last = {"message": "", "value": 0.0}

    def progress(fraction: float, message: str) -> None:
        value = 100.0 * max(0.0, min(1.0, fraction))
        if value > last["value"]:
            feedback.setProgress(value)
            last["value"] = value
        if message and message != last["message"]:
            feedback.setProgressText(message)
            last["message"] = message

    return progress, feedback.isCanceled
