"""The one place where QGIS releases (3.22 LTR .. 3.44) and Qt5 / Qt6 differ.

Everything else in the plugin and its tests uses the names defined here instead of checking
versions itself. Rule: prefer the newer API (``Qgis.*`` scoped enums, ``QMetaType`` field types,
``QAction`` from QtGui) where the running QGIS has it, fall back to the old spelling where it does
not. ``tools/qt6_check.py`` keeps Qt5-only idioms out of every other file.
"""

from __future__ import annotations

from typing import Any

from qgis.core import (
    Qgis,
    QgsAction,
    QgsColorRampShader,
    QgsFeatureRequest,
    QgsLayoutExporter,
    QgsMapLayerProxyModel,
    QgsPalLayerSettings,
    QgsProcessing,
    QgsProcessingFeatureSource,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsRasterBandStats,
    QgsUnitTypes,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QMetaType, QVariant

try:  # Qt6, and QGIS >= 3.34 on Qt5 (an alias)
    from qgis.PyQt.QtGui import QAction  # noqa: F401 - re-exported
except ImportError:  # QGIS 3.22 .. 3.32 on Qt5
    from qgis.PyQt.QtWidgets import QAction  # noqa: F401 - re-exported

QGIS_VERSION_INT: int = Qgis.QGIS_VERSION_INT


def _pick(scoped: str, old_owner: Any, old_name: str) -> Any:
    """``Qgis.<Enum>.<Member>`` where this QGIS has it, else the class-level name it replaced."""
    enum_name, member = scoped.split(".")
    value = getattr(getattr(Qgis, enum_name, None), member, None)
    return value if value is not None else getattr(old_owner, old_name)


# Processing parameter and source types (Qgis.Processing* since 3.36).
SOURCE_VECTOR_ANY = _pick("ProcessingSourceType.VectorAnyGeometry", QgsProcessing, "TypeVectorAnyGeometry")
SOURCE_VECTOR_POINT = _pick("ProcessingSourceType.VectorPoint", QgsProcessing, "TypeVectorPoint")
SOURCE_VECTOR = _pick("ProcessingSourceType.Vector", QgsProcessing, "TypeVector")
SOURCE_FILE = _pick("ProcessingSourceType.File", QgsProcessing, "TypeFile")
FILE_FOLDER = _pick("ProcessingFileParameterBehavior.Folder", QgsProcessingParameterFile, "Folder")
NUMBER_DOUBLE = _pick("ProcessingNumberParameterType.Double", QgsProcessingParameterNumber, "Double")
NUMBER_INTEGER = _pick("ProcessingNumberParameterType.Integer", QgsProcessingParameterNumber, "Integer")
FIELD_STRING = _pick("ProcessingFieldParameterDataType.String", QgsProcessingParameterField, "String")
FLAG_ADVANCED = _pick("ProcessingParameterFlag.Advanced", QgsProcessingParameterDefinition, "FlagAdvanced")
FLAG_OPTIONAL = _pick("ProcessingParameterFlag.Optional", QgsProcessingParameterDefinition, "FlagOptional")
SKIP_GEOMETRY_CHECKS = _pick("ProcessingFeatureSourceFlag.SkipGeometryValidityChecks",
                             QgsProcessingFeatureSource, "FlagSkipGeometryValidityChecks")

# Geometry types (Qgis.WkbType / Qgis.GeometryType since 3.30).
WKB_POINT = _pick("WkbType.Point", QgsWkbTypes, "Point")
WKB_POLYGON = _pick("WkbType.Polygon", QgsWkbTypes, "Polygon")
WKB_LINESTRING = _pick("WkbType.LineString", QgsWkbTypes, "LineString")
WKB_MULTIPOLYGON = _pick("WkbType.MultiPolygon", QgsWkbTypes, "MultiPolygon")
WKB_NO_GEOMETRY = _pick("WkbType.NoGeometry", QgsWkbTypes, "NoGeometry")
GEOMETRY_POINT = _pick("GeometryType.Point", QgsWkbTypes, "PointGeometry")
GEOMETRY_POLYGON = _pick("GeometryType.Polygon", QgsWkbTypes, "PolygonGeometry")

REQUEST_NO_GEOMETRY = _pick("FeatureRequestFlag.NoGeometry", QgsFeatureRequest, "NoGeometry")

# Layers, rendering and labels.
LAYER_FILTER_VECTOR = _pick("LayerFilter.VectorLayer", QgsMapLayerProxyModel, "VectorLayer")
LAYER_FILTER_HAS_GEOMETRY = _pick("LayerFilter.HasGeometry", QgsMapLayerProxyModel, "HasGeometry")
LAYER_FILTER_POINT = _pick("LayerFilter.PointLayer", QgsMapLayerProxyModel, "PointLayer")
SHADER_INTERPOLATED = _pick("ShaderInterpolationMethod.Linear", QgsColorRampShader, "Interpolated")
ACTION_OPEN_URL = _pick("AttributeActionType.OpenUrl", QgsAction, "OpenUrl")
RASTER_STAT_MAX = _pick("RasterBandStatistic.Max", QgsRasterBandStats, "Max")
# Print layouts (the demo's titled maps): Qgis.LayoutUnit since 3.30; the exporter's result enum is scoped.
LAYOUT_MM = _pick("LayoutUnit.Millimeters", QgsUnitTypes, "LayoutMillimeters")
EXPORT_SUCCESS = QgsLayoutExporter.ExportResult.Success
LABEL_OVER_POINT = _pick("LabelPlacement.OverPoint", QgsPalLayerSettings, "OverPoint")


class FieldType:
    """Attribute field types: ``QMetaType.Type`` where QgsField takes it (3.38+), else ``QVariant.Type``.

    Both share the numeric codes of the types used here, so a field's ``type()`` from either API
    compares equal to these through :func:`field_type_code`.
    """

    if QGIS_VERSION_INT >= 33800:
        INT, UINT = QMetaType.Type.Int, QMetaType.Type.UInt
        LONG, ULONG = QMetaType.Type.LongLong, QMetaType.Type.ULongLong
        DOUBLE, BOOL, STRING = QMetaType.Type.Double, QMetaType.Type.Bool, QMetaType.Type.QString
        DATE, TIME, DATETIME = QMetaType.Type.QDate, QMetaType.Type.QTime, QMetaType.Type.QDateTime
        BYTES = QMetaType.Type.QByteArray
    else:  # pragma: no cover - QGIS < 3.38 (Debian 12's 3.22 runs this branch)
        INT, UINT = QVariant.Int, QVariant.UInt
        LONG, ULONG = QVariant.LongLong, QVariant.ULongLong
        DOUBLE, BOOL, STRING = QVariant.Double, QVariant.Bool, QVariant.String
        DATE, TIME, DATETIME = QVariant.Date, QVariant.Time, QVariant.DateTime
        BYTES = QVariant.ByteArray


def field_type_code(field_or_type: Any) -> int:
    """The numeric type code of a QgsField (or a type value), comparable with ``int(FieldType.X)``."""
    kind = field_or_type.type() if hasattr(field_or_type, "type") and callable(field_or_type.type) else field_or_type
    return int(kind)


def add_html_results(algorithm, results: dict) -> list[str]:
    """Put the run's HTML outputs in Processing's Results Viewer, as a toolbox run does; their paths."""
    import time

    from processing.core.ProcessingResults import resultsList
    from qgis.core import QgsProcessingOutputHtml

    added = []
    for out in algorithm.outputDefinitions():
        value = results.get(out.name())
        if isinstance(out, QgsProcessingOutputHtml) and value:
            resultsList.addResult(icon=algorithm.icon(), name=out.description(), timestamp=time.localtime(),
                                  result=str(value))
            added.append(str(value))
    return added


def handle_algorithm_results(algorithm, context, feedback, parameters: dict) -> Any:
    """Processing's own result loader; 3.22 had a ``showResults`` positional argument that later
    releases dropped, so it is called with keywords only (valid on every release)."""
    from processing.gui.Postprocessing import handleAlgorithmResults

    return handleAlgorithmResults(algorithm, context, feedback=feedback, parameters=parameters)


def is_null(value: Any) -> bool:
    """QGIS's NULL in each of its forms: None, ``qgis.core.NULL``, a null ``QVariant`` (PyQt5 hands out
    the latter two; Qt6 builds hand out None)."""
    return value is None or (isinstance(value, QVariant) and value.isNull())


def plain(value: Any) -> Any:
    """An attribute value as plain Python: NULL -> None, anything else unchanged."""
    return None if is_null(value) else value
