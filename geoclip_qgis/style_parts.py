"""Pieces the layer styles share (the prediction layers' in ``layers``, the reference photo layers' in
``reference_styles``): a field of photo paths made useful (an action that opens the photo at full size; identify
results and attribute forms that show the photo itself rather than its path), and plain labels."""

from __future__ import annotations

from qgis.core import (
    QgsAction,
    QgsEditorWidgetSetup,
    QgsPalLayerSettings,
    QgsTextFormat,
    QgsVectorLayer,
    QgsVectorLayerSimpleLabeling,
)
from qgis.PyQt.QtGui import QColor

from .compat import ACTION_OPEN_URL


def add_open_photo_action(layer: QgsVectorLayer, field: str) -> None:
    """An action that opens the photo whose path is in ``field`` at full size (the map tip shows it small)."""
    layer.actions().addAction(QgsAction(ACTION_OPEN_URL, "Open photo", f'[% \'file://\' || "{field}" %]'))


def show_photos(layer: QgsVectorLayer, field: str) -> None:
    """The open-photo action, and the photo of ``field`` shown in identify results and forms."""
    add_open_photo_action(layer, field)
    layer.setEditorWidgetSetup(layer.fields().indexOf(field), QgsEditorWidgetSetup(
        "ExternalResource", {"DocumentViewer": 1, "DocumentViewerHeight": 200, "FileWidget": True}))


def simple_labels(layer: QgsVectorLayer, expression: str, size: float, colour: str) -> None:
    """Label every feature with ``expression`` in ``size`` points of ``colour``."""
    label = QgsPalLayerSettings()
    label.fieldName = expression
    label.isExpression = True
    text = QgsTextFormat()
    text.setSize(size)
    text.setColor(QColor(colour))
    label.setFormat(text)
    layer.setLabeling(QgsVectorLayerSimpleLabeling(label))
    layer.setLabelsEnabled(True)
