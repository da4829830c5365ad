"""Fitting a temperature inside a photo geolocation run, and how the credible regions hold up before and after
on photos the fit did not see. The maths is ``model_utils.evaluation.calibration``."""

from __future__ import annotations

import json

import numpy as np

from model_utils.constants import WORLD_BANDWIDTH_KM

FIT_LEVELS = (0.5, 0.9)  # coverage is reported at these when the run asks for no credible regions
FIT_MIN_PHOTOS = 10  # fewer geotagged photos say nothing reliable about a temperature


def truth_inside(mask, spec, gps) -> bool | None:
    """Does a region (its cell mask on ``spec``) contain the true position? None without one; False outside
    the raster's extent."""
    if gps is None:
        return None
    lat, lon = gps
    if not (spec.ymin <= lat <= spec.ymax and spec.xmin <= lon <= spec.xmax):
        return False
    row = min(int((spec.ymax - lat) // spec.cell_size), spec.height - 1)
    col = min(int((lon - spec.xmin) // spec.cell_size), spec.width - 1)
    return bool(mask[row, col])


def calibrate(job, rows: list[tuple[str, np.ndarray, tuple[float, float]]], gallery: np.ndarray, work,
              feedback, land=None) -> None:
    """Fit on two thirds of the geotagged photos (every third one, by name, is held out), report coverage of
    the held-out third at the run's temperature and at the fitted one (rasters as the run's: ``land`` is its
    land mask or None), and save calibration.json."""
    from model_utils.evaluation.calibration import fit_temperature, tempered
    from model_utils.maps.grid import GridSpec
    from model_utils.maps.heatmap import probability_grid
    from model_utils.maps.regions import region_cells

    if len(rows) < FIT_MIN_PHOTOS:
        feedback.reportError(f"Fitting a temperature needs at least {FIT_MIN_PHOTOS} photos with EXIF GPS; this run "
                             f"has {len(rows)}, so no temperature was fitted.", False)
        return
    rows = sorted(rows, key=lambda row: row[0])
    held_out, train = rows[2::3], [row for i, row in enumerate(rows) if i % 3 != 2]
    bandwidth = job.bandwidth_km or WORLD_BANDWIDTH_KM
    try:
        fit = fit_temperature([p for _, p, _ in train], [g for _, _, g in train], gallery, bandwidth_km=bandwidth)
    except ValueError as exc:
        feedback.reportError(f"No temperature was fitted: {exc}.", False)
        return
    spec = job.spec or GridSpec.world(cell_size=0.5)
    levels = job.levels or FIT_LEVELS

    def coverage(temperature: float) -> dict[str, float]:
        inside = {level: 0 for level in levels}
        for _, probs, gps in held_out:
            grid = probability_grid(gallery[:, 0], gallery[:, 1], tempered(probs, temperature), spec,
                                    bandwidth_km=bandwidth, land=land if spec is job.spec else None)
            for region in region_cells(grid.values, spec, levels):
                inside[region.level] += bool(truth_inside(region.mask, spec, gps))
        return {f"{level:g}": inside[level] / len(held_out) for level in levels}

    before, after = coverage(job.temperature), coverage(fit.temperature)
    record = {"temperature": fit.temperature, "fitted_on": fit.n_used, "skipped": fit.n_skipped,
              "held_out": len(held_out), "bandwidth_km": bandwidth, "temperature_before": job.temperature,
              "coverage_before": before, "coverage_after": after,
              "mean_log_likelihood": {"before": fit.log_likelihood_at_1, "after": fit.log_likelihood}}
    (work / "calibration.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    shares = "; ".join(f"{float(level):.0%}: {before[level]:.0%} -> {after[level]:.0%}" for level in before)
    feedback.pushInfo(f"Temperature fitted on {fit.n_used} geotagged photo(s): {fit.temperature:.3g} (use it as "
                      f"'Temperature' in later runs; saved in calibration.json). True positions inside the credible "
                      f"regions of {len(held_out)} held-out photo(s), before -> after: {shares}.")
