"""The layers reference photos add: a collection's photos and what was left out of it (the build), and each
geolocated photo's matched references with a line from its best guess to each (a run with references).

The build's GeoPackage is written beside the index under a temporary name and renamed into place, so a reader
sees the old layers or the new ones; a run's layers go into its own predictions.gpkg like the others.
"""

from __future__ import annotations

import os
from pathlib import Path

from qgis.core import QgsFeature, QgsGeometry, QgsPointXY, QgsProcessingException

from model_utils.safe_files import temp_sibling

from ...compat import WKB_LINESTRING, WKB_NO_GEOMETRY, WKB_POINT, FieldType
from . import run_layout
from .prediction_outputs import layer_writer

REFERENCES_FILE = "references.gpkg"
NO_POSITION = "no position: no EXIF GPS and no coordinates"

MATCH_FIELDS = [("photo", FieldType.STRING), ("photo_name", FieldType.STRING), ("rank", FieldType.INT),
                ("similarity", FieldType.DOUBLE), ("share", FieldType.DOUBLE), ("reference", FieldType.STRING),
                ("reference_name", FieldType.STRING), ("lat", FieldType.DOUBLE), ("lon", FieldType.DOUBLE)]
LINE_FIELDS = [("photo", FieldType.STRING), ("photo_name", FieldType.STRING), ("rank", FieldType.INT),
               ("similarity", FieldType.DOUBLE), ("reference", FieldType.STRING),
               ("reference_name", FieldType.STRING)]


def left_out_rows(built) -> list[tuple[str, str]]:
    """(photo, reason) of every photo a build left out (a model_utils BuildReport): no position, unreadable
    (the reason as the build said it), or a duplicate of another photo's content."""
    rows = [(path, NO_POSITION) for path in built.without_position]
    rows += [(path, message) for path, message in built.failed]
    rows += [(path, f"duplicate: same content as {kept}") for path, kept in built.duplicates]
    return rows


def _add(writer, fields, geometry, attributes: list, what: str) -> None:
    feature = QgsFeature(fields)
    if geometry is not None:
        feature.setGeometry(geometry)
    feature.setAttributes(attributes)
    if not writer.addFeature(feature):
        raise QgsProcessingException(f"Could not write {what}: {writer.errorMessage()}")


def write_collection_layers(folder: Path, collection, left_out: list[tuple[str, str]]) -> Path:
    """``folder``/references.gpkg: layer ``references`` (a point per photo of the collection: photo, photo_name,
    lat, lon) and layer ``left_out`` (no geometry: photo, photo_name, reason)."""
    final = folder / REFERENCES_FILE
    tmp = temp_sibling(final)
    try:
        writer, fields = layer_writer(tmp, "references", [
            ("photo", FieldType.STRING), ("photo_name", FieldType.STRING), ("lat", FieldType.DOUBLE),
            ("lon", FieldType.DOUBLE)], WKB_POINT, new_file=True)
        for path, (lat, lon) in zip(collection.paths, collection.latlon):
            _add(writer, fields, QgsGeometry.fromPointXY(QgsPointXY(float(lon), float(lat))),
                 [path, Path(path).name, float(lat), float(lon)], f"the reference photo {path}")
        del writer
        writer, fields = layer_writer(tmp, "left_out", [
            ("photo", FieldType.STRING), ("photo_name", FieldType.STRING), ("reason", FieldType.STRING)],
            WKB_NO_GEOMETRY)
        for path, reason in left_out:
            _add(writer, fields, None, [path, Path(path).name, reason], f"the left-out photo {path}")
        del writer
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final


def write_matches(path: Path, rows: list[tuple[object, str]]) -> int:
    """Layers ``matches`` (a point at each matched reference photo) and ``match_lines`` (from the photo's fused
    top-1 guess to each match) of a run's GeoPackage, from (FusedPrediction, label) rows; how many matches.
    One layer at a time: two open writers lock the GeoPackage."""
    writer, fields = layer_writer(path, run_layout.LAYER_MATCHES, MATCH_FIELDS, WKB_POINT)
    for pred, label, m, name in _each_match(rows):
        _add(writer, fields, QgsGeometry.fromPointXY(QgsPointXY(m.lon, m.lat)),
             [pred.source, label, m.rank, m.similarity, m.share, m.path, name, m.lat, m.lon],
             f"the match {name} of {pred.source}")
    del writer  # closes the layer
    writer, fields = layer_writer(path, run_layout.LAYER_MATCH_LINES, LINE_FIELDS, WKB_LINESTRING)
    count = 0
    for pred, label, m, name in _each_match(rows):
        best = QgsPointXY(float(pred.lon[0]), float(pred.lat[0]))
        _add(writer, fields, QgsGeometry.fromPolylineXY([best, QgsPointXY(m.lon, m.lat)]),
             [pred.source, label, m.rank, m.similarity, m.path, name], f"the line to {name} of {pred.source}")
        count += 1
    del writer
    return count


def _each_match(rows: list[tuple[object, str]]):
    for pred, label in rows:
        for m in pred.matches:
            yield pred, label, m, Path(m.path).name
