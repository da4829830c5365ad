"""Credible regions for evaluating given coordinates: does each photo's true position lie inside its
50% / 90% region? The regions come from a polygon layer (by default the ``credible_regions`` layer a
geolocation run wrote beside its predictions); a truth counts as inside when it lies in the polygon or on its
edge, as in a run (``model_utils.analysis.truth_inside``: whole cells, edges included)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qgis.core import (
    QgsCoordinateTransform,
    QgsCsException,
    QgsDistanceArea,
    QgsFeatureRequest,
    QgsGeometry,
    QgsPointXY,
    QgsProcessingException,
    QgsProcessingFeatureSource,
    QgsProviderRegistry,
    QgsVectorLayer,
    QgsVectorLayerFeatureSource,
    QgsWkbTypes,
)

from ...compat import GEOMETRY_POLYGON, SKIP_GEOMETRY_CHECKS, plain
from .geometry import WGS84

REGIONS_LAYER = "credible_regions"
KEY_FIELDS = ("photo", "query", "path", "filepath", "file_path")  # as the predictions' photo field
NAME_FIELDS = ("photo_name", "label", "name")


@dataclass(frozen=True)
class RegionSource:
    """A polygon layer of credible regions, read on the worker thread: its features, CRS and name."""

    source: Any  # a QgsProcessingFeatureSource or QgsVectorLayerFeatureSource
    crs: Any
    name: str
    layer: Any = None  # the QgsVectorLayer a default source was opened from, kept alive with it


def run_regions_beside(layer) -> RegionSource | None:
    """The ``credible_regions`` layer in the same GeoPackage as ``layer`` (a run's predictions), or None."""
    if layer is None:
        return None
    path = QgsProviderRegistry.instance().decodeUri(layer.providerType(), layer.source()).get("path") or ""
    if not path.lower().endswith(".gpkg"):
        return None
    regions = QgsVectorLayer(f"{path}|layername={REGIONS_LAYER}", REGIONS_LAYER, "ogr")
    if not regions.isValid() or QgsWkbTypes.geometryType(regions.wkbType()) != GEOMETRY_POLYGON:
        return None
    return RegionSource(QgsVectorLayerFeatureSource(regions), regions.crs(), f"{REGIONS_LAYER} in {path}", regions)


def checked(source, name: str) -> RegionSource:
    """A chosen regions source, or a clear error when it cannot be one (not polygons, no level field)."""
    if QgsWkbTypes.geometryType(source.wkbType()) != GEOMETRY_POLYGON:
        raise QgsProcessingException(f"The credible regions layer '{name}' is not a polygon layer.")
    fields = source.fields()
    if fields.lookupField("level") < 0 or not any(fields.lookupField(f) >= 0 for f in KEY_FIELDS + NAME_FIELDS):
        raise QgsProcessingException(
            f"The credible regions layer '{name}' needs a 'level' field and a photo field (one of "
            f"{', '.join(KEY_FIELDS + NAME_FIELDS)}), as in the credible_regions layer of a geolocation run; "
            f"its fields are: {', '.join(fields.names()) or 'none'}.")
    return RegionSource(source, source.sourceCrs(), name)


def photo_regions(regions: RegionSource, rows: list[dict], context, feedback) -> tuple[int, int]:
    """Set each row's ``regions`` to ((level, area km², truth inside or None), ...) from the layer's features
    of the same photo; returns (photos with regions, region features that match no photo)."""
    fields = regions.source.fields()
    names = fields.names()

    def field(candidates) -> str:
        return next((names[fields.lookupField(c)] for c in candidates if fields.lookupField(c) >= 0), "")

    key_field, name_field, area_field = field(KEY_FIELDS), field(NAME_FIELDS), field(("area_km2",))
    by_key = {r["photo"]: r for r in rows}
    by_name = {r["photo_name"]: r for r in rows if r["photo_name"] is not None}
    to_regions = QgsCoordinateTransform(WGS84, regions.crs, context.transformContext())
    ellipsoid = QgsDistanceArea()
    ellipsoid.setSourceCrs(regions.crs, context.transformContext())
    ellipsoid.setEllipsoid("WGS84")
    found: dict[int, dict[float, tuple[float, float, bool | None]]] = {}
    unmatched = 0
    for feature in _features(regions.source):
        if feedback.isCanceled():
            break
        key = plain(feature[key_field]) if key_field else None
        name = plain(feature[name_field]) if name_field else None
        row = by_key.get(str(key)) if key is not None else None
        row = row or (by_name.get(str(name)) if name is not None else None)
        level, geometry = plain(feature["level"]), feature.geometry()
        if row is None or level is None or geometry is None or geometry.isEmpty():
            unmatched += 1
            continue
        area = plain(feature[area_field]) if area_field else None
        if area is None:
            area = ellipsoid.measureArea(geometry) / 1e6  # QgsDistanceArea gives m² on the ellipsoid
        level = float(level)
        found.setdefault(id(row), {})[level] = (level, float(area), _inside(geometry, row, to_regions))
    for row in rows:
        row["regions"] = tuple(v for _, v in sorted(found.get(id(row), {}).items()))
    return len(found), unmatched


def _features(source):
    """All features; a region's validity is not this algorithm's business (the two halves of a region across
    the antimeridian touch along an edge in a Pacific CRS, which QGIS's checks call invalid)."""
    if isinstance(source, QgsProcessingFeatureSource):
        return source.getFeatures(QgsFeatureRequest(), SKIP_GEOMETRY_CHECKS)
    return source.getFeatures(QgsFeatureRequest())


def _inside(geometry: QgsGeometry, row: dict, to_regions: QgsCoordinateTransform) -> bool | None:
    """Is the row's true position in the region (edges included)? None without one."""
    if row["true_lat"] is None or row["true_lon"] is None:
        return None
    lon = (row["true_lon"] + 180.0) % 360.0 - 180.0  # 0..360 fields too; the map's west edge is -180
    for x in (lon, 180.0) if lon == -180.0 else (lon,):  # the antimeridian is both edges of the map
        try:
            point = to_regions.transform(QgsPointXY(x, row["true_lat"]))
        except QgsCsException:
            continue  # not representable in the regions' CRS: not inside any of its polygons
        truth = QgsGeometry.fromPointXY(point)
        # part by part: the halves of a region across the antimeridian may touch in a Pacific CRS, which
        # makes the whole invalid for GEOS though each part is fine
        if any(part.intersects(truth) for part in geometry.asGeometryCollection()):
            return True
    return False
