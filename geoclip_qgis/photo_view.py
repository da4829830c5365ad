"""One photo (or query) of a run on the map: its raster, its regions and truth line only, its points selected
and labelled, the map on its 90% region.

The run keeps one raster layer (see ``run_layers``); showing another photo points that layer at the photo's
GeoTIFF and restyles it (its own range), so the layer tree never grows and nothing is added or removed. The
regions and truth lines get a filter on the photo, the points a selection (the other photos' guesses stay
visible, the photo's own highlighted).
"""

from __future__ import annotations

import os
from pathlib import Path

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsCsException,
    QgsDataProvider,
    QgsExpression,
    QgsLayerTreeGroup,
    QgsLayerTreeLayer,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsVectorLayer,
)

from .layers import label_points, refresh_legend, run_group, run_group_of, style_probability_raster
from .processing.io import run_layout as layout
from .run_index import PhotoRow, RunIndex
from .run_layers import open_run

WGS84 = "EPSG:4326"
MARGIN = 0.1  # the map shows this much more than the region on every side
POINTS_MARGIN_DEG = 5.0  # around the top-k points when a run has no regions
MERCATOR_LAT = 85.05  # a projected map cannot show the poles: a region reaching them is clipped there


def _same_path(a: str, b: str | Path) -> bool:
    return os.path.normpath(a) == os.path.normpath(str(b))


def raster_slot(group: QgsLayerTreeGroup, index: RunIndex) -> QgsLayerTreeLayer | None:
    """The run's raster layer (the first one of its rasters in the group: older runs loaded several)."""
    return next(iter(_raster_nodes(group, index)), None)


def _raster_nodes(group: QgsLayerTreeGroup, index: RunIndex) -> list[QgsLayerTreeLayer]:
    folder = index.folder / layout.RASTERS_FOLDER
    return [node for node in group.findLayers() if isinstance(node.layer(), QgsRasterLayer)
            and _same_path(os.path.dirname(node.layer().source()), folder)]


def run_layer(group: QgsLayerTreeGroup, index: RunIndex, name: str) -> QgsVectorLayer | None:
    """The run's layer ``name`` of its GeoPackage (predictions, credible_regions, truth) in ``group``."""
    for node in group.findLayers():
        layer = node.layer()
        if isinstance(layer, QgsVectorLayer):
            path, _, options = layer.source().partition("|")
            if _same_path(path, index.points) and f"layername={name}" in options.split("|"):
                return layer
    return None


def photo_filter(index: RunIndex, row: PhotoRow) -> str:
    """The expression (also valid as the GeoPackage's SQL) that picks ``row``'s features in the run's layers."""
    return f'"{index.source_field}" = {QgsExpression.quotedString(row.source)}'


def show_photo(project: QgsProject, canvas, index: RunIndex, row: PhotoRow) -> QgsRasterLayer | None:
    """Show ``row`` of the run ``index`` (loading the run if the project lost its group); its raster layer."""
    group = run_group_of(project, index.folder) or open_run(project, index.folder)
    run_group(project, group.name(), str(index.folder))  # the other runs fold away and switch off
    group.setItemVisibilityChecked(True)
    raster = _show_raster(project, group, index, row)
    where = photo_filter(index, row)
    for name in (layout.LAYER_REGIONS, layout.LAYER_TRUTH):
        layer = run_layer(group, index, name)
        if layer is not None and layer.subsetString() != where:
            layer.setSubsetString(where)
    points = run_layer(group, index, layout.LAYER_PREDICTIONS)
    if points is not None:
        points.selectByExpression(where)
        label_points(points, where)
    if canvas is not None:
        zoom_to(canvas, project, row, points)
    return raster


def show_all(project: QgsProject, index: RunIndex) -> None:
    """Every photo of the run again: no filter, no selection (the raster stays the last one shown)."""
    group = run_group_of(project, index.folder)
    if group is None:
        return
    for name in (layout.LAYER_REGIONS, layout.LAYER_TRUTH):
        layer = run_layer(group, index, name)
        if layer is not None and layer.subsetString():
            layer.setSubsetString("")
    points = run_layer(group, index, layout.LAYER_PREDICTIONS)
    if points is not None:
        points.removeSelection()
        label_points(points)


def _show_raster(project: QgsProject, group: QgsLayerTreeGroup, index: RunIndex,
                 row: PhotoRow) -> QgsRasterLayer | None:
    nodes = _raster_nodes(group, index)
    for extra in nodes[1:]:  # a run loaded before one raster layer per run: only the first one shows
        extra.setItemVisibilityChecked(False)
    node = nodes[0] if nodes else None
    if row.raster is None:  # the run wrote no rasters
        if node is not None:
            node.setItemVisibilityChecked(False)
        return None
    name = index.layer_name(row)
    if node is None:  # the analyst removed it: a new one takes its place, under the run's other layers
        layer = QgsRasterLayer(row.raster, name, "gdal")
        project.addMapLayer(layer, False)
        node = group.insertLayer(len(group.children()), layer)
    else:
        layer = node.layer()
        if not _same_path(layer.source(), row.raster):
            layer.setDataSource(row.raster, name, "gdal", QgsDataProvider.ProviderOptions())
        else:
            node.setItemVisibilityChecked(True)
            return layer
    style_probability_raster(layer)
    refresh_legend(layer)
    if layer.name() != name:
        layer.setName(name)
    node.setItemVisibilityChecked(True)
    return layer


def zoom_to(canvas, project: QgsProject, row: PhotoRow, points: QgsVectorLayer | None) -> None:
    """The map on ``row``'s region (with a margin), or around its top-k points when the run has no regions."""
    if row.bbox is not None:
        rect = QgsRectangle(*row.bbox)
    elif points is not None and points.selectedFeatureCount():
        rect = points.boundingBoxOfSelected()
        rect.grow(POINTS_MARGIN_DEG)
    else:
        return
    target = canvas.mapSettings().destinationCrs()
    if not target.isGeographic():
        rect = QgsRectangle(rect.xMinimum(), max(rect.yMinimum(), -MERCATOR_LAT), rect.xMaximum(),
                            min(rect.yMaximum(), MERCATOR_LAT))
    try:
        extent = QgsCoordinateTransform(QgsCoordinateReferenceSystem(WGS84), target, project).transformBoundingBox(rect)
    except QgsCsException:
        return  # a region this map's projection cannot show: the map stays where it is
    extent.scale(1 + 2 * MARGIN)
    canvas.setExtent(extent)
    canvas.refresh()
