"""``geoclip:evaluategeolocation``: a layer of predictions + true positions -> the paper's accuracy table.

The layer is frozen into plain :class:`model_utils.evaluation.accuracy_report.PhotoResult` rows first (predicted point
from the geometry, transformed to WGS84; true position from two fields); errors are recomputed on
the WGS84 ellipsoid rather than read from an ``error_km`` field, and ``model_utils.evaluation.accuracy_report`` writes
the CSVs and the HTML report into the chosen folder without overwriting earlier reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsFeatureRequest,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputHtml,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFolderDestination,
    QgsWkbTypes,
)

from model_utils.constants import ACCURACY_THRESHOLDS_KM, THRESHOLD_NAMES

from ...compat import GEOMETRY_POINT, SOURCE_VECTOR_ANY, SOURCE_VECTOR_POINT, plain
from ...i18n import tr
from ...paths import ensure_model_utils_importable
from .. import definitions as d
from ..base import GeoClipAlgorithm
from ..io import region_coverage
from ..io.geometry import iter_latlon
from ..io.outputs import ensure_writable_folder
from ..io.prediction_outputs import area_text

# Output ids per threshold of the paper's table: SHARE_1KM ("street") ... SHARE_2500KM ("continent").
THRESHOLD_OUTPUTS: tuple[tuple[str, float, str], ...] = tuple(
    (f"SHARE_{km:g}KM", km, name) for km, name in zip(ACCURACY_THRESHOLDS_KM, THRESHOLD_NAMES))
PHOTO_FIELD_GUESSES = ("photo", "path", "filepath", "file_path")
NAME_FIELD_GUESSES = ("photo_name", "name", "filename", "file_name")
RANK_FIELD = "rank"
# A stored error_km further than this from the recomputed one is worth a warning.
ERROR_TOLERANCE_KM = 0.5


@dataclass(frozen=True)
class EvaluationJob:
    """What to evaluate and where the report goes, read from the parameters on the main thread."""

    source: Any  # the QgsProcessingFeatureSource of prediction points
    layer_name: str
    lat_field: str
    lon_field: str
    folder: Path
    regions: Any = None  # a region_coverage.RegionSource, or None: no coverage


class EvaluateGeolocation(GeoClipAlgorithm):
    """How far off were the top-1 guesses? The share within 1 / 25 / 200 / 750 / 2500 km."""


    def name(self) -> str:
        return "evaluategeolocation"

    def displayName(self) -> str:  # noqa: N802
        return tr("Evaluate geolocation accuracy")

    def shortHelpString(self) -> str:  # noqa: N802
        return (
            tr("Compares predicted photo positions with where the photos were really taken and writes the "
            "GeoCLIP paper's accuracy table.\n\n"
            "Input: the prediction points written by 'Geolocate photos' (only rank 1, the top guess of each "
            "photo, is evaluated; true_lat / true_lon come from the photos' EXIF GPS), or any point layer whose "
            "geometry is the predicted position and whose two fields hold the true latitude and longitude in "
            "degrees (WGS84). The layer may be in any CRS. Features with an empty true position are listed but "
            "not counted. Errors are recomputed on the WGS84 ellipsoid; an existing error_km field is not trusted.\n\n"
            "The table: for each distance of the paper (Street 1 km, City 25 km, Region 200 km, Country 750 km, "
            "Continent 2500 km), the share of photos whose top-1 prediction lies within that distance of the "
            "true position (an error exactly on the threshold counts as within), plus the median and mean "
            "error and the number of photos N. The HTML report shows it next to the paper's own Im2GPS3k "
            "result (14.11 / 34.47 / 50.65 / 69.67 / 83.82 %) for scale, a chart of the share of photos within "
            "any distance from 0.1 to 20,000 km, and a table of every photo.\n\n"
            "Outputs, in the output folder (never overwriting: a second report becomes accuracy_2.html, …): "
            "accuracy.html, accuracy.csv (the table, then median, mean and photos without ground truth) and "
            "per_photo.csv. The shares (0–1), median and mean error (km) and N are also algorithm outputs, "
            "for models and scripts.\n\n"
            "Credible regions: with a polygon layer of each photo's regions (by default the credible_regions "
            "layer a geolocation run wrote beside its predictions; fields photo or photo_name, level, "
            "area_km2), the report also gives their coverage: per level, the share of photos whose true "
            "position lies inside their region, and the median area. Coverage far below the level means the "
            "model is over-confident on these photos, far above, under-confident.")
        )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterFeatureSource(
            d.INPUT, tr("Predictions (point layer; geometry = predicted position)"),
            [SOURCE_VECTOR_POINT]))
        self.addParameter(QgsProcessingParameterField(
            d.TRUE_LAT_FIELD, tr("True latitude field (degrees)"), defaultValue="true_lat",
            parentLayerParameterName=d.INPUT, optional=True))
        self.addParameter(QgsProcessingParameterField(
            d.TRUE_LON_FIELD, tr("True longitude field (degrees)"), defaultValue="true_lon",
            parentLayerParameterName=d.INPUT, optional=True))
        self.addParameter(QgsProcessingParameterFeatureSource(
            d.REGIONS, tr("Credible regions (polygons; empty: the run's credible_regions layer beside the "
                             "predictions)"), [SOURCE_VECTOR_ANY], optional=True))
        self.addParameter(QgsProcessingParameterFolderDestination(
            d.OUTPUT_FOLDER, tr("Output folder for the report")))
        self.addOutput(QgsProcessingOutputHtml(d.OUTPUT_HTML, tr("Accuracy report (HTML)")))
        self.addOutput(QgsProcessingOutputFile(d.OUTPUT_CSV, tr("Accuracy table (CSV)")))
        self.addOutput(QgsProcessingOutputFile(d.OUTPUT_PER_PHOTO_CSV, tr("Per-photo errors (CSV)")))
        for output_id, km, label in THRESHOLD_OUTPUTS:
            title = tr("Share within {km} km ({label}), 0–1").format(km=f"{km:g}", label=label)
            self.addOutput(QgsProcessingOutputNumber(output_id, title))
        self.addOutput(QgsProcessingOutputNumber(d.MEDIAN_KM, tr("Median error (km)")))
        self.addOutput(QgsProcessingOutputNumber(d.MEAN_KM, tr("Mean error (km)")))
        self.addOutput(QgsProcessingOutputNumber(d.N, tr("Photos evaluated (N)")))
        self.addOutput(QgsProcessingOutputNumber(d.N_WITHOUT_TRUTH, tr("Photos without ground truth")))

    # ------------------------------------------------------------------ inputs -> plain data
    def _field(self, source, parameters, key: str, default: str, context) -> str:
        """The layer's actual name of the chosen (or default) field, or "" when it has none."""
        wanted = self.parameterAsString(parameters, key, context) or default
        index = source.fields().lookupField(wanted)  # exact, then case-insensitive
        if index < 0:
            return ""
        return source.fields().at(index).name()

    def _read_rows(self, source, lat_field: str, lon_field: str, context, feedback) -> tuple[list[dict], dict]:
        """Rank-1 features as plain dicts (predicted lat/lon in WGS84, raw truth values) + counts."""
        fields = source.fields()
        names = fields.names()

        def guess(candidates) -> str:
            for candidate in candidates:
                index = fields.lookupField(candidate)
                if index >= 0:
                    return names[index]
            return ""

        rank_field = guess((RANK_FIELD,))
        photo_field, name_field = guess(PHOTO_FIELD_GUESSES), guess(NAME_FIELD_GUESSES)
        prob_field, error_field = guess(("prob",)), guess(("error_km",))
        wanted = [f for f in (lat_field, lon_field, rank_field, photo_field, name_field, prob_field, error_field) if f]
        request = QgsFeatureRequest().setSubsetOfAttributes(sorted(set(wanted)), fields)
        rows: list[dict] = []
        counts = {"other_ranks": 0, "no_geometry": 0, "stored_errors": []}
        for feature, latlon, reason in iter_latlon(source, context, feedback, request=request):
            if rank_field and plain(feature[rank_field]) != 1:
                counts["other_ranks"] += 1
                continue
            if latlon is None:
                counts["no_geometry"] += 1
                feedback.reportError(f"Feature {feature.id()}: {reason}; skipped.", False)
                continue
            photo = plain(feature[photo_field]) if photo_field else None
            name = plain(feature[name_field]) if name_field else None
            if photo is None and name is None:
                photo = f"feature {feature.id()}"
            rows.append({
                "fid": feature.id(),
                "photo": str(photo if photo is not None else name),
                "photo_name": None if name is None else str(name),
                "pred_lat": latlon[0], "pred_lon": latlon[1],
                "true_lat": _coordinate(feature[lat_field], lat_field, feature.id()),
                "true_lon": _coordinate(feature[lon_field], lon_field, feature.id()),
                "prob": _coordinate(feature[prob_field], prob_field, feature.id()) if prob_field else None,
                "stored_error": _coordinate(feature[error_field], error_field, feature.id()) if error_field else None,
            })
        counts["rank_field"] = rank_field
        return rows, counts

    # ------------------------------------------------------------------ parameters -> a frozen job (main thread)
    def prepare(self, parameters, context, feedback) -> EvaluationJob:
        source = self.parameterAsSource(parameters, d.INPUT, context)
        if source is None:
            raise QgsProcessingException(self.invalidSourceError(parameters, d.INPUT))
        layer_name = source.sourceName() or "input layer"
        geometry_type = QgsWkbTypes.geometryType(source.wkbType())
        if geometry_type != GEOMETRY_POINT:
            kind = QgsWkbTypes.displayString(source.wkbType()) or "no geometry"
            raise QgsProcessingException(
                f"'{layer_name}' is not a point layer (its geometry type is {kind}). Give the prediction "
                "points written by 'Geolocate photos', or a point layer whose points are the predicted positions.")
        lat_field = self._field(source, parameters, d.TRUE_LAT_FIELD, "true_lat", context)
        lon_field = self._field(source, parameters, d.TRUE_LON_FIELD, "true_lon", context)
        if not lat_field or not lon_field:
            missing = [self.parameterAsString(parameters, key, context) or default
                       for key, default, found in ((d.TRUE_LAT_FIELD, "true_lat", lat_field),
                                                   (d.TRUE_LON_FIELD, "true_lon", lon_field)) if not found]
            raise QgsProcessingException(
                f"'{layer_name}' has no field {' and no field '.join(repr(m) for m in missing)} for the true "
                f"position. Its fields are: {', '.join(source.fields().names()) or 'none'}. Choose the fields "
                "that hold the true latitude and longitude (degrees, WGS84).")
        folder = ensure_writable_folder(self.parameterAsString(parameters, d.OUTPUT_FOLDER, context))
        return EvaluationJob(source, layer_name, lat_field, lon_field, folder,
                             self._regions(parameters, context))

    def _regions(self, parameters, context):
        """The chosen regions layer (checked), else the run's credible_regions beside the predictions, else None."""
        chosen = self.parameterAsSource(parameters, d.REGIONS, context)
        if chosen is not None:
            return region_coverage.checked(chosen, chosen.sourceName() or "regions")
        return region_coverage.run_regions_beside(self.parameterAsVectorLayer(parameters, d.INPUT, context))

    # ------------------------------------------------------------------ run
    def process(self, parameters, context, feedback):
        job: EvaluationJob = self.job
        source, layer_name, lat_field, lon_field, folder = (job.source, job.layer_name, job.lat_field, job.lon_field,
                                                            job.folder)
        ensure_model_utils_importable()
        try:
            from model_utils.evaluation.accuracy_report import PhotoResult, photo_result, write_accuracy_report
            from model_utils.evaluation.coverage import coverage
        except ImportError as exc:
            raise QgsProcessingException(
                f"Evaluating needs Python packages that are not installed ({exc.name}). Open the GeoCLIP "
                "panel's Setup tab to see what is missing and how to install it.") from exc

        rows, counts = self._read_rows(source, lat_field, lon_field, context, feedback)
        if feedback.isCanceled():
            raise QgsProcessingException("Canceled: no report was written.")
        if counts["other_ranks"]:
            feedback.pushInfo(f"Evaluating the top-1 guesses only: {counts['other_ranks']} feature(s) with "
                              f"{counts['rank_field']} ≠ 1 left out.")
        if not rows:
            raise QgsProcessingException(
                f"'{layer_name}' has no predictions to evaluate"
                + (f" ({counts['no_geometry']} feature(s) without a usable point)" if counts["no_geometry"] else "")
                + (" with rank 1" if counts["rank_field"] else "") + ".")
        truth = [r for r in rows if r["true_lat"] is not None and r["true_lon"] is not None]
        if not truth:
            raise QgsProcessingException(
                f"None of the {len(rows)} photo(s) in '{layer_name}' has EXIF GPS / {lat_field}+{lon_field} "
                "values; nothing to evaluate. Ground truth comes from the photos' EXIF GPS or from the chosen "
                "true latitude and longitude fields.")
        _check_ranges(truth, lat_field, lon_field)
        if job.regions is not None:
            with_regions, unmatched = region_coverage.photo_regions(job.regions, rows, context, feedback)
            feedback.pushInfo(f"Credible regions from {job.regions.name}: {with_regions} photo(s) have them"
                              + (f" ({unmatched} region(s) match no photo here)" if unmatched else ""))

        # errors are recomputed from the points (photo_result: the one place that computes a missing error)
        known = {id(r) for r in truth}
        results = [photo_result(PhotoResult(
            photo=r["photo"], pred_lat=r["pred_lat"], pred_lon=r["pred_lon"],
            true_lat=r["true_lat"] if id(r) in known else None, true_lon=r["true_lon"] if id(r) in known else None,
            error_km=None, prob=r["prob"], photo_name=r["photo_name"], regions=r.get("regions", ())))
            for r in rows]
        for row, result in zip(rows, results):
            row["error_km"] = result.error_km
        _warn_stored_errors(truth, feedback)
        try:
            paths = write_accuracy_report(results, folder, title=f"GeoCLIP geolocation accuracy: {layer_name}")
        except (OSError, ValueError) as exc:
            raise QgsProcessingException(f"Could not write the accuracy report in {folder}: {exc}") from exc
        report = paths.accuracy
        feedback.pushInfo(f"{report.n} photo(s) evaluated ({report.n_ignored} without ground truth); median error "
                          f"{report.median_km:.1f} km")
        for row in report.as_rows():
            feedback.pushInfo(f"  within {row['threshold_km']:>6g} km ({row['name']}): {row['percent']:.2f} %")
        for row in coverage([r.regions for r in results]):
            feedback.pushInfo(f"  {row.level:.0%} credible region: truth inside for {row.inside} of {row.n} photo(s) "
                              f"({row.share:.0%}), median area {area_text(row.median_area_km2)}")
        feedback.pushInfo(f"Report: {paths.html}")
        feedback.setProgress(100)
        outputs = {
            d.OUTPUT_HTML: str(paths.html), d.OUTPUT_CSV: str(paths.csv),
            d.OUTPUT_PER_PHOTO_CSV: str(paths.per_photo_csv), d.OUTPUT_FOLDER: str(folder),
            d.MEDIAN_KM: report.median_km, d.MEAN_KM: report.mean_km, d.N: report.n,
            d.N_WITHOUT_TRUTH: report.n_ignored,
        }
        for (output_id, _, _), share in zip(THRESHOLD_OUTPUTS, report.share_within):
            outputs[output_id] = share
        return outputs


