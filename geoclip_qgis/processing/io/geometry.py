"""Layer geometries -> WGS84 [lat, lon], with one stated rule for every geometry type.

Rule: points as they are; multipoints and lines by their centroid; polygons by a point on their
surface (a centroid can fall outside a concave polygon). The point is taken in the layer's CRS
and then transformed to EPSG:4326. NULL or empty geometries, and points the transform cannot
handle, are skipped with a reason so callers can count them in the log.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsCsException,
    QgsFeature,
    QgsFeatureRequest,
    QgsGeometry,
    QgsPointXY,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeatureSource,
    QgsProcessingFeedback,
    QgsWkbTypes,
)

from ...compat import GEOMETRY_POINT, GEOMETRY_POLYGON, SKIP_GEOMETRY_CHECKS, WKB_POINT, plain

WGS84 = QgsCoordinateReferenceSystem("EPSG:4326")

SKIP_NULL = "NULL or empty geometry"
SKIP_TRANSFORM = "could not be transformed to WGS84"
CANCEL_CHECK_EVERY = 256  # features between cancel checks: each check is a call into QGIS


def representative_point(geometry: QgsGeometry) -> QgsGeometry | None:
    """The one point that stands for a geometry (see the module rule), or None when empty."""
    if geometry is None or geometry.isNull() or geometry.isEmpty():
        return None
    kind = geometry.type()
    if kind == GEOMETRY_POINT and not geometry.isMultipart():
        point = geometry
    elif kind == GEOMETRY_POLYGON:
        point = geometry.pointOnSurface()
    else:
        point = geometry.centroid()
    if point is None or point.isNull() or point.isEmpty():
        return None
    return point


def sample_points(geometry: QgsGeometry, target: int = 64) -> list[QgsPointXY]:
    """Points that stand for a whole geometry, in its own CRS: a polygon's points on a regular grid inside
    it (about ``target`` of them; its point on surface when it is too thin for the grid), a line's points
    spaced evenly along it, a (multi)point's own points. "Places like this region" averages them."""
    if geometry is None or geometry.isNull() or geometry.isEmpty():
        return []
    kind = geometry.type()
    if kind == GEOMETRY_POINT:
        return [QgsPointXY(v.x(), v.y()) for v in geometry.vertices()]
    if kind == GEOMETRY_POLYGON:
        box = geometry.boundingBox()
        step = math.sqrt(max(box.width() * box.height(), 1e-18) / target)
        xs = box.xMinimum() + step * (np.arange(max(1, int(box.width() / step))) + 0.5)
        ys = box.yMinimum() + step * (np.arange(max(1, int(box.height() / step))) + 0.5)
        inside = [QgsPointXY(x, y) for y in ys for x in xs
                  if geometry.contains(QgsGeometry.fromPointXY(QgsPointXY(x, y)))]
        return inside or [geometry.pointOnSurface().asPoint()]
    length = geometry.length()
    return [geometry.interpolate(length * (i + 0.5) / target).asPoint() for i in range(target)] if length > 0 \
        else [geometry.centroid().asPoint()]


def layer_folder(layer) -> Path | None:
    """The folder of a file-based layer (relative photo paths in its fields are resolved against it); None
    for a layer that is not a file or whose folder is gone."""
    if layer is None:
        return None
    from qgis.core import QgsProviderRegistry

    path = QgsProviderRegistry.instance().decodeUri(layer.providerType(), layer.source()).get("path") or ""
    folder = Path(path).parent if path else None
    return folder if folder is not None and folder.is_dir() else None


PATH_FIELD_GUESSES = ("photo", "path", "filepath", "file_path", "filename", "image", "file")


def photo_field(source, given: str) -> str:
    """The field of ``source`` (a feature source) holding photo paths: ``given``, or the first field named like
    one of PATH_FIELD_GUESSES; a message naming the layer and its fields when there is none."""
    names = source.fields().names()
    field = given
    if not field:
        lower = {n.lower(): n for n in names}
        field = next((lower[g] for g in PATH_FIELD_GUESSES if g in lower), "")
    if not field or field not in names:
        raise QgsProcessingException(
            f"The photo layer '{source.sourceName()}' has no photo path field "
            f"({'no field named ' + field if field else 'none of ' + ', '.join(PATH_FIELD_GUESSES)}); "
            f"its fields are: {', '.join(names) or 'none'}. Choose the field that holds the paths.")
    return field


