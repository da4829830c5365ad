"""Regenerate the QML styles shipped in resources/styles (run once when a style changes).

The styles are built with the QGIS API so they are valid for QGIS 3.22+, then saved as QML.
The probability ramp is written for values 0..1; ``geoclip_qgis.layers`` rescales it to each
raster's maximum when the layer is added.
"""

from __future__ import annotations

import sys
from pathlib import Path

from qgis.core import (
    QgsApplication,
    QgsColorRampShader,
    QgsFeatureRequest,
    QgsMarkerSymbol,
    QgsPalLayerSettings,
    QgsProperty,
    QgsRasterLayer,
    QgsRasterShader,
    QgsSimpleMarkerSymbolLayer,
    QgsSingleBandPseudoColorRenderer,
    QgsSingleSymbolRenderer,
    QgsSymbolLayer,
    QgsTextBufferSettings,
    QgsTextFormat,
    QgsVectorLayer,
    QgsVectorLayerSimpleLabeling,
)
from qgis.PyQt.QtGui import QColor

from geoclip_qgis.compat import LABEL_OVER_POINT, SHADER_INTERPOLATED

STYLES = Path(__file__).resolve().parents[1] / "resources" / "styles"

# (fraction of the raster maximum, colour, alpha): transparent at zero so the basemap shows.
RAMP = [
    (0.0, "#000004", 0),
    (0.02, "#3b0f70", 0),
    (0.08, "#8c2981", 120),
    (0.25, "#de4968", 170),
    (0.5, "#fe9f6d", 210),
    (1.0, "#fcfdbf", 240),
]


def probability_raster_style(tmp: Path) -> None:
    import numpy as np
    from osgeo import gdal

    path = tmp / "p.tif"
    ds = gdal.GetDriverByName("GTiff").Create(str(path), 4, 4, 1, gdal.GDT_Float32)
    ds.SetGeoTransform((0, 1, 0, 4, 0, -1))
    ds.GetRasterBand(1).WriteArray(np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4))
    ds = None
    layer = QgsRasterLayer(str(path), "p")
    fcn = QgsColorRampShader(0.0, 1.0)
    fcn.setColorRampType(SHADER_INTERPOLATED)
    items = []
    for value, colour, alpha in RAMP:
        c = QColor(colour)
        c.setAlpha(alpha)
        items.append(QgsColorRampShader.ColorRampItem(value, c, f"{value:g} × max"))
    fcn.setColorRampItemList(items)
    shader = QgsRasterShader()
    shader.setRasterShaderFunction(fcn)
    renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), 1, shader)
    renderer.setClassificationMin(0.0)
    renderer.setClassificationMax(1.0)
    layer.setRenderer(renderer)
    layer.saveNamedStyle(str(STYLES / "probability_raster.qml"))


def prediction_points_style() -> None:
    layer = QgsVectorLayer("Point?crs=EPSG:4326&field=photo:string&field=rank:integer&field=prob:double", "p", "memory")
    marker = QgsSimpleMarkerSymbolLayer()
    marker.setColor(QColor("#22d3ee"))
    marker.setStrokeColor(QColor("#0f172a"))
    marker.setStrokeWidth(0.4)
    # Size grows with probability; rank 1 drawn as a star. The plugin replaces the size with one relative to
    # the best guess of the same photo or query (layers.relative_size): never an aggregate such as maximum()
    # here, which canvas render threads would evaluate on the live layer (not thread safe in QGIS).
    marker.setDataDefinedProperty(
        QgsSymbolLayer.Property.PropertySize, QgsProperty.fromExpression("2.5 + 5 * sqrt(coalesce(\"prob\", 0))"))
    marker.setDataDefinedProperty(
        QgsSymbolLayer.Property.PropertyName,
        QgsProperty.fromExpression("""CASE WHEN "rank" = 1 THEN 'star' ELSE 'circle' END"""))
    marker.setDataDefinedProperty(
        QgsSymbolLayer.Property.PropertyFillColor,
        QgsProperty.fromExpression("""CASE WHEN "rank" = 1 THEN '#facc15' ELSE '#22d3ee' END"""))
    symbol = QgsMarkerSymbol()
    symbol.changeSymbolLayer(0, marker)
    renderer = QgsSingleSymbolRenderer(symbol)
    # Draw rank 1 last (on top) where several guesses share a place.
    renderer.setOrderBy(QgsFeatureRequest.OrderBy([QgsFeatureRequest.OrderByClause("rank", False)]))
    renderer.setOrderByEnabled(True)
    layer.setRenderer(renderer)
    label = QgsPalLayerSettings()
    label.fieldName = "rank"
    label.placement = LABEL_OVER_POINT
    label.yOffset = -3.0
    fmt = QgsTextFormat()
    fmt.setSize(8)
    fmt.setColor(QColor("#0f172a"))
    buffer = QgsTextBufferSettings()
    buffer.setEnabled(True)
    buffer.setColor(QColor("white"))
    buffer.setSize(0.8)
    fmt.setBuffer(buffer)
    label.setFormat(fmt)
    layer.setLabeling(QgsVectorLayerSimpleLabeling(label))
    layer.setLabelsEnabled(True)
    layer.saveNamedStyle(str(STYLES / "prediction_points.qml"))


def main() -> None:
    import tempfile

    app = QgsApplication([], False)
    app.initQgis()
    STYLES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        probability_raster_style(Path(tmp))
    prediction_points_style()
    for qml in sorted(STYLES.glob("*.qml")):
        print("wrote", qml)
    app.exitQgis()


if __name__ == "__main__":
    sys.exit(main())