def _coordinate(value, field: str, fid: int) -> float | None:
    """A number from a numeric or text field; NULL / empty / NaN -> None; anything else is an error."""
    value = plain(value)
    if value is None or (isinstance(value, str) and value.strip() in ("", "NULL")):
        return None
    try:
        number = float(str(value).strip().replace(",", ".")) if isinstance(value, str) else float(value)
    except (TypeError, ValueError) as exc:
        raise QgsProcessingException(
            f"Feature {fid}: field '{field}' holds {value!r}, which is not a number.") from exc
    return None if math.isnan(number) else number


def _check_ranges(rows: list[dict], lat_field: str, lon_field: str) -> None:
    import numpy as np

    from model_utils.geo import latlon_problems

    _, lat_mask, lon_mask = latlon_problems(np.array([[r["true_lat"], r["true_lon"]] for r in rows]),
                                            max_lon=360.0)  # a 0..360 longitude field is fine
    bad_lat = [r["fid"] for r, bad in zip(rows, lat_mask) if bad]
    bad_lon = [r["fid"] for r, bad in zip(rows, lon_mask) if bad]
    problems = []
    if bad_lat:
        problems.append(f"'{lat_field}' outside [-90, 90] in feature(s) {_listing(bad_lat)}")
    if bad_lon:
        problems.append(f"'{lon_field}' outside [-180, 360] in feature(s) {_listing(bad_lon)}")
    if problems:
        raise QgsProcessingException(
            "Invalid true positions: " + "; ".join(problems) + ". Are latitude and longitude swapped, or is the "
            "field not in degrees?")


def _listing(fids: list[int], limit: int = 10) -> str:
    shown = ", ".join(str(f) for f in fids[:limit])
    return shown + (f" … ({len(fids)} in all)" if len(fids) > limit else "")


def _warn_stored_errors(rows: list[dict], feedback) -> None:
    """Say so when a stored error_km disagrees with the recomputed one (the recomputed one is used)."""
    off = [r for r in rows if r["stored_error"] is not None
           and abs(r["stored_error"] - r["error_km"]) > ERROR_TOLERANCE_KM + 1e-3 * r["error_km"]]
    if off:
        first = off[0]
        feedback.pushWarning(
            f"{len(off)} feature(s) have an error_km that differs from the geodesic distance between the point "
            f"and the true position (e.g. {Path(first['photo']).name}: stored {first['stored_error']:.1f} km, "
            f"recomputed {first['error_km']:.1f} km); the recomputed errors are used.")
