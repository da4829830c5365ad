"""Render QGIS layers to a PNG, the way the map canvas would draw them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def quiet_gdal() -> Iterator[None]:
    """GDAL's messages off while a map is drawn and written: QGIS's bundled world map trips a harmless date
    warning, and the layout exporter's attempt to georeference a PNG in place prints 'ERROR 6' although the
    image is written; neither means anything to the person reading the demo's output."""
    from osgeo import gdal

    gdal.PushErrorHandler("CPLQuietErrorHandler")
    try:
        yield
    finally:
        gdal.PopErrorHandler()


def world_basemap(path: Path | None = None):
    """The Natural Earth countries layer that ships with QGIS (resources/data/world_map.gpkg)."""
    from qgis.core import QgsApplication, QgsVectorLayer

    gpkg = path or Path(QgsApplication.pkgDataPath()) / "resources" / "data" / "world_map.gpkg"
    with quiet_gdal():
        layer = QgsVectorLayer(f"{gpkg}|layername=countries", "countries", "ogr")
    if not layer.isValid():
        raise RuntimeError(f"QGIS world basemap not found or unreadable: {gpkg}")
    return layer


def render_layers(layers, out: Path, extent=None, size=(1200, 600)) -> Path:
    """Draw ``layers`` (top first) into ``out`` (PNG) in EPSG:4326 and return the path."""
    from qgis.core import (
        QgsCoordinateReferenceSystem,
        QgsMapRendererParallelJob,
        QgsMapSettings,
        QgsRectangle,
    )
    from qgis.PyQt.QtCore import QSize
    from qgis.PyQt.QtGui import QColor

    settings = QgsMapSettings()
    settings.setLayers(list(layers))
    settings.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:4326"))
    settings.setBackgroundColor(QColor(255, 255, 255))
    settings.setOutputSize(QSize(*size))
    settings.setExtent(extent or QgsRectangle(-180, -90, 180, 90))
    job = QgsMapRendererParallelJob(settings)
    with quiet_gdal():
        job.start()
        job.waitForFinished()
    out.parent.mkdir(parents=True, exist_ok=True)
    if not job.renderedImage().save(str(out), "PNG"):
        raise RuntimeError(f"could not write {out}")
    return out


def labelled_points_layer(points: list[tuple[float, float, str]], name: str, marker: dict):
    """A memory point layer of (lat, lon, label), drawn with ``marker`` (QgsMarkerSymbol.createSimple
    properties) and labelled."""
    from qgis.core import (
        QgsFeature,
        QgsGeometry,
        QgsMarkerSymbol,
        QgsPalLayerSettings,
        QgsPointXY,
        QgsTextFormat,
        QgsVectorLayer,
        QgsVectorLayerSimpleLabeling,
    )
    from qgis.PyQt.QtGui import QColor

    layer = QgsVectorLayer("Point?crs=EPSG:4326&field=name:string", name, "memory")
    features = []
    for lat, lon, label in points:
        feature = QgsFeature(layer.fields())
        feature.setAttributes([label])
        feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(lon, lat)))
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    layer.renderer().setSymbol(QgsMarkerSymbol.createSimple(marker))
    settings = QgsPalLayerSettings()
    settings.fieldName = "name"
    text = QgsTextFormat()
    text.setSize(10)
    text.setColor(QColor("#111111"))
    buffer = text.buffer()
    buffer.setEnabled(True)
    buffer.setSize(1.0)
    text.setBuffer(buffer)
    settings.setFormat(text)
    settings.displayAll = True  # every label, even where they crowd
    layer.setLabeling(QgsVectorLayerSimpleLabeling(settings))
    layer.setLabelsEnabled(True)
    return layer


def render_titled_map(layers, out: Path, title: str, subtitle: str, legend_layers, width_mm: float = 297,
                      dpi: int = 110) -> Path:
    """A print layout: ``title`` and ``subtitle`` above a world map of ``layers`` (top first), a legend of
    ``legend_layers`` in columns below it, exported to ``out`` (PNG)."""
    map_w = width_mm - 12
    size_mm = (width_mm, 22 + map_w / 2 + 40)
    from qgis.core import (
        QgsCoordinateReferenceSystem,
        QgsLayerTree,
        QgsLayoutExporter,
        QgsLayoutItemLabel,
        QgsLayoutItemLegend,
        QgsLayoutItemMap,
        QgsLayoutPoint,
        QgsLayoutSize,
        QgsPrintLayout,
        QgsProject,
        QgsRectangle,
    )
    from qgis.PyQt.QtGui import QFont

    from geoclip_qgis.compat import EXPORT_SUCCESS, LAYOUT_MM

    project = QgsProject.instance()
    layout = QgsPrintLayout(project)
    layout.initializeDefaults()
    layout.pageCollection().page(0).setPageSize(QgsLayoutSize(*size_mm, LAYOUT_MM))
    heading = QgsLayoutItemLabel(layout)
    heading.setText(f"{title}\n{subtitle}")
    heading.setFont(QFont("DejaVu Sans", 13))
    heading.attemptMove(QgsLayoutPoint(6, 4, LAYOUT_MM))
    heading.attemptResize(QgsLayoutSize(size_mm[0] - 12, 16, LAYOUT_MM))
    layout.addLayoutItem(heading)
    world = QgsLayoutItemMap(layout)
    world.setCrs(QgsCoordinateReferenceSystem("EPSG:4326"))
    world.attemptMove(QgsLayoutPoint(6, 22, LAYOUT_MM))
    world.attemptResize(QgsLayoutSize(map_w, map_w / 2, LAYOUT_MM))
    world.setLayers(list(layers))
    world.setExtent(QgsRectangle(-180, -90, 180, 90))
    layout.addLayoutItem(world)
    legend = QgsLayoutItemLegend(layout)
    legend.setLinkedMap(world)
    legend.setAutoUpdateModel(False)
    tree = QgsLayerTree()
    for layer in legend_layers:
        tree.addLayer(layer)
    legend.model().setRootGroup(tree)
    legend.setTitle("")
    legend.setColumnCount(len(legend_layers))
    legend.attemptMove(QgsLayoutPoint(6, 24 + map_w / 2, LAYOUT_MM))
    layout.addLayoutItem(legend)
    settings = QgsLayoutExporter.ImageExportSettings()
    settings.dpi = dpi
    out.parent.mkdir(parents=True, exist_ok=True)
    with quiet_gdal():
        result = QgsLayoutExporter(layout).exportToImage(str(out), settings)
    if result != EXPORT_SUCCESS:
        raise RuntimeError(f"could not write {out} (layout export error {result})")
    return out
