"""Credible regions in the batch job, without Ray: the shard function writes each photo's regions
(WKB, level, area, enclosed, parts) beside its predictions, equal to ``prediction_regions`` on the same
probabilities; off by default, and --credible-levels is checked before any work."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from model_utils.analysis import prediction_regions
from model_utils.batch.__main__ import _levels
from model_utils.batch.plan import regions_path, shard_path
from model_utils.batch.workers import GeolocateShards, analysis_options
from model_utils.maps.grid import GridSpec
from model_utils.model.predictor import Prediction

CELL_DEG, BANDWIDTH_KM = 1.0, 100.0


class Gallery:
    def __init__(self, latlon: np.ndarray) -> None:
        self.latlon = latlon

    def __len__(self) -> int:
        return len(self.latlon)


class FakeModel:
    """A gallery of 1-degree points around (10 N, 20 E) and one Gaussian answer per photo; 'bad' fails."""

    def __init__(self) -> None:
        lat, lon = np.meshgrid(np.arange(0.0, 20.01, 1.0), np.arange(10.0, 30.01, 1.0), indexing="ij")
        self.gallery = Gallery(np.column_stack([lat.ravel(), lon.ravel()]))

    def iter_predict(self, paths, top_k, batch_size):
        latlon = self.gallery.latlon
        for i, path in enumerate(paths):
            if "bad" in path:
                yield Prediction(source=path, error=f"{path}: not a photo")
                continue
            probs = np.exp(-0.5 * (np.hypot(latlon[:, 0] - 10 - i, latlon[:, 1] - 20) / (2.0 + i)) ** 2)
            probs = (probs / probs.sum()).astype(np.float32)
            top = np.argsort(-probs)[:top_k]
            yield Prediction(source=path, lat=latlon[top, 0], lon=latlon[top, 1], prob=probs[top], indices=top,
                             gallery_probs=probs)


def shards(tmp_path, levels, land=None) -> GeolocateShards:
    """The actor's state without loading GeoCLIP (its __init__ does only that besides these attributes)."""
    worker = GeolocateShards.__new__(GeolocateShards)
    worker.__dict__.update(out=tmp_path, model=FakeModel(), top_k=3, batch_size=2, pid=0, levels=tuple(levels),
                           options=analysis_options(tuple(levels), CELL_DEG, BANDWIDTH_KM, 1.0, land), references=None)
    return worker


@pytest.mark.parametrize("on_land", [False, True])
def test_a_shard_writes_each_photos_regions_beside_its_predictions(tmp_path, on_land):
    """The same regions as prediction_regions, with the land mask the driver shipped or over sea too."""
    import shapely

    from model_utils.maps.land import load_land_mask

    land = load_land_mask(CELL_DEG) if on_land else None  # the gallery reaches the Gulf of Guinea
    worker = shards(tmp_path, (0.5, 0.9), land)
    done, failed, _ = worker.run_shard(3, ["p0.jpg", "bad.jpg", "p2.jpg"])
    assert (done, failed) == (2, 1)
    table = pq.read_table(regions_path(tmp_path, 3))
    rows = table.to_pylist()
    assert [(r["photo"], r["level"]) for r in rows] == [("p0.jpg", 0.5), ("p0.jpg", 0.9), ("p2.jpg", 0.5),
                                                       ("p2.jpg", 0.9)]  # the failed photo has none
    fake = FakeModel()
    answers = {p.source: p for p in fake.iter_predict(["p0.jpg", "bad.jpg", "p2.jpg"], 3, 2) if p.ok}
    for row in rows:
        expected = next(r for r in prediction_regions(answers[row["photo"]], fake.gallery.latlon,
                                                      GridSpec.world(cell_size=CELL_DEG), (0.5, 0.9),
                                                      bandwidth_km=BANDWIDTH_KM, land=on_land)
                        if r.level == row["level"])
        geometry = shapely.from_wkb(row["geometry"])
        assert geometry.equals(expected.geometry) and geometry.is_valid
        assert (row["area_km2"], row["enclosed"], row["n_parts"]) == (expected.area_km2, expected.enclosed,
                                                                       expected.n_parts)
        assert row["enclosed"] >= row["level"]
    geo = json.loads(table.schema.metadata[b"geo"])["columns"]["geometry"]
    assert geo["encoding"] == "WKB" and "MultiPolygon" in geo["geometry_types"]
    assert geo["bbox"][0] < 20 < geo["bbox"][2] and geo["bbox"][1] < 10 < geo["bbox"][3]
    assert pq.read_table(shard_path(tmp_path, 3)).num_rows == 2 * 3 + 1  # the predictions are unchanged


def test_regions_are_off_by_default_and_bad_levels_are_refused(tmp_path):
    worker = shards(tmp_path, ())
    worker.run_shard(0, ["p0.jpg"])
    assert shard_path(tmp_path, 0).exists() and not regions_path(tmp_path, 0).exists()
    assert _levels("") == () and _levels("0.5, 0.9") == (0.5, 0.9)
    for bad in ("0.5,1.2", "0", "half"):
        with pytest.raises(ValueError, match="--credible-levels"):
            _levels(bad)
