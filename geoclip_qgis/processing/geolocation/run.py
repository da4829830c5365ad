"""The geolocation run of photos and text queries: each input goes down into model_utils once (prediction and
analysis: top-k at the run's temperature, raster, credible regions, error) and comes back as a frozen answer
that is only written here (points, GeoTIFF, regions, truth lines, report) and loaded as one styled layer group.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from qgis.core import QgsProcessingException

from ...run_layers import RunOutputs, load_run_on_completion
from .. import definitions as d
from ..base import GeoClipAlgorithm, progress_callbacks, stages
from ..io import run_layout
from ..io.outputs import write_geotiff
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
from ..io.run_space import full_disk_error
from .calibration import calibrate
from .job import GeolocationJob, InputKind
from .references import reference_outputs, reference_run


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
    report_rows: list = field(default_factory=list)
    region_rows: list = field(default_factory=list)
    fit_samples: list = field(default_factory=list)
    used_names: set = field(default_factory=set)


def _geolocate(kind: InputKind, job: GeolocationJob, model, work: Path, feedback) -> dict:
    from model_utils.analysis import analyse_all

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
    options = job.analysis_options(land=_land_mask(job, feedback))
    writer, fields, points_path = points_writer(work / "predictions.gpkg", kind.source_fields)
    (work / run_layout.RASTERS_FOLDER).mkdir()
    done = _Written()
    refs = reference_run(model, job.references, feedback) if job.references else None
    if refs is not None:  # GeoCLIP fused with the matched reference photos, analysed as GeoCLIP's own
        predictions = refs.predictions(list(job.items), job.top_k, job.batch, predict_progress, is_canceled)
    else:
        predictions = kind.predictions(model, list(job.items), job.top_k, job.batch, predict_progress, is_canceled,
                                       job.regional)
    try:
        for analysis in analyse_all(predictions, gallery, options):  # down into model_utils once per input
            if not analysis.ok:
                done.errors.append(analysis.error)
                feedback.reportError(analysis.error, False)
                continue
            _write(kind, job, analysis, options, work, done, feedback)
            write_points(writer, fields, analysis.prediction, kind.label(analysis.source))
            if refs is not None:
                refs.add(analysis, kind.label(analysis.source), feedback)
    finally:
        del writer  # closes the GeoPackage
    return _finish(kind, job, done, points_path, gallery, options, work, steps, feedback, refs)


def _finish(kind: InputKind, job: GeolocationJob, done: _Written, points_path: Path, gallery, options, work: Path,
            steps, feedback, refs=None) -> dict:
    """After the last input: the layers beside the points, the temperature fit and the report."""
    n_ok = len(done.report_rows)
    if n_ok == 0:
        raise QgsProcessingException(  # each reason was reported once above, as it happened
            f"None of the {kind.count(len(job.items))} could be geolocated (the reasons are listed above).")
    feedback.pushInfo(_summary(n_ok, done.errors, job.skipped))
    steps.setCurrentStep(3)
    truth = write_truth_lines(points_path, done.report_rows, kind.label)
    has_regions = write_credible_regions(points_path, done.region_rows, kind.source_fields, feedback)
    write_raster_index(points_path, done.rasters, kind.source_fields[0])
    if job.fit and refs is not None:
        feedback.reportError("No temperature was fitted: with reference photos each photo's probabilities cover "
                             "its own matches; fit the temperature in a run without reference photos.", False)
    elif job.fit:
        calibrate(done.fit_samples, gallery, options, work, feedback)
    extra = refs.finish(points_path, work, feedback) if refs is not None else {}
    report = None
    if any(row["true_lat"] is not None for row in done.report_rows):
        report = accuracy_report(done.report_rows, work / "report", feedback, skipped=job.skipped)
    return dict(points=points_path.name, rasters=done.rasters, errors=done.errors, n_ok=n_ok, report=report,
                truth=truth, regions=has_regions, skipped=job.skipped, n_skipped=job.n_skipped,
                first=kind.label(done.report_rows[0]["photo"]) if done.report_rows else "", **extra)


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


def _write(kind: InputKind, job: GeolocationJob, analysis, options, work: Path, done: _Written, feedback) -> None:
    """One input's answer, written: its report row, its raster, its credible regions, its log line, and (with a
    true position, while the fit wants more) what the temperature fit needs."""
    from model_utils.constants import FIT_MAX_PHOTOS
    from model_utils.evaluation.temperature_check import FitSample

    pred, label = analysis.prediction, kind.label(analysis.source)
    if job.fit and analysis.gps is not None and len(done.fit_samples) < FIT_MAX_PHOTOS:
        done.fit_samples.append(FitSample(analysis.source, analysis.model_probs, analysis.gps))
    done.report_rows.append(analysis.report_row())  # every input is a row: those without GPS are left out
    if analysis.grid is not None:
        grid = analysis.grid
        stem = unique_stem(kind.stem(analysis.source), done.used_names)
        raster = write_geotiff(
            grid.values, job.spec.geotransform, work / run_layout.RASTERS_FOLDER / f"{stem}.tif",
            description="probability per km2" if job.density else "probability mass per cell",
            metadata={kind.noun: analysis.source, "mass_in_extent": f"{grid.mass:.6f}",
                      "bandwidth_km": f"{job.bandwidth_km:g}", "top1_lat": f"{pred.lat[0]:.6f}",
                      "top1_lon": f"{pred.lon[0]:.6f}",
                      "on_land": options.land.source if options.land is not None else "no"})
        done.rasters.append((raster.name, label, analysis.source))
        # without their masks (a whole grid per level: a run of 1,000 photos held 2 GB of them until the end)
        done.region_rows += [(analysis.source, label, dataclasses.replace(region, mask=None), grid.mass)
                             for region in analysis.regions]
    error_km, regions = analysis.error_km, analysis.regions
    widest = f", {regions[-1].level:.0%} region {area_text(regions[-1].area_km2)}" if regions else ""
    feedback.pushInfo(f"{label}: top-1 {pred.lat[0]:.4f}, {pred.lon[0]:.4f} (p={pred.prob[0]:.4f})"
                      + (f", error {error_km:.1f} km" if error_km is not None else "") + widest)


def _outputs(kind: InputKind, result: dict, final: Path, context, feedback) -> dict:
    points = str(final / result["points"])
    rasters = [str(final / run_layout.RASTERS_FOLDER / name) for name, _, _ in result["rasters"]]
    # what the run wrote; which of it becomes layers is decided where results load (run_layers)
    load_run_on_completion(context, RunOutputs(
        folder=final, group=f"GeoCLIP {kind.group_title(result)}", points=points,
        rasters=[(kind.stem(label), path) for (_, label, _), path in zip(result["rasters"], rasters)],
        regions=result["regions"], truth=result["truth"], matches=bool(result.get("matches"))))
    report = str(final / "report" / result["report"]) if result["report"] else ""
    if report:
        feedback.pushInfo(f"Accuracy report: {report}")
    feedback.setProgress(100)
    return {
        d.RUN_FOLDER: str(final), d.POINTS: points, d.RASTERS: rasters, d.REPORT_HTML: report,
        kind.count_output: result["n_ok"], d.N_FAILED: len(result["errors"]), d.ERRORS: "\n".join(result["errors"]),
        d.N_SKIPPED: result["n_skipped"], d.SKIPPED: "\n".join(result["skipped"]),
        d.OUTPUT_FOLDER: str(final.parent), **reference_outputs(result, final, points),
    }
