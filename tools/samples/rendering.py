"""Render QGIS layers to a PNG, the way the map canvas would draw them."""

from __future__ import annotations

from pathlib import Path


def world_basemap(path: Path | None = None):
    """The Natural Earth countries layer that ships with QGIS (resources/data/world_map.gpkg)."""
    from qgis.core import QgsApplication, QgsVectorLayer

    gpkg = path or Path(QgsApplication.pkgDataPath()) / "resources" / "data" / "world_map.gpkg"
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
    job.start()
    job.waitForFinished()
    out.parent.mkdir(parents=True, exist_ok=True)
    if not job.renderedImage().save(str(out), "PNG"):
        raise RuntimeError(f"could not write {out}")
    return out
