"""Credible regions (``model_utils.maps.regions``) on synthetic rasters whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from model_utils.maps.grid import GridSpec, cell_areas_km2
from model_utils.maps.regions import RegionCells, credible_regions, region_cells

EARTH_KM = 6371.0088


def gaussian(spec: GridSpec, lat0: float, lon0: float, sigma_km: float) -> np.ndarray:
    """Mass per cell of an isotropic Gaussian on the sphere around (lat0, lon0), summing to 1."""
    lon, lat = np.meshgrid(spec.lon_centers, spec.lat_centers)
    la, lo, la0, lo0 = map(np.radians, (lat, lon, lat0, lon0))
    cos_d = np.sin(la) * np.sin(la0) + np.cos(la) * np.cos(la0) * np.cos(lo - lo0)
    d_km = EARTH_KM * np.arccos(np.clip(cos_d, -1, 1))
    mass = np.exp(-0.5 * (d_km / sigma_km) ** 2) * cell_areas_km2(spec)[:, None]
    return mass / mass.sum()


def test_one_gaussian_gives_discs_of_the_known_radius():
    """A 2-D Gaussian's p-region is the disc of radius sigma * sqrt(-2 ln(1 - p))."""
    spec = GridSpec(-30.0, -30.0, 30.0, 30.0, cell_size=0.1)
    sigma = 500.0
    regions = credible_regions(gaussian(spec, 0.0, 0.0, sigma), spec, levels=(0.9, 0.5))
    assert [r.level for r in regions] == [0.5, 0.9]  # smallest level first
    for region in regions:
        radius = sigma * math.sqrt(-2 * math.log(1 - region.level))
        assert region.area_km2 == pytest.approx(math.pi * radius**2, rel=0.02)
        assert region.n_parts == 1 and region.geometry.is_valid
        assert region.geometry.contains(region.geometry.centroid)
        assert abs(region.geometry.centroid.x) < 0.1 and abs(region.geometry.centroid.y) < 0.1


def _check_the_enclosed_mass_rule(values: np.ndarray, region: RegionCells) -> None:
    """The issue's rule, literally: whole cells, at least the level and less than the level plus the mass of
    the smallest cell the region includes."""
    included = values[region.mask] / values.sum()
    assert region.enclosed == pytest.approx(included.sum(), rel=1e-9)
    assert region.enclosed >= region.level - 1e-12
    assert region.enclosed < region.level + included.min()
    assert region.n_cells == int(region.mask.sum())


def test_the_enclosed_probability_is_the_level_to_within_the_smallest_included_cell():
    """Random rasters on grids whose cells differ in area (up to the pole), where the densest-first cell is
    not the one of least mass: the rule holds for every region."""
    rng = np.random.default_rng(7)
    for spec in (GridSpec(-180.0, 0.0, 180.0, 90.0, cell_size=5.0), GridSpec(0.0, 0.0, 20.0, 10.0, cell_size=1.0)):
        for _ in range(100):
            values = rng.gamma(0.3, size=spec.shape)
            levels = rng.uniform(0.05, 0.95, size=3)
            for cells, region in zip(region_cells(values, spec, levels), credible_regions(values, spec, levels)):
                _check_the_enclosed_mass_rule(values, cells)
                assert (region.enclosed, region.n_cells) == (cells.enclosed, cells.n_cells)
                assert region.geometry.area == pytest.approx(region.n_cells * spec.cell_size**2)  # no overlaps


@pytest.mark.parametrize(("lat0", "sigma_km"), [(80.0, 800.0), (89.0, 300.0), (45.0, 3000.0)])
def test_the_rule_holds_for_broad_gaussians_at_high_latitude_on_the_world_grid(lat0, sigma_km):
    """Smooth maps like GeoCLIP's wide 90% regions, where taking cells densest first alone overshoots."""
    spec = GridSpec.world(cell_size=0.5)
    values = gaussian(spec, lat0, 0.0, sigma_km)
    for cells in region_cells(values, spec, levels=(0.5, 0.9)):
        _check_the_enclosed_mass_rule(values, cells)


