"""A layer field that holds photo paths, made useful: an action that opens the photo at full size, and identify
results and attribute forms that show the photo itself rather than its path. Shared by the prediction points and
the reference photo layers."""

from __future__ import annotations

from qgis.core import QgsAction, QgsEditorWidgetSetup, QgsVectorLayer

from .compat import ACTION_OPEN_URL


def add_open_photo_action(layer: QgsVectorLayer, field: str) -> None:
    """An action that opens the photo whose path is in ``field`` at full size (the map tip shows it small)."""
    layer.actions().addAction(QgsAction(ACTION_OPEN_URL, "Open photo", f'[% \'file://\' || "{field}" %]'))


def show_photos(layer: QgsVectorLayer, field: str) -> None:
    """The open-photo action, and the photo of ``field`` shown in identify results and forms."""
    add_open_photo_action(layer, field)
    layer.setEditorWidgetSetup(layer.fields().indexOf(field), QgsEditorWidgetSetup(
        "ExternalResource", {"DocumentViewer": 1, "DocumentViewerHeight": 200, "FileWidget": True}))
