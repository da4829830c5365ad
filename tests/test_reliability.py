"""Reliability: every algorithm with awkward but legal paths (spaces, non-ASCII, quotes), and outputs that
already exist, finishes cleanly and leaves exactly its outputs behind."""

from __future__ import annotations

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsProcessingException, QgsVectorLayer

from tests.embedding_helpers import FMT, LogFeedback, folder_files, point_layer, random_latlon, run

AWKWARD = "Zürich 'Daten' & ünïcode – ok"


def read_raster(path: str) -> np.ndarray:
    """Band 1 as an array; the dataset stays referenced while reading (GDAL 3.6 bands do not keep it alive)."""
    dataset = gdal.Open(path)
    values = dataset.GetRasterBand(1).ReadAsArray()
    dataset = None
    return values


@pytest.mark.parametrize("fmt", ["gpkg", "shp", "csv", "npz", "parquet"])
def test_embedding_export_to_an_awkward_folder(geoclip_provider, tmp_path, fmt):
    folder = tmp_path / AWKWARD
    out = run({"INPUT": point_layer(random_latlon(20, seed=4)), "FORMAT": FMT[fmt], "PCA_COMPONENTS": 3,
               "OUTPUT": str(folder / f"em beddings.{fmt}")})
    files = folder_files(folder)
    assert f"em beddings.{fmt}.pca.npz" in files and all(not f.startswith(".") for f in files)
    if fmt in ("gpkg", "shp"):
        layer = QgsVectorLayer(out["OUTPUT"], "o", "ogr")
        assert layer.isValid() and layer.featureCount() == 20


def test_gpkg_table_name_with_quotes_and_spaces(geoclip_provider, tmp_path):
    out = run({"INPUT": point_layer(random_latlon(7, seed=5)), "LAYOUT": 1,
               "OUTPUT": str(tmp_path / "l'été \"2026\".gpkg")})
    layer = QgsVectorLayer(out["OUTPUT"], "o", "ogr")
    assert layer.isValid() and layer.featureCount() == 7
    assert len(bytes(next(layer.getFeatures())["embedding"])) == 2048


def test_text_geolocation_into_an_awkward_folder_twice(geoclip_provider, clip_env, tmp_path):
    import processing

    params = {"QUERIES": "Zürich Hauptbahnhof\nl'Arc de Triomphe", "CELL_SIZE": 2.0, "TOP_K": 2,
              "OUTPUT_FOLDER": str(tmp_path / AWKWARD)}
    first = processing.run("geoclip:geolocatetext", params)
    second = processing.run("geoclip:geolocatetext", params)
    assert first["RUN_FOLDER"] != second["RUN_FOLDER"]  # never overwritten
    for out in (first, second):
        assert len(out["RASTERS"]) == 2
        assert all(abs(read_raster(r).sum() - 1) < 1e-3 for r in out["RASTERS"])
        assert QgsVectorLayer(out["POINTS"], "p", "ogr").featureCount() == 4


def test_places_like_here_into_an_awkward_path(geoclip_provider, tmp_path):
    import processing

    target = tmp_path / AWKWARD / "ähnlich.tif"
    target.parent.mkdir()
    out = processing.run("geoclip:placeslikehere", {"POINT": "8.54,47.37 [EPSG:4326]", "CELL_SIZE": 5.0,
                                                     "OUTPUT": str(target)})
    values = read_raster(out["OUTPUT"])
    assert values.shape == (36, 72) and np.isfinite(values).all()


def test_existing_geopackage_is_never_overwritten_in_any_layout(geoclip_provider, tmp_path):
    target = tmp_path / "taken.gpkg"
    target.write_bytes(b"precious")
    for layout in (0, 1):
        feedback = LogFeedback()
        with pytest.raises(QgsProcessingException, match="already exists"):
            run({"INPUT": point_layer(random_latlon(3)), "LAYOUT": layout, "OUTPUT": str(target)}, feedback)
    assert target.read_bytes() == b"precious" and folder_files(tmp_path) == ["taken.gpkg"]


def test_point_layer_with_null_and_empty_points(geoclip_provider, tmp_path):
    from qgis.core import QgsGeometry

    from tests.embedding_helpers import add_features, memory_layer

    layer = memory_layer()
    fids = add_features(layer, ["POINT(10 20)", None, QgsGeometry.fromWkt("POINT EMPTY"), "POINT(-30 -40)"])
    feedback = LogFeedback()
    out = run({"INPUT": layer, "OUTPUT": str(tmp_path / "p.gpkg")}, feedback)
    assert out["FEATURE_COUNT"] == 2 and out["SKIPPED_COUNT"] == 2
    assert f"2 feature(s) of 'input' skipped: NULL or empty geometry (feature id {fids[1]}, {fids[2]})" in feedback.text
    written = QgsVectorLayer(out["OUTPUT"], "p", "ogr")
    assert sorted((round(f["lat"], 6), round(f["lon"], 6)) for f in written.getFeatures()) == [(-40, -30), (20, 10)]


@pytest.mark.parametrize("mode", [False, True])
def test_writing_a_raster_leaves_gdals_exception_mode_as_it_was(tmp_path, mode):
    """GDAL's exception mode is one switch for every plugin in QGIS's interpreter: ours only borrows it."""
    from geoclip_qgis.processing.io.outputs import write_geotiff

    was = gdal.GetUseExceptions()
    (gdal.UseExceptions if mode else gdal.DontUseExceptions)()
    try:
        path = write_geotiff(np.ones((4, 8), np.float32), (-180, 45, 0, 90, 0, -45), tmp_path / "ok.tif")
        assert gdal.Open(str(path)).RasterXSize == 8
        assert bool(gdal.GetUseExceptions()) is mode
        with pytest.raises(QgsProcessingException, match="Could not write raster"):
            write_geotiff(np.ones((4, 8), np.float32), (-180, 45, 0, 90, 0, -45), tmp_path / "no" / "such.tif")
        assert bool(gdal.GetUseExceptions()) is mode
        assert not list(tmp_path.glob("*.part*"))
    finally:
        (gdal.UseExceptions if was else gdal.DontUseExceptions)()