def test_two_separated_peaks_are_two_parts():
    spec = GridSpec(-60.0, -30.0, 60.0, 30.0, cell_size=0.5)
    values = 0.5 * gaussian(spec, 0.0, -40.0, 300.0) + 0.5 * gaussian(spec, 0.0, 40.0, 300.0)
    fifty, ninety = credible_regions(values, spec)
    assert ninety.n_parts == 2 and fifty.n_parts == 2
    left, right = sorted(ninety.geometry.geoms, key=lambda g: g.centroid.x)
    assert left.bounds[2] < 0 < right.bounds[0]


def test_a_peak_on_the_antimeridian_is_split_not_a_band_around_the_world():
    spec = GridSpec.world(cell_size=0.5)
    regions = credible_regions(gaussian(spec, 10.0, 180.0, 400.0), spec)
    for region in regions:
        assert region.n_parts == 2 and region.geometry.is_valid
        west, east = sorted(region.geometry.geoms, key=lambda g: g.centroid.x)
        assert west.bounds[0] == -180.0 and east.bounds[2] == 180.0  # one part on each edge of the map
        assert west.bounds[2] - west.bounds[0] < 20 and east.bounds[2] - east.bounds[0] < 20
    radius = 400.0 * math.sqrt(-2 * math.log(0.1))
    assert regions[1].area_km2 == pytest.approx(math.pi * radius**2, rel=0.03)


def test_a_peak_at_the_pole_keeps_the_polar_cells_without_degenerate_geometry():
    spec = GridSpec.world(cell_size=0.5)
    region = credible_regions(gaussian(spec, 90.0, 0.0, 300.0), spec, levels=(0.9,))[0]
    assert region.geometry.is_valid and region.n_parts == 1
    assert region.geometry.bounds == (-180.0, pytest.approx(region.geometry.bounds[1]), 180.0, 90.0)
    radius = 300.0 * math.sqrt(-2 * math.log(0.1))  # a polar cap: the region is a band of whole rows
    assert region.area_km2 == pytest.approx(math.pi * radius**2, rel=0.05)


def test_a_prediction_gives_its_regions_from_the_raster_the_plugin_draws():
    from types import SimpleNamespace

    from shapely.geometry import Point

    from model_utils.analysis import prediction_regions
    from model_utils.maps.heatmap import probability_grid

    lat, lon = np.meshgrid(np.arange(-10.0, 10.01, 1.0), np.arange(-10.0, 10.01, 1.0), indexing="ij")
    gallery = np.column_stack([lat.ravel(), lon.ravel()])
    probs = np.exp(-0.5 * (np.hypot(gallery[:, 0] - 2, gallery[:, 1] + 3) / 2.0) ** 2)
    probs /= probs.sum()
    spec = GridSpec(-15.0, -15.0, 15.0, 15.0, cell_size=0.5)
    for land in (True, False):  # on land by default, as the plugin draws; over sea too for photos taken at sea
        got = prediction_regions(SimpleNamespace(gallery_probs=probs), gallery, spec, bandwidth_km=80.0, land=land)
        grid = probability_grid(gallery[:, 0], gallery[:, 1], probs, spec, bandwidth_km=80.0, land=land)
        for a, b in zip(got, credible_regions(grid.values, spec)):
            assert a.geometry.equals(b.geometry) and a.enclosed == b.enclosed and a.area_km2 == b.area_km2
    assert got[1].geometry.contains(Point(-3.0, 2.0))  # the peak (lon, lat), in the Gulf of Guinea
    with pytest.raises(ValueError, match="gallery_probs dropped"):
        prediction_regions(SimpleNamespace(gallery_probs=np.empty(0)), gallery, spec)


