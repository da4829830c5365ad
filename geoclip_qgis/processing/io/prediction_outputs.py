"""What every geolocation run writes besides rasters: run folder names, the top-k points layer, the report.

Shared by ``geoclip:geolocatephotos`` and ``geoclip:geolocatetext`` so both produce the same files.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from qgis.core import (
    QgsCoordinateTransformContext,
    QgsFeature,
    QgsField,
    QgsFields,
    QgsGeometry,
    QgsPointXY,
    QgsProcessingException,
    QgsRectangle,
    QgsVectorFileWriter,
)

from model_utils.safe_files import next_free

from ...compat import WKB_LINESTRING, WKB_MULTIPOLYGON, WKB_NO_GEOMETRY, WKB_POINT, FieldType
from ...paths import file_safe
from . import run_layout
from .geometry import WGS84


def new_run_name(root: Path) -> str:
    stamp = dt.datetime.now().strftime("geoclip_%Y%m%d_%H%M%S")
    return next_free(stamp, lambda name: (root / name).exists() or (root / f".{name}.part").exists())


def unique_stem(stem: str, used: set[str]) -> str:
    name = next_free(file_safe(stem, "photo"), lambda candidate: candidate.lower() in used)
    used.add(name.lower())
    return name


POINT_FIELDS = [("rank", FieldType.INT), ("prob", FieldType.DOUBLE), ("lat", FieldType.DOUBLE),
                ("lon", FieldType.DOUBLE), ("true_lat", FieldType.DOUBLE), ("true_lon", FieldType.DOUBLE),
                ("error_km", FieldType.DOUBLE)]


def points_writer(path: Path, source_fields: tuple[str, str]):
    fields = QgsFields()
    for name, kind in [(source_fields[0], FieldType.STRING), (source_fields[1], FieldType.STRING), *POINT_FIELDS]:
        fields.append(QgsField(name, kind))
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    options.layerName = "predictions"
    writer = QgsVectorFileWriter.create(str(path), fields, WKB_POINT, WGS84,
                                        QgsCoordinateTransformContext(), options)
    if writer.hasError() != QgsVectorFileWriter.WriterError.NoError:
        raise QgsProcessingException(f"Could not create {path}: {writer.errorMessage()}")
    return writer, fields, path


def layer_writer(path: Path, layer: str, columns: list[tuple[str, object]], wkb_type, new_file: bool = False) -> tuple:
    """(writer, fields) of a new layer ``layer`` in the run's GeoPackage beside the predictions (``new_file``:
    the GeoPackage is made with it)."""
    fields = QgsFields()
    for name, kind in columns:
        fields.append(QgsField(name, kind))
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    options.layerName = layer
    options.actionOnExistingFile = (QgsVectorFileWriter.ActionOnExistingFile.CreateOrOverwriteFile if new_file
                                    else QgsVectorFileWriter.ActionOnExistingFile.CreateOrOverwriteLayer)
    writer = QgsVectorFileWriter.create(str(path), fields, wkb_type, WGS84, QgsCoordinateTransformContext(), options)
    if writer.hasError() != QgsVectorFileWriter.WriterError.NoError:
        raise QgsProcessingException(f"Could not add the {layer} layer to {path}: {writer.errorMessage()}")
    return writer, fields


def write_truth_lines(path: Path, rows: list[dict], label_of) -> bool:
    """Layer ``truth`` of the run's GeoPackage: per photo with EXIF GPS, a line from its top-1 guess to
    the EXIF position (straight in degrees; it may cross the map for guesses across the antimeridian)."""
    rows = [r for r in rows if r.get("true_lat") is not None]
    if not rows:
        return False
    writer, fields = layer_writer(path, "truth", [
        ("photo", FieldType.STRING), ("photo_name", FieldType.STRING), ("error_km", FieldType.DOUBLE),
        ("true_lat", FieldType.DOUBLE), ("true_lon", FieldType.DOUBLE)], WKB_LINESTRING)
    for row in rows:
        feature = QgsFeature(fields)
        feature.setGeometry(QgsGeometry.fromPolylineXY([QgsPointXY(row["pred_lon"], row["pred_lat"]),
                                                        QgsPointXY(row["true_lon"], row["true_lat"])]))
        feature.setAttributes([row["photo"], label_of(row["photo"]), row["error_km"], row["true_lat"],
                               row["true_lon"]])
        if not writer.addFeature(feature):
            raise QgsProcessingException(f"Could not write the truth line of {row['photo']}: {writer.errorMessage()}")
    del writer  # closes the layer
    return True


def region_geometry(boxes, step: float) -> QgsGeometry:
    """A region's cell boxes (rows of xmin, ymin, xmax, ymax) dissolved into one multipolygon by QGIS's own
    geometry engine (not shapely: its wheel's GEOS clashes with QGIS's in one process), with a vertex every
    ``step`` degrees along its edges so it keeps its shape in any CRS (a polar cap's edge is a circle in a
    polar projection)."""
    union = QgsGeometry.unaryUnion([QgsGeometry.fromRect(QgsRectangle(*map(float, b))) for b in boxes])
    union = union.densifyByDistance(step)
    union.convertToMultiType()
    return union


MASS_NOTE_BELOW = 0.99  # a raster holding less of the model's probability than this gets a note in the log


def write_region_layer(path: Path, regions, source_fields: tuple[str, str]) -> int:
    """Layer ``credible_regions`` of a GeoPackage from ``regions``: (source, label, QgsGeometry, level, area km²,
    enclosed, raster_mass) each; returns how many were written. The one layout of every run's regions."""
    writer, fields = layer_writer(path, "credible_regions", [
        (source_fields[0], FieldType.STRING), (source_fields[1], FieldType.STRING), ("level", FieldType.DOUBLE),
        ("area_km2", FieldType.DOUBLE), ("n_parts", FieldType.INT), ("enclosed", FieldType.DOUBLE),
        ("raster_mass", FieldType.DOUBLE)], WKB_MULTIPOLYGON)
    count = 0
    for source, label, geometry, level, area_km2, enclosed, raster_mass in regions:
        geometry.convertToMultiType()
        feature = QgsFeature(fields)
        feature.setGeometry(geometry)
        feature.setAttributes([source, label, level, area_km2, geometry.constGet().numGeometries(), enclosed,
                               raster_mass])
        if not writer.addFeature(feature):
            raise QgsProcessingException(f"Could not write the credible region of {source}: {writer.errorMessage()}")
        count += 1
    del writer  # closes the layer
    return count


