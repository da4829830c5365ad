""""Places like here" (``geoclip:placeslikehere``, ``similarity_grid``) with the real GeoCLIP weights."""

from __future__ import annotations

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsPointXY, QgsProcessingException

from model_utils.maps.grid import GridSpec
from model_utils.maps.similarity import similarity_grid
from tests.embedding_helpers import add_features, folder_files, memory_layer

PARIS = (48.8566, 2.3522)
EUROPE = (-10.0, 35.0, 30.0, 60.0)  # xmin, ymin, xmax, ymax


@pytest.fixture(scope="module")
def model():
    from model_utils.model.geoclip import shared_model

    return shared_model()


def read_raster(path: str) -> tuple[np.ndarray, tuple]:
    dataset = gdal.Open(path)
    values, transform = dataset.GetRasterBand(1).ReadAsArray(), dataset.GetGeoTransform()
    dataset = None
    return values, transform


def test_centre_samples_equal_the_encoder(model):
    spec = GridSpec(*EUROPE, cell_size=1.0)
    values = similarity_grid(model, [PARIS], spec, samples=1)
    lon_g, lat_g = np.meshgrid(spec.lon_centers, spec.lat_centers)
    cells = model.encode_locations(np.column_stack([lat_g.ravel(), lon_g.ravel()]), normalize=True)
    query = model.encode_locations([PARIS], normalize=True)[0]
    assert values.shape == (25, 40)
    assert np.abs(values - (cells @ query).reshape(25, 40)).max() < 1e-5