def test_density_rasters_give_the_same_regions_as_mass_rasters():
    spec = GridSpec(-20.0, 40.0, 20.0, 70.0, cell_size=0.25)
    mass = gaussian(spec, 55.0, 0.0, 400.0)
    density = mass / cell_areas_km2(spec)[:, None]
    for a, b in zip(credible_regions(mass, spec), credible_regions(density, spec, density=True)):
        assert a.n_cells == b.n_cells and a.enclosed == pytest.approx(b.enclosed)
        assert a.geometry.equals(b.geometry)


@pytest.mark.parametrize("levels", [(0.0,), (1.0,), (1.5,), (-0.1,), ()])
def test_levels_outside_zero_one_are_refused(levels):
    spec = GridSpec(0.0, 0.0, 2.0, 2.0, cell_size=1.0)
    with pytest.raises(ValueError, match="level"):
        credible_regions(np.ones(spec.shape) / 4, spec, levels=levels)


def test_an_empty_raster_is_refused():
    spec = GridSpec(0.0, 0.0, 2.0, 2.0, cell_size=1.0)
    with pytest.raises(ValueError, match="holds no probability"):
        credible_regions(np.zeros(spec.shape), spec)
    with pytest.raises(ValueError, match="holds no probability"):
        credible_regions(np.full(spec.shape, np.nan), spec)


def test_a_regions_boxes_are_one_array_of_row_runs_with_shared_edges_equal():
    """Each run of chosen cells in a row is one box; a gap starts another; rows meet on the same bit-equal edge.
    One float array per region, not a tuple per box (a 1,000-photo run keeps them all until it writes them)."""
    spec = GridSpec(10.0, 40.0, 10.6, 40.3, cell_size=0.1)  # 3 rows x 6 columns
    values = np.array([[1, 1, 0, 1, 0, 0],
                       [0, 1, 1, 1, 1, 0],
                       [0, 0, 0, 0, 0, 0]], dtype=float) + 1e-9
    boxes = region_cells(values, spec, levels=(0.99,))[0].boxes
    assert isinstance(boxes, np.ndarray) and boxes.dtype == np.float64
    assert boxes.tolist() == [[10.0, 40.2, 10.2, 40.3], [10.3, 40.2, 10.4, 40.3], [10.1, 40.1, 10.5, 40.2]]


# ---------------------------------------------------------------------------- in the geolocation algorithms
def _run(alg: str, params: dict, feedback=None) -> dict:
    import processing

    return processing.run(f"geoclip:{alg}", params, feedback=feedback)


def test_each_query_gets_its_regions_in_the_run_geopackage(geoclip_provider, clip_env, tmp_path):
    from osgeo import gdal
    from qgis.core import QgsVectorLayer

    from tests.embedding_helpers import LogFeedback

    feedback = LogFeedback()
    out = _run("geolocatetext", {"QUERIES": "Eiffel Tower\nPyramids of Giza", "CELL_SIZE": 2.0,
                                 "OUTPUT_FOLDER": str(tmp_path)}, feedback)
    layer = QgsVectorLayer(f"{out['POINTS']}|layername=credible_regions", "r", "ogr")
    assert layer.isValid() and layer.featureCount() == 4  # two queries x (50%, 90%)
    rows = sorted((f["query"], f["level"], f["area_km2"], f["n_parts"], f["enclosed"]) for f in layer.getFeatures())
    for query, raster in zip(("Eiffel Tower", "Pyramids of Giza"), out["RASTERS"]):
        ds = gdal.Open(raster)
        values = ds.GetRasterBand(1).ReadAsArray()
        ds = None
        expected = credible_regions(values, GridSpec.world(cell_size=2.0))  # from the raster the user sees
        got = [r for r in rows if r[0] == query]
        assert [r[1] for r in got] == [0.5, 0.9]
        for (_, level, area, parts, enclosed), region in zip(got, expected):
            assert area == pytest.approx(region.area_km2) and parts == region.n_parts
            assert level - 1e-9 <= enclosed == pytest.approx(region.enclosed)
    assert feedback.text.count("90% region") == 2 and "million km²" in feedback.text
    assert [f["raster_mass"] for f in layer.getFeatures()] == pytest.approx([1.0] * 4, abs=1e-3)  # the world
    assert "conditional on the extent" not in feedback.text


