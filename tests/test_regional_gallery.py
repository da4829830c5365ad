"""City-scale zoom: ranking against a dense regional grid gallery instead of the 100K worldwide one."""

from __future__ import annotations

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsProcessingException, QgsVectorLayer

from model_utils.errors import GeoClipError
from model_utils.model.gallery import Gallery
from tests.embedding_helpers import LogFeedback
from tools.samples.official import kauai_png

PARIS = "2.2,2.5,48.8,48.95 [EPSG:4326]"  # xmin, xmax, ymin, ymax


@pytest.fixture(scope="module")
def model(tiny_model):
    return tiny_model



def run(alg: str, params: dict, feedback=None) -> dict:
    import processing

    return processing.run(f"geoclip:{alg}", params, feedback=feedback or LogFeedback())


def test_predictions_come_from_the_regional_grid_and_leave_the_default_alone(model):
    model.gallery_embeddings()  # the default gallery loaded first, as in a QGIS session after a worldwide run
    grid = Gallery.grid(0.01, (2.2, 48.8, 2.5, 48.95), name="paris")
    assert len(grid) == 30 * 15
    regional = model.predict_text(["Eiffel Tower"], top_k=5, gallery=grid)[0]
    assert len(regional.gallery_probs) == 450 and abs(float(regional.gallery_probs.sum()) - 1) < 1e-4
    on_grid = {tuple(p) for p in grid.latlon.astype(np.float64).round(6)}
    assert all((round(a, 6), round(b, 6)) in on_grid for a, b in zip(regional.lat, regional.lon))
    # the same query scored against the same points inside the full computation: equal ranking
    emb = model.gallery_embeddings(gallery=grid)
    query = model.embed_texts(["Eiffel Tower"])
    assert int((query @ emb.T).argmax()) == int(regional.indices[0])
    worldwide = model.predict_text(["Eiffel Tower"], top_k=1)[0]
    assert len(worldwide.gallery_probs) == len(model.gallery) == 100_000


def test_grid_gallery_size_is_capped():
    with pytest.raises(GeoClipError, match="more than 1,000,000"):
        Gallery.grid(0.0005, (0.0, 0.0, 1.0, 1.0))


def test_regional_photo_geolocation_raster_and_points(geoclip_provider, clip_env, tmp_path):
    feedback = LogFeedback()
    out = run("geolocatephotos", {"PHOTOS": [str(kauai_png())], "TOP_K": 3, "CELL_SIZE": 0.01, "BANDWIDTH_KM": 0,
                                  "EXTENT": PARIS, "GALLERY": 1, "OUTPUT_FOLDER": str(tmp_path / "out")}, feedback)
    assert "Regional gallery: 450 points every 0.01°" in feedback.text
    assert "is wide for an extent" not in feedback.text
    ds = gdal.Open(out["RASTERS"][0])
    assert (ds.RasterXSize, ds.RasterYSize) == (30, 15)
    assert ds.GetGeoTransform() == pytest.approx((2.2, 0.01, 0, 48.95, 0, -0.01))
    assert abs(float(ds.GetRasterBand(1).ReadAsArray().sum()) - 1.0) < 1e-3  # all the mass is in the extent
    points = QgsVectorLayer(out["POINTS"], "p", "ogr")
    assert points.featureCount() == 3
    for feature in points.getFeatures():
        assert 2.2 < feature["lon"] < 2.5 and 48.8 < feature["lat"] < 48.95


def test_regional_text_query_with_its_own_spacing(geoclip_provider, clip_env, tmp_path):
    feedback = LogFeedback()
    out = run("geolocatetext", {"QUERIES": "Eiffel Tower", "CELL_SIZE": 0.01, "GALLERY": 1, "GALLERY_SPACING": 0.05,
                                "BANDWIDTH_KM": 0, "EXTENT": PARIS, "OUTPUT_FOLDER": str(tmp_path / "out")}, feedback)
    assert "Regional gallery: 18 points every 0.05°" in feedback.text
    ds = gdal.Open(out["RASTERS"][0])
    assert (ds.RasterXSize, ds.RasterYSize) == (30, 15)
    assert abs(float(ds.GetRasterBand(1).ReadAsArray().sum()) - 1.0) < 1e-3


def test_regional_gallery_needs_an_extent_and_a_sane_size(geoclip_provider, clip_env, tmp_path):
    with pytest.raises(QgsProcessingException, match="A regional gallery needs a raster extent"):
        run("geolocatetext", {"QUERIES": "x", "GALLERY": 1, "OUTPUT_FOLDER": str(tmp_path / "out")})
    with pytest.raises(QgsProcessingException, match="more than 1,000,000"):
        run("geolocatetext", {"QUERIES": "x", "GALLERY": 1, "GALLERY_SPACING": 0.001, "EXTENT": "0,10,0,10 [EPSG:4326]",
                              "CELL_SIZE": 0.1, "OUTPUT_FOLDER": str(tmp_path / "out")})
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    feedback = LogFeedback()  # a 50 km kernel set over a city: kept, with a warning that says what to set
    out = run("geolocatetext", {"QUERIES": "x", "GALLERY": 1, "EXTENT": PARIS, "CELL_SIZE": 0.01,
                                "BANDWIDTH_KM": 50, "OUTPUT_FOLDER": str(tmp_path / "out")}, feedback)
    assert "Kernel bandwidth 50 km is wide for an extent about 17 km across" in feedback.text
    assert "about 0.7 km here" in feedback.text and out["N_QUERIES"] == 1
    assert gdal.Open(out["RASTERS"][0]).GetMetadataItem("bandwidth_km") == "50"


def test_the_bandwidth_follows_the_gallery_unless_set(geoclip_provider, clip_env, tmp_path):
    """No bandwidth given: the regional grid's spacing in km (0.01 deg at 48.9 N ~ 0.73 km), 50 km worldwide."""
    feedback = LogFeedback()
    out = run("geolocatetext", {"QUERIES": "x", "GALLERY": 1, "EXTENT": PARIS, "CELL_SIZE": 0.01,
                                "OUTPUT_FOLDER": str(tmp_path / "out")}, feedback)
    used = float(gdal.Open(out["RASTERS"][0]).GetMetadataItem("bandwidth_km"))
    assert used == pytest.approx(0.733, abs=0.01) and "is wide for an extent" not in feedback.text
    assert "the regional gallery's spacing" in feedback.text
    out = run("geolocatetext", {"QUERIES": "x", "CELL_SIZE": 5.0, "OUTPUT_FOLDER": str(tmp_path / "world")})
    assert gdal.Open(out["RASTERS"][0]).GetMetadataItem("bandwidth_km") == "50"


def test_dock_regional_checkbox(loaded_plugin):
    tab = loaded_plugin.dock.text_tab
    assert tab.results.regional.toolTip()
    tab.results.regional.setChecked(True)
    assert tab.parameters()["GALLERY"] == 1
    tab.results.regional.setChecked(False)
    assert tab.parameters()["GALLERY"] == 0
    tab.results.bandwidth.setValue(0)  # shown as "auto": the algorithm chooses
    assert tab.results.bandwidth.text() == "auto" and tab.parameters()["BANDWIDTH_KM"] is None
    tab.results.bandwidth.setValue(12.5)
    assert tab.parameters()["BANDWIDTH_KM"] == 12.5
    assert tab.parameters()["CREDIBLE_LEVELS"] == "0.5, 0.9" and tab.results.levels.toolTip()
    tab.results.levels.setText("")  # none
    assert tab.parameters()["CREDIBLE_LEVELS"] == ""
