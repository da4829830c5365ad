"""Styles of the reference photo layers: the collection's photos, what was left out of it, and a run's matched
reference photos with the lines from each photo's best guess to them. Each map tip shows the reference photo
itself, as the prediction points show the geolocated one."""

from __future__ import annotations

from qgis.core import (
    QgsLineSymbol,
    QgsMarkerSymbol,
    QgsSingleSymbolRenderer,
    QgsVectorLayer,
)

from .style_parts import show_photos, simple_labels

REFERENCE_COLOUR = "#0d9488"


def style_references(layer: QgsVectorLayer) -> None:
    """Small teal squares; the map tip shows the photo."""
    layer.setRenderer(QgsSingleSymbolRenderer(QgsMarkerSymbol.createSimple(
        {"name": "square", "color": REFERENCE_COLOUR, "outline_color": "#ffffff", "size": "2.2"})))
    layer.setDisplayExpression('"photo_name"')
    layer.setMapTipTemplate('<b>[% "photo_name" %]</b><br>reference photo at [% format_number("lat", 5) %], '
                            '[% format_number("lon", 5) %]<br><img src="file://[% "photo" %]" width="240">')
    show_photos(layer, "photo")
    layer.triggerRepaint()


def style_left_out(layer: QgsVectorLayer) -> None:
    """A table: each photo left out of the collection with its reason."""
    layer.setDisplayExpression('"photo_name" || \': \' || "reason"')


def style_matches(layer: QgsVectorLayer) -> None:
    """Teal squares at the matched references, labelled by rank; the map tip shows the reference photo, which
    photo it matched and how closely."""
    layer.setRenderer(QgsSingleSymbolRenderer(QgsMarkerSymbol.createSimple(
        {"name": "square", "color": REFERENCE_COLOUR, "outline_color": "#134e4a", "size": "3"})))
    simple_labels(layer, '"rank"', 7, "#134e4a")
    layer.setDisplayExpression('"reference_name" || \' (match #\' || "rank" || \' of \' || "photo_name" || \')\'')
    layer.setMapTipTemplate('<b>[% "reference_name" %]</b> — match #[% "rank" %] of [% "photo_name" %]<br>'
                            'similarity [% format_number("similarity", 4) %], share of the probability '
                            '[% format_number("share", 4) %]<br><img src="file://[% "reference" %]" width="240">')
    show_photos(layer, "reference")
    layer.triggerRepaint()


def style_match_lines(layer: QgsVectorLayer) -> None:
    """Thin dotted teal lines from each photo's best guess to its matches."""
    layer.setRenderer(QgsSingleSymbolRenderer(QgsLineSymbol.createSimple(
        {"line_color": REFERENCE_COLOUR, "line_style": "dot", "line_width": "0.4"})))
    layer.setMapTipTemplate('[% "photo_name" %] → match #[% "rank" %] [% "reference_name" %] '
                            '(similarity [% format_number("similarity", 4) %])')
    layer.triggerRepaint()


STYLERS = {"references": style_references, "left_out": style_left_out, "matches": style_matches,
           "match_lines": style_match_lines}