def test_regions_over_part_of_the_world_say_they_are_conditional_on_the_extent(geoclip_provider, clip_env,
                                                                               tmp_path):
    """'enclosed' is a share of the raster's own probability: over a small extent of the worldwide gallery the
    layer gives how much of the whole the raster holds, and the log says so once."""
    from osgeo import gdal
    from qgis.core import QgsVectorLayer

    from tests.embedding_helpers import LogFeedback

    feedback = LogFeedback()
    out = _run("geolocatetext", {"QUERIES": "Eiffel Tower\nPyramids of Giza", "EXTENT": "-10,30,30,60 [EPSG:4326]",
                                 "CELL_SIZE": 1.0, "OUTPUT_FOLDER": str(tmp_path)}, feedback)
    layer = QgsVectorLayer(f"{out['POINTS']}|layername=credible_regions", "r", "ogr")
    masses = {f["query"]: f["raster_mass"] for f in layer.getFeatures()}
    for query, raster in zip(("Eiffel Tower", "Pyramids of Giza"), out["RASTERS"]):
        dataset = gdal.Open(raster)
        held = float(dataset.GetMetadataItem("mass_in_extent"))
        assert masses[query] == pytest.approx(held, abs=1e-6) and 0 < held < 0.99
        assert dataset.GetRasterBand(1).ReadAsArray().sum() == pytest.approx(held, rel=1e-3)
        dataset = None
    assert feedback.text.count("conditional on the extent") == 1
    assert f"as little as {min(masses.values()):.1%}" in feedback.text
    del layer


def test_regions_for_a_regional_density_raster_and_bad_levels(geoclip_provider, clip_env, tmp_path):
    from osgeo import gdal
    from qgis.core import QgsProcessingException, QgsVectorLayer

    paris = "2.2,2.5,48.8,48.95 [EPSG:4326]"
    out = _run("geolocatetext", {"QUERIES": "Eiffel Tower", "GALLERY": 1, "EXTENT": paris, "CELL_SIZE": 0.01,
                                 "DENSITY": True, "CREDIBLE_LEVELS": "25%, 75%", "OUTPUT_FOLDER": str(tmp_path)})
    layer = QgsVectorLayer(f"{out['POINTS']}|layername=credible_regions", "r", "ogr")
    levels = sorted(f["level"] for f in layer.getFeatures())
    assert levels == [0.25, 0.75]
    ds = gdal.Open(out["RASTERS"][0])
    spec = GridSpec(2.2, 48.8, 2.5, 48.95, cell_size=0.01)
    expected = credible_regions(ds.GetRasterBand(1).ReadAsArray(), spec, (0.25, 0.75), density=True)
    ds = None
    areas = sorted(f["area_km2"] for f in layer.getFeatures())
    assert areas == pytest.approx([r.area_km2 for r in expected]) and areas[1] < 17 * 11  # inside the extent
    # a layer still open when a run is refused outlives the test (something keeps the frames of an exception
    # raised through processAlgorithm) and is then destroyed after QGIS has exited: a crash at exit
    del layer
    for bad in ("0.5, 1.2", "zero", "0"):
        with pytest.raises(QgsProcessingException, match="Credible region levels"):
            _run("geolocatetext", {"QUERIES": "x", "CREDIBLE_LEVELS": bad, "OUTPUT_FOLDER": str(tmp_path / "bad")})
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())