def photo_path(value: object, base: Path | None) -> str | None:
    """The photo path a field value stands for: None for NULL or blank; ``~`` expanded; a relative path joined
    to ``base`` (``layer_folder`` of its layer) when there is one. One rule for every algorithm that reads photo
    paths from a layer."""
    value = plain(value)
    text = "" if value is None else str(value).strip()
    if not text:
        return None
    path = Path(text).expanduser()
    return str(path if path.is_absolute() or base is None else base / path)


def iter_latlon(source, context: QgsProcessingContext, feedback: QgsProcessingFeedback | None = None,
                only_selected: bool = False, request: QgsFeatureRequest | None = None,
                skip_validity_checks: bool = False,
                ) -> Iterator[tuple[QgsFeature, tuple[float, float] | None, str | None]]:
    """Yield ``(feature, (lat, lon) or None, skip reason or None)`` for every feature of ``source``.

    ``source`` is a Processing feature source or a vector layer; ``only_selected`` applies to
    layers (a Processing source already honours the "selected features only" checkbox).
    ``skip_validity_checks`` reads a Processing source without the user's invalid-geometry
    setting (an empty or self-intersecting polygon still has a usable point, or is skipped).
    """
    crs = source.sourceCrs() if hasattr(source, "sourceCrs") else source.crs()
    transform = None
    if crs.isValid() and crs != WGS84:
        transform = QgsCoordinateTransform(crs, WGS84, context.transformContext())
    request = request or QgsFeatureRequest()
    if only_selected and hasattr(source, "getSelectedFeatures"):
        features = source.getSelectedFeatures(request)
    elif skip_validity_checks and isinstance(source, QgsProcessingFeatureSource):
        features = source.getFeatures(request, SKIP_GEOMETRY_CHECKS)
    else:
        features = source.getFeatures(request)
    single_point = QgsWkbTypes.flatType(source.wkbType()) == WKB_POINT
    for i, feature in enumerate(features):
        if feedback is not None and i % CANCEL_CHECK_EVERY == 0 and feedback.isCanceled():
            return
        xy = None
        if single_point:  # the common case, with fewer calls into QGIS per feature
            geometry = feature.geometry()
            try:
                xy = None if geometry.isNull() else geometry.asPoint()
            except TypeError:  # not a single point after all (a provider that does not enforce its type)
                xy = None
            if xy is not None and math.isnan(xy.x()):  # an empty point
                yield feature, None, SKIP_NULL
                continue
        if xy is None:
            point = representative_point(feature.geometry())
            if point is None:
                yield feature, None, SKIP_NULL
                continue
            xy = point.asPoint()
        if transform is not None:
            try:
                xy = transform.transform(xy)
            except QgsCsException:
                yield feature, None, SKIP_TRANSFORM
                continue
        yield feature, (float(xy.y()), float(xy.x())), None


def layer_latlon(source, context: QgsProcessingContext, feedback: QgsProcessingFeedback | None = None,
                 only_selected: bool = False) -> tuple[np.ndarray, np.ndarray, int]:
    """(feature ids int64 (N,), [lat, lon] float64 (N, 2), number of skipped features)."""
    fids: list[int] = []
    coords: list[tuple[float, float]] = []
    skipped = 0
    for feature, latlon, _reason in iter_latlon(source, context, feedback, only_selected):
        if latlon is None:
            skipped += 1
            continue
        fids.append(feature.id())
        coords.append(latlon)
    latlon_arr = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    return np.asarray(fids, dtype=np.int64), latlon_arr, skipped


# ---------------------------------------------------------------------------- streaming in batches
MAX_NAMED_FIDS = 10


@dataclass
class PointBatch:
    """Up to ``batch_size`` features that have a usable point, as plain data."""

    fids: np.ndarray  # int64 (n,): the input's feature ids
    latlon: np.ndarray  # float64 (n, 2): WGS84 [lat, lon] degrees
    attributes: list[list]  # per feature its attribute values (an empty list when not requested)


