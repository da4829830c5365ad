"""What photo and text geolocation share: a frozen job read on the main thread, and the run itself
(predictions -> points layer, one probability raster each, truth lines, accuracy report, loaded as one
styled layer group). The two algorithms differ only in an :class:`InputKind`; their parameters are in
``geolocation_params``.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qgis.core import QgsProcessingException

from model_utils.constants import WORLD_BANDWIDTH_KM

from ...layers import load_on_completion
from .. import definitions as d
from ..base import GeoClipAlgorithm, progress_callbacks, stages
from ..io.outputs import ensure_writable_folder, write_geotiff
from ..io.prediction_outputs import (
    accuracy_report,
    area_text,
    new_run_name,
    points_writer,
    unique_stem,
    write_credible_regions,
    write_points,
    write_truth_lines,
)
from ..io.run_space import full_disk_error, refuse_without_space
from ..regional_gallery import regional_gallery
from .calibration_step import calibrate, truth_inside
from .geolocation_params import FIT_MAX_PHOTOS, add_parameters, parse_levels

__all__ = ["GeolocationJob", "InputKind", "add_parameters", "prepare", "run"]


@dataclass(frozen=True)
class InputKind:
    """What differs between geolocating photos and text queries."""

    noun: str  # "photo" / "query": parameter labels, log lines, raster metadata
    plural: str  # "photos" / "queries": labels
    count_output: str  # the output id counting what was geolocated (N_PHOTOS / N_QUERIES)
    default_batch: int
    source_fields: tuple[str, str]  # the points layer's (input, short name) fields
    label: Callable[[str], str]  # an input's short name (logs, legend, the name field)
    stem: Callable[[str], str]  # its raster's file name, before it is made safe and unique
    group_title: Callable[[dict], str]  # the layer group's name, from the run's result
    load_tower: Callable[..., None]  # (model, progress, is_canceled): the CLIP tower this kind needs
    predictions: Callable[..., Any]  # (model, items, top_k, batch, progress, is_canceled, gallery)

    def count(self, n: int) -> str:
        """'1 query', '3 queries': log lines read as English."""
        return f"{n} {self.noun if n == 1 else self.plural}"


@dataclass(frozen=True)
class GeolocationJob:
    """Everything a run needs, read from the parameters on the main thread."""

    items: tuple[str, ...]
    top_k: int
    spec: Any  # model_utils GridSpec of the rasters, or None when no rasters are written
    bandwidth_km: float
    density: bool
    batch: int
    out_root: Path
    regional: Any  # a model_utils Gallery over the extent, or None for the worldwide one
    levels: tuple[float, ...]  # credible region levels (empty: none), with rasters only
    temperature: float  # on the logits: 1 = the model as trained
    fit: bool  # fit a temperature on the photos with EXIF GPS
    model_choices: tuple[tuple[str, Any], ...]  # for shared_model(**dict(...))
    on_land: bool = True  # each gallery point's kernel renormalised over land cells
    skipped: tuple[str, ...] = ()  # the folder scan's lines about what it left out, by reason
    n_skipped: int = 0  # files of the folder that are not photos


def prepare(alg: GeoClipAlgorithm, kind: InputKind, items: list[str], parameters, context,
            feedback, scan=None) -> GeolocationJob:
    """The frozen job for ``items`` (and the folder ``scan`` they came from, if any); bad parameters, and an
    output disk without room for the run, are refused here, before any work."""
    write_rasters = alg.parameterAsBool(parameters, d.WRITE_RASTERS, context)
    given = parameters.get(d.BANDWIDTH_KM) not in (None, "")
    bandwidth = alg.parameterAsDouble(parameters, d.BANDWIDTH_KM, context) if given else None
    regional = None
    if alg.parameterAsEnum(parameters, d.GALLERY, context) == d.GalleryMode.REGIONAL:
        if parameters.get(d.EXTENT) in (None, ""):
            raise QgsProcessingException(
                "A regional gallery needs a raster extent: zoom the map to the city or region and use the map "
                "canvas extent (or draw one), or choose GeoCLIP's worldwide gallery.")
        regional, bandwidth = regional_gallery(alg.grid_spec(parameters, context, d.EXTENT, d.CELL_SIZE),
                                               alg.parameterAsDouble(parameters, d.GALLERY_SPACING, context),
                                               bandwidth, feedback)
    levels = parse_levels(alg.parameterAsString(parameters, d.CREDIBLE_LEVELS, context)) if write_rasters else ()
    out_root = ensure_writable_folder(alg.parameterAsString(parameters, d.OUTPUT_FOLDER, context))
    job = GeolocationJob(
        items=tuple(items), top_k=alg.parameterAsInt(parameters, d.TOP_K, context),
        spec=alg.grid_spec(parameters, context, d.EXTENT, d.CELL_SIZE) if write_rasters else None,
        bandwidth_km=WORLD_BANDWIDTH_KM if bandwidth is None else bandwidth,
        density=alg.parameterAsBool(parameters, d.DENSITY, context),
        batch=alg.parameterAsInt(parameters, d.BATCH_SIZE, context), out_root=out_root, regional=regional,
        levels=levels,
        temperature=alg.parameterAsDouble(parameters, d.TEMPERATURE, context) or 1.0,
        fit=alg.parameterAsBool(parameters, d.FIT_TEMPERATURE, context),
        model_choices=tuple(sorted(alg.model_choices(parameters, context).items())),
        on_land=alg.parameterAsBool(parameters, d.ON_LAND, context),
        skipped=tuple(scan.skipped_lines()) if scan is not None else (),
        n_skipped=scan.n_skipped if scan is not None else 0)
    needed = refuse_without_space(job)
    feedback.pushInfo(f"{kind.count(len(items))} to geolocate; outputs under {out_root} (about {needed})")
    return job


def run(alg: GeoClipAlgorithm, kind: InputKind, job: GeolocationJob, context, feedback) -> dict:
    """Geolocate the job's items into a new run folder (kept only when the run succeeds) and ask Processing
    to load the results. A disk that fills up on the way is named as such, with what was kept: nothing."""
    model = alg.load_model(dict(job.model_choices), feedback)
    from model_utils.errors import Canceled, GeoClipError

    run_name = new_run_name(job.out_root)
    work = job.out_root / f".{run_name}.part"
    try:
        work.mkdir(parents=True)
        result = _geolocate(kind, job, model, work, feedback)
        final = job.out_root / run_name
        os.replace(work, final)
    except Canceled as exc:
        shutil.rmtree(work, ignore_errors=True)
        raise QgsProcessingException("Canceled: no outputs were kept.") from exc
    except (GeoClipError, QgsProcessingException, OSError) as exc:
        full = full_disk_error(job, exc)  # asked before the run's files are removed
        shutil.rmtree(work, ignore_errors=True)
        if full is not None:
            raise full from exc
        if isinstance(exc, GeoClipError):
            raise QgsProcessingException(str(exc)) from exc
        raise
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return _outputs(kind, result, final, context, feedback)


@dataclass
class _Written:
    """What a run has written so far (the accumulator of :func:`_geolocate`)."""

    rasters: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    truth_rows: list = field(default_factory=list)
    region_rows: list = field(default_factory=list)
    fit_rows: list = field(default_factory=list)
    used_names: set = field(default_factory=set)


def _geolocate(kind: InputKind, job: GeolocationJob, model, work: Path, feedback) -> dict:
    # four stages of one bar: the CLIP tower (a first run downloads ~1.7 GB), the gallery's embeddings (encoded
    # once, then cached), the inputs, then the layers and report
    steps = stages(feedback, 4)
    kind.load_tower(model, *progress_callbacks(steps))
    if model.backbone_origin:  # which weights ran: the hub repo and its commit, or the folder
        feedback.pushInfo(model.backbone_origin + ".")
    steps.setCurrentStep(1)
    gallery_progress, is_canceled = progress_callbacks(steps)
    model.gallery_embeddings(progress=gallery_progress, is_canceled=is_canceled, gallery=job.regional)
    steps.setCurrentStep(2)
    predict_progress, _ = progress_callbacks(steps)
    gallery = (job.regional or model.gallery).latlon
    land = _land_mask(job, feedback)
    writer, fields, points_path = points_writer(work / "predictions.gpkg", kind.source_fields)
    (work / "rasters").mkdir()
    done = _Written()
    try:
        for pred in kind.predictions(model, list(job.items), job.top_k, job.batch, predict_progress, is_canceled,
                                     job.regional):
            if pred.error:
                done.errors.append(pred.error)
                feedback.reportError(pred.error, False)
                continue
            pred = _one(kind, job, pred, gallery, land, work, done, feedback)
            write_points(writer, fields, pred, kind.label(pred.source))
    finally:
        del writer  # closes the GeoPackage
    n_ok = len(done.truth_rows)
    if n_ok == 0:
        raise QgsProcessingException(  # each reason was reported once above, as it happened
            f"None of the {kind.count(len(job.items))} could be geolocated (the reasons are listed above).")
    feedback.pushInfo(_summary(n_ok, done.errors, job.skipped))
    steps.setCurrentStep(3)
    truth = write_truth_lines(points_path, done.truth_rows, kind.label)
    has_regions = write_credible_regions(points_path, done.region_rows, kind.source_fields, feedback)
    if job.fit:
        calibrate(job, done.fit_rows, gallery, work, feedback, land=land)
    report = None
    if any(row["true_lat"] is not None for row in done.truth_rows):
        report = accuracy_report(done.truth_rows, work / "report", feedback, skipped=job.skipped)
    return dict(points=points_path.name, rasters=done.rasters, errors=done.errors, n_ok=n_ok, report=report,
                truth=truth, regions=has_regions, skipped=job.skipped, n_skipped=job.n_skipped,
                first=kind.label(done.truth_rows[0]["photo"]) if done.truth_rows else "")


def _summary(n_ok: int, errors: list, skipped: tuple[str, ...]) -> str:
    """The run's closing line: what was geolocated, what failed, and what the folder held besides photos."""
    text = f"{n_ok} geolocated" + (f", {len(errors)} skipped (see above)" if errors else "")
    return text + ("; not geolocated from the folder: " + "; ".join(skipped) if skipped else "")