def test_loaded_regions_are_outlines_above_the_rasters_in_the_run_group(geoclip_provider, clip_env, tmp_path):
    import processing
    from qgis.core import QgsProject, QgsRasterLayer, QgsVectorLayer

    processing.runAndLoadResults("geoclip:geolocatetext", {"QUERIES": "Eiffel Tower", "CELL_SIZE": 5.0,
                                                           "OUTPUT_FOLDER": str(tmp_path)})
    group = next(g for g in QgsProject.instance().layerTreeRoot().children() if g.name().startswith("GeoCLIP Text"))
    layers = [node.layer() for node in group.findLayers()]
    names = [layer.name() for layer in layers]
    regions = names.index("Credible regions")
    assert names.index("Top-k predictions") < regions
    assert all(isinstance(layer, QgsRasterLayer) for layer in layers[regions + 1:])
    styled = layers[regions]
    assert isinstance(styled, QgsVectorLayer)
    categories = styled.renderer().categories()  # a colour per query, as in the points layer
    assert [c.label() for c in categories] == ["Eiffel Tower"]
    points = layers[names.index("Top-k predictions")].renderer().categories()
    stroke = categories[0].symbol().symbolLayer(0)
    assert stroke.strokeColor().name() == points[0].symbol().color().name()
    assert stroke_styles(styled) == {0.5: "solid", 0.9: "dash"}  # per feature, as drawn
    assert stroke.fillColor().alpha() == 0  # outlines only: the raster shows through
    for layer in layers:
        QgsProject.instance().removeMapLayer(layer.id())
    QgsProject.instance().layerTreeRoot().removeChildNode(group)


def stroke_styles(layer) -> dict[float, str]:
    """Each feature's level -> the stroke style its category's symbol draws it with (the data-defined
    property evaluated on the feature)."""
    from qgis.core import QgsExpressionContext, QgsExpressionContextUtils

    renderer = layer.renderer()
    categories = renderer.categories()  # kept: each symbol belongs to its category object
    symbols = {str(c.value()): c.symbol() for c in categories}
    styles = {}
    for feature in layer.getFeatures():
        stroke = symbols[str(feature[renderer.classAttribute()])].symbolLayer(0)
        context = QgsExpressionContext(QgsExpressionContextUtils.globalProjectLayerScopes(layer))
        context.setFeature(feature)
        prop = stroke.dataDefinedProperties().property(stroke.Property.PropertyStrokeStyle)
        styles[feature["level"]] = prop.valueAsString(context)[0]
    return styles


@pytest.mark.parametrize(("levels", "expected"), [
    ((0.5, 0.9), {0.5: "solid", 0.9: "dash"}),
    ((0.25, 0.5, 0.75), {0.25: "solid", 0.5: "solid", 0.75: "dash"}),
    ((0.8, 0.95), {0.8: "solid", 0.95: "dash"}),
])
def test_the_widest_level_is_dashed_and_the_others_solid(levels, expected):
    from qgis.core import QgsFeature, QgsGeometry, QgsRectangle, QgsVectorLayer

    from geoclip_qgis.layers import style_credible_regions

    layer = QgsVectorLayer("MultiPolygon?crs=EPSG:4326&field=photo:string&field=photo_name:string"
                           "&field=level:double&field=area_km2:double", "regions", "memory")
    features = []
    for name in ("a.jpg", "b.jpg"):
        for i, level in enumerate(levels):
            feature = QgsFeature(layer.fields())
            feature.setGeometry(QgsGeometry.fromRect(QgsRectangle(0, 0, i + 1, i + 1)))
            feature.setAttributes([f"/p/{name}", name, level, 100.0 * (i + 1)])
            features.append(feature)
    assert layer.dataProvider().addFeatures(features)[0]
    style_credible_regions(layer)
    assert stroke_styles(layer) == expected
    assert [c.label() for c in layer.renderer().categories()] == ["a.jpg", "b.jpg"]