@dataclass
class SkipTally:
    """Features left out, by reason, with the first few ids of each for the log."""

    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[int]] = field(default_factory=dict)
    wrapped_longitudes: int = 0

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def add(self, reason: str, fid: int) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        ids = self.examples.setdefault(reason, [])
        if len(ids) < MAX_NAMED_FIDS:
            ids.append(int(fid))

    def messages(self, layer_name: str) -> list[str]:
        """One log line per reason, naming the first feature ids."""
        lines = []
        for reason, count in self.counts.items():
            ids = ", ".join(str(i) for i in self.examples.get(reason, []))
            more = ", …" if count > len(self.examples.get(reason, [])) else ""
            lines.append(f"{count} feature(s) of '{layer_name}' skipped: {reason} (feature id {ids}{more}).")
        return lines


def _bad_latitude_error(crs: QgsCoordinateReferenceSystem, fids: list[int], values: list[float]) -> str:
    listed = ", ".join(f"{fid} (y = {lat:g})" for fid, lat in zip(fids, values))
    name = crs.authid() or crs.description()
    return (f"Latitude outside [-90, 90] degrees in a layer with the geographic CRS {name}: feature id {listed}. "
            f"Are x and y swapped, or is the layer's CRS wrong (Layer Properties > Source)?")


def iter_point_batches(source, context: QgsProcessingContext, feedback: QgsProcessingFeedback | None = None,
                       batch_size: int = 4096, attributes: bool = True, tally: SkipTally | None = None,
                       ) -> Iterator[PointBatch]:
    """Stream ``source`` as :class:`PointBatch` es of ``batch_size`` usable points (the last may be shorter).

    Same rule and transform as :func:`iter_latlon`; memory stays bounded by one batch, so a layer of
    millions of features streams. Skipped features are counted in ``tally``. In a geographic CRS a
    latitude beyond +-90 degrees is an error naming the feature ids (a swapped axis or a wrong CRS
    would otherwise give silently wrong points); longitudes beyond +-180 (the 0..360 convention)
    are wrapped into [-180, 180] and counted in ``tally.wrapped_longitudes``. A canceled
    ``feedback`` ends the stream early: callers check ``feedback.isCanceled()`` afterwards.
    """
    tally = tally if tally is not None else SkipTally()
    crs = source.sourceCrs() if hasattr(source, "sourceCrs") else source.crs()
    geographic = crs.isValid() and crs.isGeographic()
    request = QgsFeatureRequest()
    if not attributes:
        request.setNoAttributes()
    fids: list[int] = []
    coords: list[tuple[float, float]] = []
    attrs: list[list] = []
    bad_fids: list[int] = []
    bad_lats: list[float] = []
    scan_left = batch_size  # after the first bad latitude, look this much further to name more

    def flush() -> PointBatch:
        latlon = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
        wrap = np.abs(latlon[:, 1]) > 180.0
        if wrap.any():
            latlon[wrap, 1] = (latlon[wrap, 1] + 180.0) % 360.0 - 180.0
            tally.wrapped_longitudes += int(wrap.sum())
        batch = PointBatch(np.asarray(fids, dtype=np.int64), latlon, list(attrs))
        fids.clear()
        coords.clear()
        attrs.clear()
        return batch

    for feature, latlon, reason in iter_latlon(source, context, feedback, request=request,
                                               skip_validity_checks=True):
        if geographic:
            lat = latlon[0] if latlon is not None else _raw_latitude(feature) if reason == SKIP_TRANSFORM else None
            if lat is not None and abs(lat) > 90.0:
                bad_fids.append(feature.id())
                bad_lats.append(lat)
                if len(bad_fids) >= MAX_NAMED_FIDS:
                    break
                continue
        if latlon is None:
            tally.add(reason, feature.id())
            continue
        if bad_fids:
            scan_left -= 1
            if scan_left <= 0:
                break
            continue  # scan a little further only to name more offenders
        fids.append(feature.id())
        coords.append(latlon)
        if attributes:
            attrs.append(feature.attributes())
        if len(fids) >= batch_size:
            yield flush()
    if bad_fids:
        raise QgsProcessingException(_bad_latitude_error(crs, bad_fids, bad_lats))
    if fids:
        yield flush()


def _raw_latitude(feature: QgsFeature) -> float | None:
    """The y of a feature's representative point in its own CRS (to explain a failed transform)."""
    point = representative_point(feature.geometry())
    return None if point is None else float(point.asPoint().y())
