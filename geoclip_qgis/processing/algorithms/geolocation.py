"""What photo and text geolocation share: their output parameters, a frozen job read on the main thread,
and the run itself (predictions -> points layer, one probability raster each, truth lines, accuracy
report, loaded as one styled layer group). The two algorithms differ only in an :class:`InputKind`.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputFolder,
    QgsProcessingOutputHtml,
    QgsProcessingOutputMultipleLayers,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from model_utils.constants import WORLD_BANDWIDTH_KM

from ...compat import FLAG_ADVANCED, NUMBER_DOUBLE, NUMBER_INTEGER, SOURCE_VECTOR_POINT
from ...i18n import tr
from ...run_layers import RunOutputs, load_run_on_completion
from .. import definitions as d
from ..base import GeoClipAlgorithm, progress_callbacks, stages
from ..io import run_layout
from ..io.outputs import ensure_writable_folder, write_geotiff
from ..io.prediction_outputs import (
    accuracy_report,
    area_text,
    new_run_name,
    points_writer,
    unique_stem,
    write_credible_regions,
    write_points,
    write_raster_index,
    write_truth_lines,
)
from ..regional_gallery import regional_gallery
from .calibration_step import FIT_MIN_PHOTOS, calibrate, truth_inside

# parameter names (the dock builds its parameter dicts with these)
FIT_MAX_PHOTOS = 400  # each keeps its 100K gallery probabilities (0.4 MB) until the fit



GALLERY_LABELS = {d.GalleryMode.WORLD: "GeoCLIP's 100K worldwide gallery",
                  d.GalleryMode.REGIONAL: "Regional: a dense grid over the raster extent (city-scale zoom)"}


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


def add_parameters(alg: GeoClipAlgorithm, kind: InputKind) -> None:
    """Top-k, raster grid, gallery, backbone and output folder, with the outputs every run reports."""
    noun, inputs = kind.noun, kind.plural.capitalize()
    alg.addParameter(QgsProcessingParameterNumber(
        d.TOP_K, tr("Top-k predictions per {noun}").format(noun=noun), NUMBER_INTEGER, defaultValue=d.DEFAULT_TOP_K,
        minValue=1, maxValue=d.MAX_TOP_K))
    alg.addParameter(QgsProcessingParameterNumber(
        d.CELL_SIZE, tr("Raster cell size (degrees)"), NUMBER_DOUBLE, defaultValue=d.DEFAULT_CELL_DEG, minValue=0.001,
        maxValue=10.0))
    bandwidth = QgsProcessingParameterNumber(
        d.BANDWIDTH_KM, tr("Kernel bandwidth (km, std. dev. on the sphere; empty: 50 km, or the regional gallery's "
                      "spacing)"), NUMBER_DOUBLE, optional=True, minValue=0.0, maxValue=5000.0)
    bandwidth.setHelp("How far each gallery point's probability is spread. Empty: 50 km over GeoCLIP's worldwide "
                      "gallery, the grid spacing over a regional gallery; 0: no spreading (each point's cell).")
    alg.addParameter(bandwidth)
    alg.addParameter(QgsProcessingParameterExtent(
        d.EXTENT, tr("Raster extent (empty: the whole world; any CRS)"), optional=True))
    gallery = QgsProcessingParameterEnum(d.GALLERY, tr("GPS gallery"),
                                         options=[GALLERY_LABELS[m] for m in d.GalleryMode],
                                         defaultValue=int(d.GalleryMode.WORLD))
    gallery.setHelp("Regional: rank against a grid of points over the raster extent (zoom the map to a city "
                    "and use the canvas extent); answers and rasters get the grid's resolution.")
    alg.addParameter(gallery)
    alg.addParameter(QgsProcessingParameterNumber(
        d.GALLERY_SPACING, tr("Regional gallery spacing (degrees; 0 = the raster cell size)"),
        NUMBER_DOUBLE, defaultValue=0.0, minValue=0.0, maxValue=10.0))
    alg.addParameter(QgsProcessingParameterBoolean(
        d.DENSITY, tr("Write probability density per km² instead of mass per cell"), defaultValue=False))
    alg.addParameter(QgsProcessingParameterBoolean(
        d.WRITE_RASTERS, tr("Write a probability raster per {noun}").format(noun=noun), defaultValue=True))
    regions = QgsProcessingParameterString(
        d.CREDIBLE_LEVELS, tr("Credible regions at these levels (empty: none)"), defaultValue=d.DEFAULT_CREDIBLE_LEVELS,
        optional=True)
    regions.setHelp(f"Per {noun}, the smallest area holding that share of its raster's probability, as polygons "
                    "(layer credible_regions: level, area in km², parts, the probability it holds). Levels between "
                    "0 and 1, separated by commas; needs the rasters.")
    alg.addParameter(regions)
    temperature = QgsProcessingParameterNumber(
        d.TEMPERATURE, tr("Temperature on the logits (1: as trained; from a fit on your geotagged photos)"),
        NUMBER_DOUBLE, defaultValue=d.DEFAULT_TEMPERATURE, minValue=0.05, maxValue=20.0)
    temperature.setHelp("Above 1 spreads each answer's probability (the model was over-confident on your photos), "
                        "below 1 sharpens it. The top-k order never changes. 'Fit a temperature' finds the value.")
    alg.addParameter(temperature)
    fit = QgsProcessingParameterBoolean(
        d.FIT_TEMPERATURE, tr("Fit a temperature on the photos with EXIF GPS (report coverage before and after)"),
        defaultValue=False)
    fit.setHelp(f"Needs at least {FIT_MIN_PHOTOS} photos with EXIF GPS: two thirds fit the temperature (maximum "
                "likelihood of their true positions), the other third shows how many true positions fall inside "
                "the credible regions before and after. Saved as calibration.json in the run folder.")
    alg.addParameter(fit)
    batch = QgsProcessingParameterNumber(
        d.BATCH_SIZE, tr("{inputs} per batch").format(inputs=inputs), NUMBER_INTEGER,
        defaultValue=kind.default_batch, minValue=1, maxValue=256)
    batch.setFlags(batch.flags() | FLAG_ADVANCED)
    alg.addParameter(batch)
    alg.add_model_parameters(image_side=True)
    alg.addParameter(QgsProcessingParameterFolderDestination(
        d.OUTPUT_FOLDER, tr("Output folder (a new subfolder is made for each run)")))
    alg.addOutput(QgsProcessingOutputFolder(d.RUN_FOLDER, tr("Run folder")))
    alg.addOutput(QgsProcessingOutputVectorLayer(d.POINTS, tr("Top-k predictions"), SOURCE_VECTOR_POINT))
    alg.addOutput(QgsProcessingOutputMultipleLayers(d.RASTERS, tr("Probability rasters")))
    alg.addOutput(QgsProcessingOutputHtml(d.REPORT_HTML, tr("Accuracy report (HTML)")))
    inputs = kind.plural.capitalize()
    alg.addOutput(QgsProcessingOutputNumber(kind.count_output, tr("{inputs} geolocated").format(inputs=inputs)))
    alg.addOutput(QgsProcessingOutputNumber(d.N_FAILED, tr("{inputs} that failed").format(inputs=inputs)))
    alg.addOutput(QgsProcessingOutputString(d.ERRORS, tr("Per-{noun} errors").format(noun=noun)))


def prepare(alg: GeoClipAlgorithm, kind: InputKind, items: list[str], parameters, context,
            feedback) -> GeolocationJob:
    """The frozen job for ``items``; bad parameters are refused here, before any work."""
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
    levels = _levels(alg.parameterAsString(parameters, d.CREDIBLE_LEVELS, context)) if write_rasters else ()
    out_root = ensure_writable_folder(alg.parameterAsString(parameters, d.OUTPUT_FOLDER, context))
    feedback.pushInfo(f"{kind.count(len(items))} to geolocate; outputs under {out_root}")
    return GeolocationJob(
        items=tuple(items), top_k=alg.parameterAsInt(parameters, d.TOP_K, context),
        spec=alg.grid_spec(parameters, context, d.EXTENT, d.CELL_SIZE) if write_rasters else None,
        bandwidth_km=WORLD_BANDWIDTH_KM if bandwidth is None else bandwidth,
        density=alg.parameterAsBool(parameters, d.DENSITY, context),
        batch=alg.parameterAsInt(parameters, d.BATCH_SIZE, context), out_root=out_root, regional=regional,
        levels=levels,
        temperature=alg.parameterAsDouble(parameters, d.TEMPERATURE, context) or 1.0,
        fit=alg.parameterAsBool(parameters, d.FIT_TEMPERATURE, context),
        model_choices=tuple(sorted(alg.model_choices(parameters, context).items())))


def _levels(text: str) -> tuple[float, ...]:
    """'0.5, 0.9' (or '50%, 90%') -> (0.5, 0.9); a bad level is refused before any work."""
    from model_utils.maps.regions import check_levels

    parts = [part.strip() for part in (text or "").replace(";", ",").split(",") if part.strip()]
    if not parts:
        return ()
    try:
        values = [float(part[:-1]) / 100 if part.endswith("%") else float(part) for part in parts]
        return check_levels(values)
    except ValueError as exc:
        raise QgsProcessingException(f"Credible region levels '{text}': {exc}. Write them like 0.5, 0.9 "
                                     "(or 50%, 90%), or leave the field empty for none.") from exc


def run(alg: GeoClipAlgorithm, kind: InputKind, job: GeolocationJob, context, feedback) -> dict:
    """Geolocate the job's items into a new run folder (kept only when the run succeeds) and ask Processing
    to load the results."""
    model = alg.load_model(dict(job.model_choices), feedback)
    from model_utils.errors import Canceled, GeoClipError

    run_name = new_run_name(job.out_root)
    work = job.out_root / f".{run_name}.part"
    work.mkdir(parents=True)
    try:
        result = _geolocate(kind, job, model, work, feedback)
        final = job.out_root / run_name
        os.replace(work, final)
    except Canceled as exc:
        shutil.rmtree(work, ignore_errors=True)
        raise QgsProcessingException("Canceled: no outputs were kept.") from exc
    except GeoClipError as exc:
        shutil.rmtree(work, ignore_errors=True)
        raise QgsProcessingException(str(exc)) from exc
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return _outputs(kind, result, final, context, feedback)


def _geolocate(kind: InputKind, job: GeolocationJob, model, work: Path, feedback) -> dict:
    from model_utils.evaluation.calibration import tempered
    from model_utils.maps.heatmap import probability_grid
    from model_utils.maps.regions import region_cells

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
    writer, fields, points_path = points_writer(work / "predictions.gpkg", kind.source_fields)
    raster_dir = work / "rasters"
    raster_dir.mkdir()
    rasters, errors, truth_rows, region_rows, fit_rows, n_ok = [], [], [], [], [], 0
    used_names: set[str] = set()
    try:
        for pred in kind.predictions(model, list(job.items), job.top_k, job.batch, predict_progress, is_canceled,
                                     job.regional):
            if pred.error:
                errors.append(pred.error)
                feedback.reportError(pred.error, False)
                continue
            n_ok += 1
            if job.fit and pred.gps is not None and len(fit_rows) < FIT_MAX_PHOTOS:
                fit_rows.append((pred.source, pred.gallery_probs, pred.gps))
            if job.temperature != 1.0:  # the same guesses, their probabilities spread or sharpened
                probs = tempered(pred.gallery_probs, job.temperature)
                pred = dataclasses.replace(pred, gallery_probs=probs, prob=probs[pred.indices])
            err_km = None if pred.gps is None else float(pred.errors_km[0])
            # every geolocated input is a report row: those without GPS are counted as left out
            truth_rows.append(dict(photo=pred.source, pred_lat=float(pred.lat[0]), pred_lon=float(pred.lon[0]),
                                   true_lat=None if pred.gps is None else pred.gps[0],
                                   true_lon=None if pred.gps is None else pred.gps[1],
                                   error_km=err_km, prob=float(pred.prob[0])))
            write_points(writer, fields, pred, kind.label(pred.source))
            if job.spec is not None:
                grid = probability_grid(gallery[:, 0], gallery[:, 1], pred.gallery_probs, job.spec,
                                        bandwidth_km=job.bandwidth_km, density=job.density)
                stem = unique_stem(kind.stem(pred.source), used_names)
                raster = write_geotiff(
                    grid.values, job.spec.geotransform, raster_dir / f"{stem}.tif",
                    description="probability per km2" if job.density else "probability mass per cell",
                    metadata={kind.noun: pred.source, "mass_in_extent": f"{grid.mass:.6f}",
                              "bandwidth_km": f"{job.bandwidth_km:g}", "top1_lat": f"{pred.lat[0]:.6f}",
                              "top1_lon": f"{pred.lon[0]:.6f}"})
                rasters.append((raster.name, kind.label(pred.source), pred.source))
            regions = region_cells(grid.values, job.spec, job.levels, density=job.density) \
                if job.spec is not None and job.levels and grid.mass > 0 else []
            region_rows += [(pred.source, kind.label(pred.source), without_mask(r), grid.mass) for r in regions]
            truth_rows[-1]["regions"] = tuple((r.level, r.area_km2, truth_inside(r.mask, job.spec, pred.gps))
                                              for r in regions)
            widest = f", {regions[-1].level:.0%} region {area_text(regions[-1].area_km2)}" if regions else ""
            feedback.pushInfo(f"{kind.label(pred.source)}: top-1 {pred.lat[0]:.4f}, {pred.lon[0]:.4f} "
                              f"(p={pred.prob[0]:.4f})" + (f", error {err_km:.1f} km" if err_km is not None else "")
                              + widest)
    finally:
        del writer  # closes the GeoPackage
    if n_ok == 0:
        raise QgsProcessingException(  # each reason was reported once above, as it happened
            f"None of the {kind.count(len(job.items))} could be geolocated (the reasons are listed above).")
    feedback.pushInfo(f"{n_ok} geolocated" + (f", {len(errors)} skipped (see above)" if errors else ""))
    steps.setCurrentStep(3)
    truth = write_truth_lines(points_path, truth_rows, kind.label)
    has_regions = write_credible_regions(points_path, region_rows, kind.source_fields, feedback)
    write_raster_index(points_path, rasters, kind.source_fields[0])
    if job.fit:
        calibrate(job, fit_rows, gallery, work, feedback)
    report = None
    if any(row["true_lat"] is not None for row in truth_rows):
        report = accuracy_report(truth_rows, work / "report", feedback)
    return dict(points=points_path.name, rasters=rasters, errors=errors, n_ok=n_ok, report=report, truth=truth,
                regions=has_regions,
                first=kind.label(truth_rows[0]["photo"]) if truth_rows else "")


def without_mask(region):
    """A region as the writer needs it (its cells' boxes): its mask is a whole grid per level, and a run of 1,000
    photos held 2 GB of them until the end."""
    return dataclasses.replace(region, mask=None)


def _outputs(kind: InputKind, result: dict, final: Path, context, feedback) -> dict:
    points = str(final / result["points"])
    rasters = [str(final / run_layout.RASTERS_FOLDER / name) for name, _, _ in result["rasters"]]
    # what the run wrote; which of it becomes layers is decided where results load (run_layers)
    load_run_on_completion(context, RunOutputs(
        folder=final, group=f"GeoCLIP {kind.group_title(result)}", points=points,
        rasters=[(kind.stem(label), path) for (_, label, _), path in zip(result["rasters"], rasters)],
        regions=result["regions"], truth=result["truth"]))
    report = str(final / "report" / result["report"]) if result["report"] else ""
    if report:
        feedback.pushInfo(f"Accuracy report: {report}")
    feedback.setProgress(100)
    return {
        d.RUN_FOLDER: str(final), d.POINTS: points, d.RASTERS: rasters, d.REPORT_HTML: report,
        kind.count_output: result["n_ok"], d.N_FAILED: len(result["errors"]), d.ERRORS: "\n".join(result["errors"]),
        d.OUTPUT_FOLDER: str(final.parent),
    }