def test_coverage_counts_truths_inside_their_regions():
    from model_utils.evaluation.coverage import coverage

    photos = [((0.5, 100.0, True), (0.9, 400.0, True)), ((0.5, 300.0, False), (0.9, 900.0, True)),
              ((0.5, 200.0, False), (0.9, 500.0, False)), ((0.5, 50.0, None), (0.9, 80.0, None))]  # no truth
    fifty, ninety = coverage(photos)
    assert (fifty.level, fifty.n, fifty.inside, fifty.median_area_km2) == (0.5, 3, 1, 200.0)
    assert (ninety.n, ninety.inside, ninety.median_area_km2) == (3, 2, 500.0)
    assert ninety.share == pytest.approx(2 / 3)


def test_the_accuracy_report_states_coverage_and_the_log_the_area(geoclip_provider, clip_env, tmp_path):
    from pathlib import Path

    from qgis.core import QgsVectorLayer

    from geoclip_qgis.processing.io.prediction_outputs import area_text
    from tests.embedding_helpers import LogFeedback
    from tools.samples.official import kauai_png
    from tools.samples.photos import write_gps_photo

    write_gps_photo(tmp_path / "in" / "paris.jpg", 48.8584, 2.2945)
    write_gps_photo(tmp_path / "in" / "sydney.jpg", -33.8568, 151.2153)
    feedback = LogFeedback()
    out = _run("geolocatephotos", {"FOLDER": str(tmp_path / "in"), "PHOTOS": [str(kauai_png())], "CELL_SIZE": 2.0,
                                   "OUTPUT_FOLDER": str(tmp_path / "out")}, feedback)
    page = Path(out["REPORT_HTML"]).read_text(encoding="utf-8")
    assert "<h2>Credible regions</h2>" in page and "Truth inside (coverage)" in page
    assert "of 2</td>" in page  # the two photos with EXIF GPS; Kauai.png has none
    # each photo's log line ends with its 90% region's area, the same as in the layer
    regions = QgsVectorLayer(f"{out['POINTS']}|layername=credible_regions", "r", "ogr")
    ninety = {f["photo_name"]: f["area_km2"] for f in regions.getFeatures() if f["level"] == 0.9}
    del regions
    assert set(ninety) == {"paris.jpg", "sydney.jpg", "Kauai.png"}
    for name, area in ninety.items():
        line = next(line for line in feedback.lines if line.startswith(f"{name}: top-1"))
        assert line.endswith(f", 90% region {area_text(area)}")
    import csv

    per_photo = Path(out["REPORT_HTML"]).with_name("per_photo.csv")
    with open(per_photo, newline="", encoding="utf-8") as handle:
        rows = {Path(r["photo"]).name: r for r in csv.DictReader(handle)}
    assert float(rows["paris.jpg"]["region_km2_90"]) > float(rows["paris.jpg"]["region_km2_50"]) > 0
    assert rows["paris.jpg"]["truth_inside_90"] in ("0", "1") and rows["Kauai.png"]["truth_inside_90"] == ""
    median = float(np.median([float(rows[n]["region_km2_90"]) for n in ("paris.jpg", "sydney.jpg")]))
    assert f"<td>{median:,.0f} km²</td></tr>" in page  # the 90% row's median area over the photos with truth


def test_a_truth_is_inside_exactly_when_its_cell_is_in_the_region():
    from model_utils.analysis import truth_inside as _holds

    spec = GridSpec(0.0, 0.0, 4.0, 2.0, cell_size=1.0)  # 2 rows x 4 columns, north row first
    mask = np.zeros(spec.shape, dtype=bool)
    mask[0, 3] = True  # the cell 3..4 E, 1..2 N
    assert _holds(mask, spec, (1.5, 3.5)) is True
    assert _holds(mask, spec, (2.0, 4.0)) is True  # the raster's north-east corner belongs to that cell
    assert _holds(mask, spec, (0.5, 3.5)) is False and _holds(mask, spec, (1.5, 2.5)) is False
    assert _holds(mask, spec, (1.5, 7.0)) is False  # outside the extent
    assert _holds(mask, spec, None) is None