def write_credible_regions(path: Path, rows: list[tuple[str, str, object, float]], source_fields: tuple[str, str],
                           feedback=None) -> bool:
    """Layer ``credible_regions`` of the run's GeoPackage: per input and level its region (model_utils
    RegionCells) with level, geodesic area, parts, the share of its raster's probability it holds
    (``enclosed``) and the share of the model's whole probability that raster holds (``raster_mass``: 1 for
    the world; for a smaller extent the regions are conditional on it, which the log says once)."""
    if not rows:
        return False
    write_region_layer(path, ((source, label, region_geometry(region.boxes, region.cell_size), region.level,
                               region.area_km2, region.enclosed, raster_mass)
                              for source, label, region, raster_mass in rows), source_fields)
    least = min(mass for *_, mass in rows)
    if feedback is not None and least < MASS_NOTE_BELOW:
        feedback.pushInfo(f"Credible regions are shares of each raster's own probability: the raster extent holds "
                          f"as little as {least:.1%} of the model's probability (field raster_mass), so a region's "
                          f"level and 'enclosed' are conditional on the extent (e.g. 90% means 90% of what falls "
                          f"inside it).")
    return True


def write_raster_index(path: Path, rasters: list[tuple[str, str, str]], source_field: str) -> bool:
    """Layer ``rasters`` of the run's GeoPackage (no geometry): per photo (or query) its raster file, relative to
    the run folder. ``rasters``: (file name, label, source) in the rasters folder. Only the raster being looked at
    is a map layer; the results browser finds the others here."""
    if not rasters:
        return False
    writer, fields = layer_writer(path, run_layout.LAYER_RASTERS, [(source_field, FieldType.STRING),
                                                                    ("raster", FieldType.STRING)], WKB_NO_GEOMETRY)
    for name, _label, source in rasters:
        feature = QgsFeature(fields)
        feature.setAttributes([source, f"{run_layout.RASTERS_FOLDER}/{name}"])
        if not writer.addFeature(feature):
            raise QgsProcessingException(f"Could not list the raster of {source}: {writer.errorMessage()}")
    del writer  # closes the layer
    return True


def area_text(km2: float) -> str:
    """An area for a log line: '1.2 million km²', '12,300 km²', '85 km²'."""
    if km2 >= 1e6:
        return f"{km2 / 1e6:.1f} million km²"
    return f"{km2:,.0f} km²" if km2 >= 1000 else f"{km2:.0f} km²"


def write_points(writer, fields: QgsFields, pred, label: str) -> None:
    """One point per top-k guess; with EXIF GPS, each guess's geodesic error in km."""
    truth = pred.gps
    errors = pred.errors_km if truth else [None] * len(pred.lat)
    for rank, (lat, lon, prob, err) in enumerate(zip(pred.lat, pred.lon, pred.prob, errors), start=1):
        feature = QgsFeature(fields)
        feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(float(lon), float(lat))))
        feature.setAttributes([
            pred.source, label, rank, float(prob), float(lat), float(lon),
            truth[0] if truth else None, truth[1] if truth else None, None if err is None else float(err),
        ])
        if not writer.addFeature(feature):
            raise QgsProcessingException(f"Could not write the prediction for {pred.source}: {writer.errorMessage()}")


def accuracy_report(rows: list[dict], folder: Path, feedback, skipped: tuple[str, ...] = ()) -> str:
    """Write report/accuracy.{csv,html} (+ per_photo.csv; the ``skipped`` lines of the folder scan listed too)
    and return the HTML file name."""
    from model_utils.evaluation.accuracy_report import write_accuracy_report

    paths = write_accuracy_report(rows, folder, title="GeoCLIP geolocation accuracy", skipped=skipped)
    with_truth = sum(row.get("true_lat") is not None for row in rows)
    feedback.pushInfo(f"Accuracy report written: {with_truth} photo(s) with EXIF GPS, "
                      f"{len(rows) - with_truth} without (left out of the figures)")
    return Path(paths.html).name
