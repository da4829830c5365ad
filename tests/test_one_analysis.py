"""One per-photo analysis for every path: the same photos through the QGIS algorithm and through the batch job's
worker (no Ray needed), at the same temperature, grid, kernel, land mask and levels, give the same top-k, the same
probabilities and the same credible regions with the same areas."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
from osgeo import ogr

from tools.samples.photos import write_gps_photo, write_photos

TEMPERATURE, CELL_DEG, BANDWIDTH_KM, LEVELS, TOP_K, BATCH = 1.7, 1.0, 100.0, (0.5, 0.9), 3, 2


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[str]:
    folder = tmp_path_factory.mktemp("one-analysis")
    paths = write_photos(folder, n=3, size=(96, 72))
    paths.append(write_gps_photo(folder / "lisbon.jpg", 38.72, -9.14, size=(96, 72)))
    return [str(p) for p in paths]


def _qgis_run(photos, tiny_clip, out) -> tuple[dict, dict]:
    """(photo -> [(rank, lat, lon, prob)], (photo, level) -> area km²) from geoclip:geolocatephotos' GeoPackage."""
    import processing

    result = processing.run("geoclip:geolocatephotos", {
        "PHOTOS": photos, "CLIP_MODEL": str(tiny_clip), "TEMPERATURE": TEMPERATURE, "CELL_SIZE": CELL_DEG,
        "BANDWIDTH_KM": BANDWIDTH_KM, "CREDIBLE_LEVELS": ", ".join(f"{v:g}" for v in LEVELS), "TOP_K": TOP_K,
        "BATCH_SIZE": BATCH, "ON_LAND": True, "OUTPUT_FOLDER": str(out)})
    source = ogr.Open(result["POINTS"])
    points: dict = {}
    for feature in source.GetLayerByName("predictions"):
        points.setdefault(feature["photo"], []).append((feature["rank"], feature["lat"], feature["lon"],
                                                        feature["prob"]))
    areas = {(f["photo"], round(f["level"], 6)): f["area_km2"] for f in source.GetLayerByName("credible_regions")}
    source = None
    return points, areas


def _batch_shard(photos, tiny_clip, out) -> tuple[dict, dict]:
    """The same from one shard of the batch job's worker, with the land mask the driver would ship."""
    from model_utils.batch.plan import regions_path, shard_path
    from model_utils.batch.workers import GeolocateShards
    from model_utils.maps.land import load_land_mask

    out.mkdir(parents=True)  # the driver makes it
    model_args = {"clip_model": str(tiny_clip), "weights": None, "device": "cpu", "precision": "fp32",
                  "cache_dir": None}
    worker = GeolocateShards(str(out), model_args, [], top_k=TOP_K, batch_size=BATCH, levels=LEVELS,
                             cell_deg=CELL_DEG, bandwidth_km=BANDWIDTH_KM, temperature=TEMPERATURE,
                             land_ref=[load_land_mask(CELL_DEG)])
    assert worker.run_shard(0, photos)[:2] == (len(photos), 0)
    points: dict = {}
    for row in pq.read_table(shard_path(out, 0)).to_pylist():
        points.setdefault(row["photo"], []).append((row["rank"], row["lat"], row["lon"], row["prob"]))
    areas = {(r["photo"], round(r["level"], 6)): r["area_km2"] for r in pq.read_table(regions_path(out, 0)).to_pylist()}
    return points, areas


def test_the_qgis_run_and_the_batch_worker_give_the_same_answer(geoclip_provider, photos, tiny_clip, tmp_path):
    qgis_points, qgis_areas = _qgis_run(photos, tiny_clip, tmp_path / "qgis")
    batch_points, batch_areas = _batch_shard(photos, tiny_clip, tmp_path / "batch")
    assert sorted(qgis_points) == sorted(batch_points) == sorted(photos)
    for photo in photos:
        ours, theirs = sorted(qgis_points[photo]), sorted(batch_points[photo])
        assert [r[:3] for r in ours] == [r[:3] for r in theirs], photo  # same guesses, same order
        np.testing.assert_allclose([r[3] for r in ours], [r[3] for r in theirs], rtol=1e-5)  # at the temperature
    assert set(qgis_areas) == set(batch_areas) == {(p, level) for p in photos for level in LEVELS}
    for key, area in qgis_areas.items():
        assert area == pytest.approx(batch_areas[key], rel=1e-9), key
    # the temperature reached both: the kept probabilities are not the model's own
    from model_utils import GeoCLIP

    plain = {p.source: p for p in GeoCLIP.from_pretrained(clip_model=str(tiny_clip), device="cpu")
             .predict(photos, top_k=TOP_K, batch_size=BATCH)}
    assert all(abs(sorted(qgis_points[p])[0][3] - plain[p].prob[0]) > 1e-4 for p in photos)


def test_the_ray_cluster_algorithm_takes_the_same_levels_and_temperature(geoclip_provider, tmp_path):
    """The cluster run offers what the local run offers and hands it to the job's workers; a bad level is refused
    before anything is submitted."""
    from qgis.core import QgsProcessingContext, QgsProcessingException, QgsProcessingFeedback

    alg = geoclip_provider.algorithm("geolocateraycluster").create()
    for key in ("CREDIBLE_LEVELS", "TEMPERATURE"):
        assert alg.parameterDefinition(key) is not None, key
    assert alg.parameterDefinition("CREDIBLE_LEVELS").defaultValue() == "0.5, 0.9"
    context, feedback = QgsProcessingContext(), QgsProcessingFeedback()
    base = {"ADDRESS": "http://head:8265", "PHOTOS": str(tmp_path), "OUTPUT": str(tmp_path / "out")}
    run = alg.prepare({**base, "CREDIBLE_LEVELS": "50%, 90%", "TEMPERATURE": 1.7}, context, feedback)
    args = " ".join(run.args)
    assert "--credible-levels 0.5,0.9" in args and "--temperature 1.7" in args
    plain = " ".join(alg.prepare({**base, "CREDIBLE_LEVELS": "", "TEMPERATURE": 1.0}, context, feedback).args)
    assert "--credible-levels" not in plain and "--temperature" not in plain
    with pytest.raises(QgsProcessingException, match="Credible region levels '0.5, 1.5'"):
        alg.prepare({**base, "CREDIBLE_LEVELS": "0.5, 1.5"}, context, feedback)
