"""The temperature fit (``model_utils.evaluation.calibration``) on a synthetic collection whose right
temperature is known: the model's logits are twice what they should be, so T = 2 undoes it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from model_utils.evaluation.calibration import fit_temperature, tempered
from model_utils.geo import geodesic_km

BANDWIDTH_KM = 50.0


def _collection(n: int, scale: float, seed: int = 0):
    """(gallery latlon, reported probabilities per photo, true positions): the truth is drawn from the
    well-calibrated distribution (logits s) smoothed with the kernel; the model reports logits scale * s."""
    rng = np.random.default_rng(seed)
    lat, lon = np.meshgrid(np.arange(-10.0, 10.01, 0.5), np.arange(-10.0, 10.01, 0.5), indexing="ij")
    gallery = np.column_stack([lat.ravel(), lon.ravel()])
    probs, truths = [], []
    for _ in range(n):
        centre = rng.uniform(-6, 6, size=2)
        d = geodesic_km(centre[0], centre[1], gallery[:, 0], gallery[:, 1])
        logits = -0.5 * (d / 300.0) ** 2
        calibrated = np.exp(logits - logits.max())
        calibrated /= calibrated.sum()
        i = rng.choice(len(gallery), p=calibrated)
        dy, dx = rng.normal(0, BANDWIDTH_KM, size=2)  # the kernel: a Gaussian of the bandwidth, in km
        truth = (gallery[i, 0] + dy / 111.2, gallery[i, 1] + dx / (111.2 * math.cos(math.radians(gallery[i, 0]))))
        reported = np.exp(scale * (logits - logits.max()))
        probs.append(reported / reported.sum())
        truths.append(truth)
    return gallery, probs, truths


def test_tempering_divides_the_logits():
    p = np.array([0.7, 0.2, 0.1])
    assert np.allclose(tempered(p, 1.0), p)
    assert np.allclose(tempered(p, 2.0), np.sqrt(p) / np.sqrt(p).sum(), atol=1e-6)
    assert tempered(p, 0.1).argmax() == 0 and tempered(p, 0.1)[0] > 0.99
    with pytest.raises(ValueError, match="> 0"):
        tempered(p, 0.0)


@pytest.mark.parametrize("scale", [2.0, 0.5])
def test_the_fit_recovers_the_known_temperature(scale):
    gallery, probs, truths = _collection(250, scale)
    fit = fit_temperature(probs, truths, gallery, bandwidth_km=BANDWIDTH_KM)
    assert fit.temperature == pytest.approx(scale, rel=0.15)
    assert fit.n_used == 250 and fit.n_skipped == 0
    assert fit.log_likelihood > fit.log_likelihood_at_1  # it found something better than leaving it


def test_coverage_is_off_as_trained_and_at_the_level_after_the_fit():
    """The issue's check on a collection where the right temperature is known (logits scaled 2x): the
    regions of the maps the user would see hold their photo's truth far less often than their level at
    T = 1 (over-confident), and at the fitted T as often as the level, to within what 250 photos allow
    (3 binomial standard errors: 0.095 at 50 %, 0.057 at 90 %)."""
    from model_utils.analysis import truth_inside
    from model_utils.maps.grid import GridSpec
    from model_utils.maps.heatmap import probability_grid
    from model_utils.maps.regions import region_cells

    n, levels = 250, (0.5, 0.9)
    gallery, probs, truths = _collection(n, 2.0)
    spec = GridSpec(-12.0, -12.0, 12.0, 12.0, cell_size=0.25)  # the gallery and 2 degrees around it

    def coverage(temperature: float) -> np.ndarray:
        inside = np.zeros(len(levels))
        for p, truth in zip(probs, truths):
            grid = probability_grid(gallery[:, 0], gallery[:, 1], tempered(p, temperature), spec,
                                    bandwidth_km=BANDWIDTH_KM)
            inside += [truth_inside(r.mask, spec, truth) for r in region_cells(grid.values, spec, levels)]
        return inside / n

    standard_error = np.sqrt(np.multiply(levels, np.subtract(1, levels)) / n)
    fit = fit_temperature(probs, truths, gallery, bandwidth_km=BANDWIDTH_KM)
    before, after = coverage(1.0), coverage(fit.temperature)
    assert np.all(before < np.subtract(levels, 4 * standard_error))  # measured: 0.33 and 0.68
    assert np.all(np.abs(after - levels) < 3 * standard_error)  # measured: 0.50 and 0.89 (T = 1.99)


def test_photos_far_from_every_gallery_point_are_skipped_and_no_data_is_an_error():
    gallery, probs, truths = _collection(20, 2.0)
    fit = fit_temperature(probs + [probs[0]], truths + [(60.0, 100.0)], gallery, bandwidth_km=BANDWIDTH_KM)
    assert fit.n_skipped == 1 and fit.n_used == 20
    with pytest.raises(ValueError, match="nothing to fit"):
        fit_temperature([probs[0]], [(60.0, 100.0)], gallery, bandwidth_km=BANDWIDTH_KM)
    with pytest.raises(ValueError, match="probability vectors"):
        fit_temperature(probs, truths[:3], gallery)


CITIES = [(48.86, 2.35), (51.51, -0.13), (40.71, -74.01), (35.68, 139.65), (-33.86, 151.21), (55.76, 37.62),
          (-23.55, -46.63), (30.04, 31.24), (19.43, -99.13), (28.61, 77.21), (1.35, 103.82), (-1.29, 36.82)]


def test_a_run_fits_a_temperature_and_reports_held_out_coverage(geoclip_provider, clip_env, tmp_path):
    import json

    import processing

    from tests.embedding_helpers import LogFeedback
    from tools.samples.photos import write_gps_photo

    for i, (lat, lon) in enumerate(CITIES):
        write_gps_photo(tmp_path / "in" / f"city_{i:02d}.jpg", lat, lon)
    feedback = LogFeedback()
    out = processing.run("geoclip:geolocatephotos", {"FOLDER": str(tmp_path / "in"), "CELL_SIZE": 5.0,
                                                     "FIT_TEMPERATURE": True, "OUTPUT_FOLDER": str(tmp_path / "out")},
                         feedback=feedback)
    record = json.loads((tmp_path / "out" / out["RUN_FOLDER"].split("/")[-1] / "calibration.json").read_text())
    assert (record["fitted_on"], record["held_out"]) == (8, 4)
    assert 0.05 <= record["temperature"] <= 20 and record["temperature_before"] == 1.0
    assert set(record["coverage_before"]) == set(record["coverage_after"]) == {"0.5", "0.9"}
    shares = [*record["coverage_before"].values(), *record["coverage_after"].values()]
    assert all(share in (0.0, 0.25, 0.5, 0.75, 1.0) for share in shares)  # of the 4 held-out photos
    assert record["mean_log_likelihood"]["after"] >= record["mean_log_likelihood"]["before"]
    assert "Temperature fitted on 8 geotagged photo(s)" in feedback.text

    few = LogFeedback()  # too few photos: said, and the run still delivers
    out = processing.run("geoclip:geolocatephotos", {"PHOTOS": [str(tmp_path / "in" / "city_00.jpg")],
                                                     "CELL_SIZE": 5.0, "FIT_TEMPERATURE": True,
                                                     "OUTPUT_FOLDER": str(tmp_path / "few")}, feedback=few)
    assert out["N_PHOTOS"] == 1 and "needs at least 10 photos with EXIF GPS" in few.text


def test_the_temperature_option_spreads_probabilities_without_reordering(geoclip_provider, clip_env, tmp_path):
    import processing
    from osgeo import gdal
    from qgis.core import QgsVectorLayer

    from tools.samples.official import kauai_png

    def run(temperature: float, folder: str):
        out = processing.run("geoclip:geolocatephotos", {"PHOTOS": [str(kauai_png())], "TOP_K": 5, "CELL_SIZE": 5.0,
                                                         "TEMPERATURE": temperature,
                                                         "OUTPUT_FOLDER": str(tmp_path / folder)})
        layer = QgsVectorLayer(out["POINTS"], "p", "ogr")
        rows = sorted((f["rank"], f["lat"], f["lon"], f["prob"]) for f in layer.getFeatures())
        dataset = gdal.Open(out["RASTERS"][0])  # kept while its band is read (GDAL frees bands with it)
        values = dataset.GetRasterBand(1).ReadAsArray()
        dataset = None
        return rows, values

    plain, plain_raster = run(1.0, "t1")
    warm, warm_raster = run(3.0, "t3")
    assert [r[:3] for r in plain] == [r[:3] for r in warm]  # the same guesses in the same order
    assert warm[0][3] < plain[0][3]  # the best guess holds less
    assert warm_raster.sum() == pytest.approx(1.0, abs=1e-3) and warm_raster.max() < plain_raster.max()
