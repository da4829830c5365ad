""""Places like here" (``geoclip:placeslikehere``, ``similarity_grid``) with the real GeoCLIP weights."""

from __future__ import annotations

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsProcessingException

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
    values = similarity_grid(model, *PARIS, spec, samples=1)
    lon_g, lat_g = np.meshgrid(spec.lon_centers, spec.lat_centers)
    cells = model.encode_locations(np.column_stack([lat_g.ravel(), lon_g.ravel()]), normalize=True)
    query = model.encode_locations([PARIS], normalize=True)[0]
    assert values.shape == (25, 40)
    assert np.abs(values - (cells @ query).reshape(25, 40)).max() < 1e-5


def test_cell_means_average_the_samples_and_are_smoother(model):
    spec = GridSpec(*EUROPE, cell_size=1.0)
    mean2 = similarity_grid(model, *PARIS, spec, samples=2)
    # one cell by hand: the 4 points at +-0.25 degrees around its centre
    row, col = 3, 12
    lat, lon = spec.lat_centers[row], spec.lon_centers[col]
    points = [[lat + dy, lon + dx] for dy in (-0.25, 0.25) for dx in (-0.25, 0.25)]
    query = model.encode_locations([PARIS], normalize=True)[0]
    expected = float(np.mean(model.encode_locations(points, normalize=True) @ query))
    assert mean2[row, col] == pytest.approx(expected, abs=1e-5)
    # less speckle: neighbouring cells differ less than with one centre sample
    centre = similarity_grid(model, *PARIS, spec, samples=1)
    roughness = {k: float(np.abs(np.diff(v, axis=1)).mean() + np.abs(np.diff(v, axis=0)).mean())
                 for k, v in (("centre", centre), ("mean2", mean2))}
    assert roughness["mean2"] < 0.8 * roughness["centre"], roughness
    # the query's own cell is among the most similar
    r, c = int((spec.ymax - PARIS[0]) // 1.0), int((PARIS[1] - spec.xmin) // 1.0)
    assert mean2[r, c] >= np.quantile(mean2, 0.99)


def test_algorithm_point_in_any_crs_and_layer_input(geoclip_provider, tmp_path):
    import processing

    base = {"CELL_SIZE": 1.0, "EXTENT": "-10,30,35,60 [EPSG:4326]", "SAMPLES": 2}
    a = processing.run("geoclip:placeslikehere", {**base, "POINT": f"{PARIS[1]},{PARIS[0]} [EPSG:4326]",
                                                  "OUTPUT": str(tmp_path / "a.tif")})
    b = processing.run("geoclip:placeslikehere", {**base, "POINT": "261845.7,6250564.3 [EPSG:3857]",
                                                  "OUTPUT": str(tmp_path / "b.tif")})
    layer = memory_layer("Polygon")
    add_features(layer, ["POLYGON((2.25 48.75, 2.45 48.75, 2.45 48.95, 2.25 48.95, 2.25 48.75))"])
    c = processing.run("geoclip:placeslikehere", {**base, "LAYER": layer, "OUTPUT": str(tmp_path / "c.tif")})
    (va, ta), (vb, _), (vc, _) = (read_raster(r["OUTPUT"]) for r in (a, b, c))
    assert va.shape == (25, 40) and ta == pytest.approx((-10.0, 1.0, 0.0, 60.0, 0.0, -1.0))
    assert np.abs(va - vb).max() < 1e-3  # the same point given in Web Mercator
    # the polygon's point on surface lies ~1 km from the point: the same map, up to the model's finest scale
    assert np.abs(va - vc).max() < 0.1 and np.corrcoef(va.ravel(), vc.ravel())[0, 1] > 0.95
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
        "SAMPLES": 1, "OUTPUT": str(tmp_path / "paris.tif")})
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
