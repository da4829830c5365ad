"""The prediction points' style may only hold expressions that canvas render threads can evaluate safely.

An aggregate (``maximum("prob", group_by:=...)``) in the size made every render thread read the live layer;
removing the layers while the canvas drew them then corrupted memory, and QGIS 3.40 crashed later, in the
garbage collector during a plugin unload (test_dock_session), or hung at exit."""

from __future__ import annotations

import pytest
from qgis.core import (
    QgsExpression,
    QgsExpressionContext,
    QgsExpressionContextUtils,
    QgsFeature,
    QgsSymbolLayer,
    QgsVectorLayer,
)

from geoclip_qgis.layers import style_prediction_points


def _points() -> QgsVectorLayer:
    layer = QgsVectorLayer("Point?crs=EPSG:4326&field=photo:string&field=photo_name:string&field=rank:integer"
                           "&field=prob:double", "points", "memory")
    rows = [("/p/a.jpg", "a.jpg", 1, 0.4), ("/p/a.jpg", "a.jpg", 2, 0.1),
            ("/p/it's.jpg", "it's.jpg", 1, 0.02), ("/p/it's.jpg", "it's.jpg", 2, 0.005)]
    features = []
    for row in rows:
        feature = QgsFeature(layer.fields())
        feature.setAttributes(list(row))
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    return layer


def _expressions(symbols) -> list[str]:
    """Every data-defined expression of the symbols' layers."""
    found = []
    for symbol in symbols:
        for symbol_layer in symbol.symbolLayers():
            properties = symbol_layer.dataDefinedProperties()
            found += [properties.property(key).expressionString() for key in properties.propertyKeys()]
    return [text for text in found if text]


def _aggregates(expressions: list[str]) -> list[str]:
    """The expressions that call an aggregate function (which reads the whole layer)."""
    aggregates = {f.name() for f in QgsExpression.Functions() if "Aggregates" in f.groups()}
    assert "maximum" in aggregates
    return [text for text in expressions if set(QgsExpression(text).referencedFunctions()) & aggregates]


def test_points_are_sized_per_photo_without_aggregates(qgis_app):  # noqa: ARG001 - needs the app
    layer = _points()
    style_prediction_points(layer)
    categories = layer.renderer().categories()  # copies: kept while their symbols are read
    expressions = _expressions([category.symbol() for category in categories])
    assert expressions and _aggregates(expressions) == []
    size = {category.value(): category.symbol().symbolLayer(0).dataDefinedProperties().property(
        QgsSymbolLayer.Property.PropertySize).expressionString() for category in categories}  # one per photo
    context = QgsExpressionContext(QgsExpressionContextUtils.globalProjectLayerScopes(layer))
    sizes = {}
    for feature in layer.getFeatures():
        context.setFeature(feature)
        sizes[(feature["photo_name"], feature["rank"])] = QgsExpression(size[feature["photo_name"]]).evaluate(context)
    # relative to the best guess of the same photo, whatever its probability
    assert sizes[("a.jpg", 1)] == pytest.approx(7.5) and sizes[("it's.jpg", 1)] == pytest.approx(7.5)
    assert sizes[("a.jpg", 2)] == pytest.approx(5.0) and sizes[("it's.jpg", 2)] == pytest.approx(5.0)


def test_rank_labels_on_a_large_run_show_for_the_photo_looked_at(qgis_app):  # noqa: ARG001 - needs the app
    from qgis.core import QgsPalLayerSettings

    from geoclip_qgis.layers import LABELS_ALL_MAX, label_points

    def shown(layer) -> str:
        settings = layer.labeling().settings()  # a copy: kept while its properties (a reference into it) are read
        return settings.dataDefinedProperties().property(QgsPalLayerSettings.Property.Show).expressionString()

    small = _points()
    style_prediction_points(small)
    assert small.labelsEnabled() and shown(small) == "TRUE"  # a handful: every rank labelled
    large = _points()
    large.dataProvider().addFeatures([QgsFeature(large.fields()) for _ in range(LABELS_ALL_MAX)])
    style_prediction_points(large)
    assert shown(large) == "FALSE"  # placing thousands of labels is what made a large run slow to draw
    label_points(large, "\"photo\" = '/p/a.jpg'")  # the results browser shows a photo: its ranks only
    assert shown(large) == "\"photo\" = '/p/a.jpg'"
    label_points(large)
    assert shown(large) == "FALSE"


def test_the_shipped_points_style_has_no_aggregate(qgis_app):  # noqa: ARG001 - needs the app
    from geoclip_qgis.layers import POINTS_STYLE
    from geoclip_qgis.paths import resource

    layer = _points()
    layer.loadNamedStyle(resource(POINTS_STYLE))
    expressions = _expressions([layer.renderer().symbol()])
    assert expressions and _aggregates(expressions) == []