def test_cell_means_average_the_samples_and_are_smoother(model):
    spec = GridSpec(*EUROPE, cell_size=1.0)
    mean2 = similarity_grid(model, [PARIS], spec, samples=2)
    # one cell by hand: the 4 points at +-0.25 degrees around its centre
    row, col = 3, 12
    lat, lon = spec.lat_centers[row], spec.lon_centers[col]
    points = [[lat + dy, lon + dx] for dy in (-0.25, 0.25) for dx in (-0.25, 0.25)]
    query = model.encode_locations([PARIS], normalize=True)[0]
    expected = float(np.mean(model.encode_locations(points, normalize=True) @ query))
    assert mean2[row, col] == pytest.approx(expected, abs=1e-5)
    # less speckle: neighbouring cells differ less than with one centre sample
    centre = similarity_grid(model, [PARIS], spec, samples=1)
    roughness = {k: float(np.abs(np.diff(v, axis=1)).mean() + np.abs(np.diff(v, axis=0)).mean())
                 for k, v in (("centre", centre), ("mean2", mean2))}
    assert roughness["mean2"] < 0.8 * roughness["centre"], roughness
    # the query's own cell is among the most similar
    r, c = int((spec.ymax - PARIS[0]) // 1.0), int((PARIS[1] - spec.xmin) // 1.0)
    assert mean2[r, c] >= np.quantile(mean2, 0.99)


def test_algorithm_point_in_any_crs_and_layer_input(geoclip_provider, tmp_path):
    import processing

    base = {"CELL_SIZE": 1.0, "EXTENT": "-10,30,35,60 [EPSG:4326]", "SAMPLES": 2, "MODE": 1}  # raw cosine
    a = processing.run("geoclip:placeslikehere", {**base, "POINT": f"{PARIS[1]},{PARIS[0]} [EPSG:4326]",
                                                  "OUTPUT": str(tmp_path / "a.tif")})
    b = processing.run("geoclip:placeslikehere", {**base, "POINT": "261845.7,6250564.3 [EPSG:3857]",
                                                  "OUTPUT": str(tmp_path / "b.tif")})
    layer = memory_layer("Point")  # a layer whose place is that one point (regions: see the test below)
    add_features(layer, [f"POINT({PARIS[1]} {PARIS[0]})"])
    c = processing.run("geoclip:placeslikehere", {**base, "LAYER": layer, "OUTPUT": str(tmp_path / "c.tif")})
    (va, ta), (vb, _), (vc, _) = (read_raster(r["OUTPUT"]) for r in (a, b, c))
    assert va.shape == (25, 40) and ta == pytest.approx((-10.0, 1.0, 0.0, 60.0, 0.0, -1.0))
    assert np.abs(va - vb).max() < 1e-3  # the same point given in Web Mercator
    assert np.abs(va - vc).max() < 1e-5
    assert -1.0 <= va.min() and va.max() <= 1.0


@pytest.mark.parametrize("params,message", [
    ({}, "Give a query point"),
    ({"POINT": "2.35,48.85 [EPSG:4326]", "OUTPUT": "x.png"}, "is a GeoTIFF"),
])
def test_bad_input_is_a_clear_error(geoclip_provider, tmp_path, params, message):
    import processing

    params = {"OUTPUT": str(tmp_path / "out.tif"), **params}
    if not params["OUTPUT"].startswith("/"):
        params["OUTPUT"] = str(tmp_path / params["OUTPUT"])
    with pytest.raises(QgsProcessingException, match=message):
        processing.run("geoclip:placeslikehere", {"CELL_SIZE": 5.0, **params})
    assert folder_files(tmp_path) == []


def test_existing_raster_is_not_overwritten(geoclip_provider, tmp_path):
    import processing

    target = tmp_path / "taken.tif"
    target.write_bytes(b"keep")
    with pytest.raises(QgsProcessingException, match="already exists"):
        processing.run("geoclip:placeslikehere", {"POINT": "2.35,48.85 [EPSG:4326]", "CELL_SIZE": 5.0,
                                                   "OUTPUT": str(target)})
    assert target.read_bytes() == b"keep"


def test_the_similarity_style_spans_the_top_tenth_without_reading_the_raster(geoclip_provider, tmp_path,
                                                                            monkeypatch):
    """The load path as the toolbox runs it: the layer comes back styled over the top 10% of cells, a range
    the algorithm computed and stored in the file; styling reads no pixels (the GUI thread stays free)."""
    import processing
    from qgis.core import QgsProject, QgsRasterLayer

    from geoclip_qgis import layers

    out = processing.runAndLoadResults("geoclip:placeslikehere", {
        "POINT": f"{PARIS[1]},{PARIS[0]} [EPSG:4326]", "CELL_SIZE": 1.0, "EXTENT": "-10,30,35,60 [EPSG:4326]",
        "SAMPLES": 1, "MODE": 1, "OUTPUT": str(tmp_path / "paris.tif")})
    values, _ = read_raster(out["OUTPUT"])
    loaded = [layer for layer in QgsProject.instance().mapLayers().values()
              if isinstance(layer, QgsRasterLayer) and layer.source() == out["OUTPUT"]]
    assert len(loaded) == 1
    fcn = loaded[0].renderer().shader().rasterShaderFunction()
    assert fcn.minimumValue() == pytest.approx(np.quantile(values, 0.9), rel=1e-5)
    assert fcn.maximumValue() == pytest.approx(values.max(), rel=1e-5)
    assert fcn.legendSettings().minimumLabel() == f"{fcn.minimumValue():.3g}"

    # restyling the same layer never reads the pixels
    def no_pixel_reads(*_args, **_kwargs):
        raise AssertionError("the styler read the raster's pixels")

    monkeypatch.setattr(gdal.Dataset, "ReadAsArray", no_pixel_reads)
    monkeypatch.setattr(gdal.Band, "ReadAsArray", no_pixel_reads)
    layers.style_similarity_raster(loaded[0])
    assert loaded[0].renderer().shader().rasterShaderFunction().minimumValue() == pytest.approx(fcn.minimumValue())
    QgsProject.instance().removeMapLayer(loaded[0].id())


# ---------------------------------------------------------------------------- the default: analogues
WORLD = GridSpec(-180.0, -90.0, 180.0, 90.0, cell_size=1.0)


def test_the_default_raster_is_a_probability_over_land_for_places_on_five_continents(model):
    """Mass sums to 1 and lies where photos are taken. Measured (make bench, section maps): 0.952 for the
    lowest of the 20 places (Madrid), 0.987 on average; the raw cosine field's positive part gives 0.51,
    near the 0.39 of cells land touches."""
    from model_utils.maps.similarity import analogue_grid
    from tools.samples.land import PROBE_PLACES, land_mask

    land = land_mask(WORLD)
    shares = {}
    for places in PROBE_PLACES.values():
        for name, lat, lon in places:
            values = analogue_grid(model, [[lat, lon]], WORLD, bandwidth_km=50.0, exclude_km=300.0).values
            assert values.sum() == pytest.approx(1.0, abs=1e-3), name
            shares[name] = float(values[land].sum() / values.sum())
    assert len(shares) == 20 and min(shares.values()) >= 0.90, shares
    assert np.mean(list(shares.values())) >= 0.95, shares


def test_the_neighbourhood_radius_removes_the_mass_around_the_place(model):
    from model_utils.geo import geodesic_km
    from model_utils.maps.similarity import analogue_grid, analogue_probs

    gallery = model.gallery.latlon
    near = geodesic_km(PARIS[0], PARIS[1], gallery[:, 0], gallery[:, 1]) < 300.0
    kept, left_out = analogue_probs(model, [PARIS], exclude_km=0.0), analogue_probs(model, [PARIS], exclude_km=300.0)
    assert kept[near].sum() > 0.5  # without the radius, the place's own surroundings hold most of it
    assert left_out[near].sum() == 0.0 and left_out.sum() == pytest.approx(1.0, abs=1e-5)
    spec = GridSpec(-10.0, 35.0, 30.0, 60.0, cell_size=0.5)
    values = analogue_grid(model, [PARIS], spec, bandwidth_km=50.0, exclude_km=300.0).values
    lon_g, lat_g = np.meshgrid(spec.lon_centers, spec.lat_centers)
    inner = geodesic_km(PARIS[0], PARIS[1], lat_g, lon_g) < 300.0 - 3 * 50.0  # beyond the kernel's reach
    assert values[inner].sum() < 1e-4


def test_the_raw_mode_is_the_cosine_field_and_a_region_is_the_mean_of_its_points(geoclip_provider, model,
                                                                                 tmp_path):
    import processing

    from geoclip_qgis.processing.io.geometry import sample_points
    from model_utils.maps.similarity import query_embedding

    spec = GridSpec(-10.0, 35.0, 30.0, 60.0, cell_size=1.0)  # "xmin,xmax,ymin,ymax" below
    out = processing.run("geoclip:placeslikehere", {
        "POINT": f"{PARIS[1]},{PARIS[0]} [EPSG:4326]", "MODE": 1, "SAMPLES": 1, "CELL_SIZE": 1.0,
        "EXTENT": "-10,30,35,60 [EPSG:4326]", "OUTPUT": str(tmp_path / "raw.tif")})
    values, _ = read_raster(out["OUTPUT"])
    np.testing.assert_allclose(values, similarity_grid(model, [PARIS], spec, samples=1), atol=1e-6)

    layer = memory_layer("Polygon")
    add_features(layer, ["POLYGON((2.0 48.6, 2.8 48.6, 2.8 49.1, 2.0 49.1, 2.0 48.6))"])
    polygon = next(layer.getFeatures()).geometry()
    points = [[p.y(), p.x()] for p in sample_points(polygon)]
    assert 40 <= len(points) <= 90 and all(polygon.contains(QgsPointXY(lon, lat)) for lat, lon in points)
    emb = model.encode_locations(np.array(points), normalize=True)
    mean = emb.mean(axis=0)
    np.testing.assert_allclose(query_embedding(model, points), mean / np.linalg.norm(mean), atol=1e-6)
    region = processing.run("geoclip:placeslikehere", {"LAYER": layer, "CELL_SIZE": 5.0,
                                                       "OUTPUT": str(tmp_path / "region.tif")})
    from model_utils.maps.similarity import analogue_grid

    got, _ = read_raster(region["OUTPUT"])
    expected = analogue_grid(model, points, GridSpec(-180.0, -90.0, 180.0, 90.0, cell_size=5.0),
                             bandwidth_km=50.0, exclude_km=300.0).values
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert gdal.Open(region["OUTPUT"]).GetMetadataItem("query_points") == str(len(points))