def _land_mask(job: GeolocationJob, feedback):
    """The land mask the rasters keep their mass on (loaded once per run, in the task), or None: switched
    off, no rasters, or the mask's package missing (said once)."""
    from model_utils.maps.land import land_mask_or_none

    if job.spec is None:
        return None
    return land_mask_or_none(job.on_land, job.spec.cell_size, lambda text: feedback.reportError(text, False))


def _one(kind: InputKind, job: GeolocationJob, pred, gallery, land, work: Path, done: _Written, feedback):
    """One geolocated input: its report row, its raster and credible regions, its log line; returns the
    prediction at the run's temperature."""
    from model_utils.evaluation.calibration import tempered
    from model_utils.maps.heatmap import probability_grid
    from model_utils.maps.regions import region_cells

    if job.fit and pred.gps is not None and len(done.fit_rows) < FIT_MAX_PHOTOS:
        done.fit_rows.append((pred.source, pred.gallery_probs, pred.gps))
    if job.temperature != 1.0:  # the same guesses, their probabilities spread or sharpened
        probs = tempered(pred.gallery_probs, job.temperature)
        pred = dataclasses.replace(pred, gallery_probs=probs, prob=probs[pred.indices])
    err_km = None if pred.gps is None else float(pred.errors_km[0])
    # every geolocated input is a report row: those without GPS are counted as left out
    row = dict(photo=pred.source, pred_lat=float(pred.lat[0]), pred_lon=float(pred.lon[0]),
               true_lat=None if pred.gps is None else pred.gps[0], true_lon=None if pred.gps is None else pred.gps[1],
               error_km=err_km, prob=float(pred.prob[0]), regions=())
    done.truth_rows.append(row)
    regions = []
    if job.spec is not None:
        grid = probability_grid(gallery[:, 0], gallery[:, 1], pred.gallery_probs, job.spec,
                                bandwidth_km=job.bandwidth_km, density=job.density, land=land)
        stem = unique_stem(kind.stem(pred.source), done.used_names)
        raster = write_geotiff(
            grid.values, job.spec.geotransform, work / "rasters" / f"{stem}.tif",
            description="probability per km2" if job.density else "probability mass per cell",
            metadata={kind.noun: pred.source, "mass_in_extent": f"{grid.mass:.6f}",
                      "bandwidth_km": f"{job.bandwidth_km:g}", "top1_lat": f"{pred.lat[0]:.6f}",
                      "top1_lon": f"{pred.lon[0]:.6f}", "on_land": land.source if land is not None else "no"})
        done.rasters.append((raster.name, kind.label(pred.source), grid.mass))
        if job.levels and grid.mass > 0:
            regions = region_cells(grid.values, job.spec, job.levels, density=job.density)
        done.region_rows += [(pred.source, kind.label(pred.source), region, grid.mass) for region in regions]
    row["regions"] = tuple((r.level, r.area_km2, truth_inside(r.mask, job.spec, pred.gps)) for r in regions)
    widest = f", {regions[-1].level:.0%} region {area_text(regions[-1].area_km2)}" if regions else ""
    feedback.pushInfo(f"{kind.label(pred.source)}: top-1 {pred.lat[0]:.4f}, {pred.lon[0]:.4f} "
                      f"(p={pred.prob[0]:.4f})" + (f", error {err_km:.1f} km" if err_km is not None else "") + widest)
    return pred


def _outputs(kind: InputKind, result: dict, final: Path, context, feedback) -> dict:
    points = str(final / result["points"])
    rasters = [str(final / "rasters" / name) for name, _, _ in result["rasters"]]
    group = f"GeoCLIP {kind.group_title(result)}"
    for (_name, label, _mass), path in zip(result["rasters"], rasters):
        load_on_completion(context, path, kind.stem(label), group, "probability", raster=True, run_id=str(final))
    if result["regions"]:  # above the rasters, below the lines and points
        load_on_completion(context, f"{points}|layername=credible_regions", "Credible regions", group, "regions",
                           run_id=str(final))
    if result["truth"]:
        load_on_completion(context, f"{points}|layername=truth", "Error to EXIF position", group, "truth",
                           run_id=str(final))
    load_on_completion(context, f"{points}|layername=predictions", "Top-k predictions", group, "points",
                       run_id=str(final))
    report = str(final / "report" / result["report"]) if result["report"] else ""
    if report:
        feedback.pushInfo(f"Accuracy report: {report}")
    feedback.setProgress(100)
    return {
        d.RUN_FOLDER: str(final), d.POINTS: points, d.RASTERS: rasters, d.REPORT_HTML: report,
        kind.count_output: result["n_ok"], d.N_FAILED: len(result["errors"]), d.ERRORS: "\n".join(result["errors"]),
        d.N_SKIPPED: result["n_skipped"], d.SKIPPED: "\n".join(result["skipped"]),
        d.OUTPUT_FOLDER: str(final.parent),
    }
