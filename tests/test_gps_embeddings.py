"""``geoclip:gpsembeddings`` and its dock tab in a real headless QGIS, with the real GeoCLIP weights.

Expected values always come from ``GeoCLIP.encode_locations`` on the same coordinates, in the
order the export wrote them and with its batch size (4096): the float32 encoder's results depend on
the batch's shape by up to ~3e-6 for batches of fewer than 8 rows, so "the same call" is the check.
Tolerances: GeoPackage, .npz and Parquet store the float32 values exactly (compared at 1e-6 as the
issue asks); Shapefile and CSV store numbers as text with 15 decimals / significant digits, so we
compare them at 1e-9 (the observed error is below 1e-15).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsField,
    QgsGeometry,
    QgsPointXY,
    QgsProcessingException,
    QgsProcessingFeatureSourceDefinition,
    QgsProject,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QDate

from geoclip_qgis.compat import FieldType
from tests.embedding_helpers import (
    E_NAMES,
    FMT,
    LogFeedback,
    add_features,
    expected_values,
    folder_files,
    memory_layer,
    point_layer,
    random_latlon,
    read_layer,
    run,
    values_of,
)


@pytest.fixture(scope="module")
def model():
    from model_utils.model.geoclip import shared_model

    return shared_model()  # the same instance the algorithm uses


# ---------------------------------------------------------------------------- values and formats
def test_geopackage_equals_encode_locations(geoclip_provider, model, tmp_path):
    latlon = random_latlon(300)
    layer = point_layer(latlon)
    out = run({"INPUT": layer, "OUTPUT": str(tmp_path / "emb.gpkg")})
    assert out["OUTPUT"] == str(tmp_path / "emb.gpkg")
    assert out["FEATURE_COUNT"] == 300 and out["SKIPPED_COUNT"] == 0 and out["PCA_FILE"] == ""
    names, by_fid = read_layer(out["OUTPUT"])
    assert names[-515:] == ["src_fid", *E_NAMES, "lat", "lon"] and "name" in names and "value" in names
    out_layer = QgsVectorLayer(out["OUTPUT"], "o", "ogr")
    assert out_layer.crs().authid() == "EPSG:4326" and out_layer.fields().field("e000").type() == FieldType.DOUBLE
    fids = [f.id() for f in layer.getFeatures()]
    assert sorted(by_fid) == sorted(fids)
    feats = [by_fid[fid] for fid in fids]
    expected = model.encode_locations(latlon, batch_size=4096)
    got = values_of(feats, E_NAMES)
    assert np.abs(got - expected).max() <= 1e-6
    assert np.array_equal(got, expected.astype(np.float64))  # stored as exact doubles
    assert np.allclose(values_of(feats, ["lat", "lon"]), latlon, atol=1e-12)
    for fid, feat in zip(fids, feats):
        src = layer.getFeature(fid)
        assert feat["name"] == src["name"] and feat["value"] == src["value"]
        point = feat.geometry().asPoint()
        assert (point.y(), point.x()) == pytest.approx((feat["lat"], feat["lon"]), abs=1e-12)


def test_web_mercator_input_gives_the_same_values(geoclip_provider, model, tmp_path):
    latlon = random_latlon(100, seed=1)
    latlon[:, 0] = np.clip(latlon[:, 0], -80, 80)  # inside Web Mercator's valid area
    to_3857 = QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:4326"),
                                     QgsCoordinateReferenceSystem("EPSG:3857"), QgsProject.instance())
    layer_3857 = memory_layer(crs="EPSG:3857")
    add_features(layer_3857, [QgsGeometry.fromPointXY(to_3857.transform(QgsPointXY(lon, lat)))
                              for lat, lon in latlon.tolist()])
    out_3857 = run({"INPUT": layer_3857, "OUTPUT": str(tmp_path / "m.gpkg")})
    out_4326 = run({"INPUT": point_layer(latlon), "OUTPUT": str(tmp_path / "g.gpkg")})
    _, a = read_layer(out_3857["OUTPUT"])
    _, b = read_layer(out_4326["OUTPUT"])
    fids = sorted(a)
    assert fids == sorted(b)
    assert np.abs(values_of([a[f] for f in fids], ["lat", "lon"]) - latlon).max() < 1e-9
    va, vb = values_of([a[f] for f in fids], E_NAMES), values_of([b[f] for f in fids], E_NAMES)
    assert np.abs(va - vb).max() <= 1e-6
    assert np.abs(va - model.encode_locations(values_of([a[f] for f in fids], ["lat", "lon"]))).max() <= 1e-6


def test_polygons_lines_multipoints_and_null_geometries(geoclip_provider, model, tmp_path):
    # A U-shaped polygon: its centroid (about 3, 2.3) lies in the notch, outside the polygon.
    u_shape = "POLYGON((0 0, 6 0, 6 6, 4 6, 4 2, 2 2, 2 6, 0 6, 0 0))"
    polygons = memory_layer("Polygon", name="polygons")
    triangle = "POLYGON((-70 -33, -69 -33, -69 -32, -70 -33))"
    poly_fids = add_features(polygons, [u_shape, None, "POLYGON EMPTY", triangle])
    feedback = LogFeedback()
    out = run({"INPUT": polygons, "OUTPUT": str(tmp_path / "polygons.gpkg")}, feedback)
    assert out["FEATURE_COUNT"] == 2 and out["SKIPPED_COUNT"] == 2
    assert f"2 feature(s) of 'polygons' skipped: NULL or empty geometry (feature id {poly_fids[1]}, " \
           f"{poly_fids[2]})" in feedback.text
    _, by_fid = read_layer(out["OUTPUT"])
    assert sorted(by_fid) == [poly_fids[0], poly_fids[3]]
    poly = by_fid[poly_fids[0]]
    u_geom = QgsGeometry.fromWkt(u_shape)
    expected_point = u_geom.pointOnSurface().asPoint()
    assert (poly["lon"], poly["lat"]) == pytest.approx((expected_point.x(), expected_point.y()), abs=1e-12)
    assert u_geom.contains(QgsGeometry.fromPointXY(QgsPointXY(poly["lon"], poly["lat"])))
    assert not u_geom.contains(u_geom.centroid())  # why polygons do not use the centroid

    line = "LINESTRING(10 10, 20 10, 20 30)"
    lines = memory_layer("LineString", name="lines")
    line_fid = add_features(lines, [line])[0]
    _, line_out = read_layer(run({"INPUT": lines, "OUTPUT": str(tmp_path / "lines.gpkg")})["OUTPUT"])
    centroid = QgsGeometry.fromWkt(line).centroid().asPoint()
    assert (line_out[line_fid]["lon"], line_out[line_fid]["lat"]) == pytest.approx((centroid.x(), centroid.y()),
                                                                                   abs=1e-12)
    multi = memory_layer("MultiPoint", name="multipoints")
    multi_fid = add_features(multi, ["MULTIPOINT((30 -10), (34 -14))"])[0]
    _, multi_out = read_layer(run({"INPUT": multi, "OUTPUT": str(tmp_path / "multi.gpkg")})["OUTPUT"])
    assert (multi_out[multi_fid]["lon"], multi_out[multi_fid]["lat"]) == pytest.approx((32, -12), abs=1e-12)

    for feats in (list(by_fid.values()), list(line_out.values()), list(multi_out.values())):
        assert np.abs(values_of(feats, E_NAMES) - expected_values(model, feats)).max() <= 1e-6


def test_selected_features_only(geoclip_provider, model, qgis_new_project, tmp_path):
    latlon = random_latlon(40, seed=2)
    layer = point_layer(latlon)
    QgsProject.instance().addMapLayer(layer)
    try:
        all_fids = [f.id() for f in layer.getFeatures()]
        chosen = all_fids[5:12]
        layer.selectByIds(chosen)
        out = run({"INPUT": QgsProcessingFeatureSourceDefinition(layer.id(), True),
                   "OUTPUT": str(tmp_path / "sel.gpkg")})
        _, by_fid = read_layer(out["OUTPUT"])
        assert sorted(by_fid) == sorted(chosen) and out["FEATURE_COUNT"] == 7
        index = {fid: i for i, fid in enumerate(all_fids)}
        feats = list(by_fid.values())
        assert np.array_equal(values_of(feats, ["lat", "lon"]), latlon[[index[f] for f in by_fid]])
        assert np.abs(values_of(feats, E_NAMES) - expected_values(model, feats)).max() <= 1e-6
    finally:
        QgsProject.instance().removeMapLayer(layer.id())


def test_normalise(geoclip_provider, model, tmp_path):
    latlon = random_latlon(50, seed=3)
    out = run({"INPUT": point_layer(latlon), "NORMALIZE": True, "OUTPUT": str(tmp_path / "n.gpkg")})
    _, by_fid = read_layer(out["OUTPUT"])
    feats = list(by_fid.values())
    got = values_of(feats, E_NAMES)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
    assert np.abs(got - expected_values(model, feats, normalize=True)).max() <= 1e-6
    raw = model.encode_locations(latlon)
    assert np.abs(np.linalg.norm(raw, axis=1) - 1).max() > 0.05  # the default really is unnormalised


def test_pca_writes_fit_that_reproduces_the_columns(geoclip_provider, model, tmp_path):
    latlon = random_latlon(4100, seed=4)  # two batches, the second shorter than the components
    feedback = LogFeedback()
    out = run({"INPUT": point_layer(latlon), "PCA_COMPONENTS": 8, "NORMALIZE": True,
               "OUTPUT": str(tmp_path / "pca.gpkg")}, feedback)
    pca_file = tmp_path / "pca.gpkg.pca.npz"
    assert out["PCA_FILE"] == str(pca_file) and pca_file.is_file()
    fit = np.load(pca_file)
    assert fit["components"].shape == (8, 512) and fit["mean"].shape == (512,)
    assert bool(fit["normalize"]) and int(fit["n_samples"]) == 4100
    assert np.all(np.diff(fit["explained_variance"]) <= 0)
    assert "encode_locations" in str(fit["usage"])
    names, by_fid = read_layer(out["OUTPUT"])
    assert names[-11:] == ["src_fid", *[f"pc{i:03d}" for i in range(8)], "lat", "lon"]
    assert list(fit["columns"]) == [f"pc{i:03d}" for i in range(8)]
    feats = list(by_fid.values())
    emb = expected_values(model, feats, normalize=bool(fit["normalize"]))
    projected = (emb.astype(np.float64) - fit["mean"]) @ fit["components"].T
    assert np.abs(values_of(feats, list(fit["columns"])) - projected).max() <= 1e-6
    from model_utils.downstream.pca import load_pca, project  # the Python API applies the same file the same way

    assert np.array_equal(project(emb, load_pca(pca_file)), projected)
    assert "components keep" in feedback.text
    assert folder_files(tmp_path) == ["pca.gpkg", "pca.gpkg.pca.npz"]  # no spill or temp files left


def test_shapefile_names_warning_and_values(geoclip_provider, model, tmp_path):
    latlon = random_latlon(30, seed=5)
    feedback = LogFeedback()
    out = run({"INPUT": point_layer(latlon), "FORMAT": FMT["shp"], "OUTPUT": str(tmp_path / "emb.shp")}, feedback)
    assert out["OUTPUT"] == str(tmp_path / "emb.shp")
    assert folder_files(tmp_path) == ["emb.cpg", "emb.dbf", "emb.prj", "emb.shp", "emb.shx"]
    names, by_fid = read_layer(out["OUTPUT"])
    assert names == ["name", "value", "src_fid", *E_NAMES, "lat", "lon"]
    assert all(len(n) <= 10 for n in names)
    assert "some DBF readers only read the first 255 fields" in feedback.text
    assert "PCA components" in feedback.text
    feats = list(by_fid.values())
    assert np.abs(values_of(feats, E_NAMES) - expected_values(model, feats)).max() <= 1e-9
    assert np.abs(values_of(feats, ["lat", "lon"]) - latlon).max() <= 1e-9


def test_shapefile_with_pca_stays_under_255_fields(geoclip_provider, tmp_path):
    feedback = LogFeedback()
    out = run({"INPUT": point_layer(random_latlon(40, seed=6)), "FORMAT": FMT["shp"], "PCA_COMPONENTS": 16,
               "OUTPUT": str(tmp_path / "small")}, feedback)
    assert out["OUTPUT"] == str(tmp_path / "small.shp")  # the extension follows the format
    names, _ = read_layer(out["OUTPUT"])
    assert len(names) == 2 + 1 + 16 + 2
    assert "only read the first 255 fields" not in feedback.text  # the DBF warning (not a rate of 255 points/s)


def test_csv_contents(geoclip_provider, model, tmp_path):
    latlon = random_latlon(20, seed=7)
    layer = point_layer(latlon)
    out = run({"INPUT": layer, "FORMAT": FMT["csv"], "OUTPUT": str(tmp_path / "emb")})
    assert out["OUTPUT"] == str(tmp_path / "emb.csv")  # no extension typed: the format's
    with open(out["OUTPUT"], newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["name", "value", "src_fid", *E_NAMES, "lat", "lon"]
    fids = [f.id() for f in layer.getFeatures()]
    assert [int(r["src_fid"]) for r in rows] == fids
    assert [r["name"] for r in rows] == [f"p{i}" for i in range(20)]
    got = np.array([[float(r[n]) for n in E_NAMES] for r in rows])
    assert np.abs(got - model.encode_locations(latlon, batch_size=4096)).max() <= 1e-9
    assert np.abs(np.array([[float(r["lat"]), float(r["lon"])] for r in rows]) - latlon).max() <= 1e-9


def test_npz_contents(geoclip_provider, model, tmp_path):
    latlon = random_latlon(5000, seed=8)  # more than one batch
    layer = point_layer(latlon)
    out = run({"INPUT": layer, "FORMAT": FMT["npz"], "OUTPUT": str(tmp_path / "emb.npz")})
    data = np.load(out["OUTPUT"])
    assert sorted(data.files) == ["columns", "embeddings", "lat", "lon", "src_fid"]
    assert data["embeddings"].dtype == np.float32 and data["embeddings"].shape == (5000, 512)
    assert data["src_fid"].tolist() == [f.id() for f in layer.getFeatures()]
    assert list(data["columns"]) == E_NAMES
    assert np.array_equal(np.c_[data["lat"], data["lon"]], latlon)
    assert np.abs(data["embeddings"] - model.encode_locations(latlon, batch_size=4096)).max() <= 1e-6
    assert folder_files(tmp_path) == ["emb.npz"]


def test_parquet_contents(geoclip_provider, model, tmp_path):
    import pyarrow.parquet as pq

    fields = [QgsField("name", FieldType.STRING), QgsField("count", FieldType.INT), QgsField("when", FieldType.DATE)]
    layer = memory_layer(fields=fields)
    latlon = random_latlon(25, seed=9)
    attributes = [[f"n{i}", None if i == 3 else i * 10, QDate(2020, 1, 1 + i)] for i in range(25)]
    add_features(layer, [QgsGeometry.fromPointXY(QgsPointXY(lon, lat)) for lat, lon in latlon.tolist()], attributes)
    out = run({"INPUT": layer, "FORMAT": FMT["parquet"], "OUTPUT": str(tmp_path / "emb.parquet")})
    table = pq.read_table(out["OUTPUT"])
    assert table.column_names == ["name", "count", "when", "src_fid", *E_NAMES, "lat", "lon"]
    assert table.column("src_fid").to_pylist() == [f.id() for f in layer.getFeatures()]
    assert table.column("name").to_pylist() == [a[0] for a in attributes]
    assert table.column("count").to_pylist()[3] is None and table.column("count").to_pylist()[4] == 40
    assert str(table.column("when").to_pylist()[2]) == "2020-01-03"
    got = np.column_stack([table.column(n).to_numpy() for n in E_NAMES])
    assert got.dtype == np.float32
    assert np.abs(got - model.encode_locations(latlon, batch_size=4096)).max() <= 1e-6


def test_field_name_clash_is_resolved_and_logged(geoclip_provider, model, tmp_path):
    fields = [QgsField("lat", FieldType.STRING), QgsField("E005", FieldType.INT), QgsField("src_fid", FieldType.INT)]
    layer = memory_layer(fields=fields)
    latlon = random_latlon(5, seed=10)
    add_features(layer, [QgsGeometry.fromPointXY(QgsPointXY(lon, lat)) for lat, lon in latlon.tolist()],
                 [[f"north {i}", 100 + i, 7] for i in range(5)])
    feedback = LogFeedback()
    out = run({"INPUT": layer, "OUTPUT": str(tmp_path / "clash.gpkg")}, feedback)
    out_layer = QgsVectorLayer(out["OUTPUT"], "o", "ogr")
    names = out_layer.fields().names()
    for name in ("lat", "E005", "src_fid", "lat_2", "e005_2", "src_fid_2", "lon", "e004", "e006"):
        assert name in names
    assert "e005" not in names
    assert "lat -> lat_2" in feedback.text and "e005 -> e005_2" in feedback.text
    feats = list(out_layer.getFeatures())
    assert [f["lat"] for f in feats] == [f"north {i}" for i in range(5)]  # the input's values survive
    assert [f["E005"] for f in feats] == [100 + i for i in range(5)]
    assert [f["src_fid_2"] for f in feats] == [f.id() for f in layer.getFeatures()]
    expected = model.encode_locations(latlon, batch_size=4096)
    assert np.abs(np.array([f["e005_2"] for f in feats]) - expected[:, 5]).max() <= 1e-6
    assert np.abs(np.array([f["lat_2"] for f in feats]) - latlon[:, 0]).max() <= 1e-12


def test_text_fid_field_survives_geopackage(geoclip_provider, tmp_path):
    layer = memory_layer(fields=[QgsField("fid", FieldType.STRING)])
    add_features(layer, ["POINT(1 2)", "POINT(3 4)"], [["a"], ["b"]])
    feedback = LogFeedback()
    out = run({"INPUT": layer, "OUTPUT": str(tmp_path / "fid.gpkg")}, feedback)
    out_layer = QgsVectorLayer(out["OUTPUT"], "o", "ogr")
    assert [f["fid_2"] for f in out_layer.getFeatures()] == ["a", "b"]  # GeoPackage keeps 'fid' for its key
    assert "fid -> fid_2" in feedback.text


# ---------------------------------------------------------------------------- bad input, overwrite, cancel
def test_existing_output_is_an_error_and_untouched(geoclip_provider, tmp_path):
    target = tmp_path / "taken.gpkg"
    target.write_bytes(b"precious")
    with pytest.raises(QgsProcessingException, match="already exists"):
        run({"INPUT": point_layer(random_latlon(3)), "OUTPUT": str(target)})
    assert target.read_bytes() == b"precious"
    (tmp_path / "taken2.dbf").write_bytes(b"dbf")  # one Shapefile sidecar is enough to refuse
    with pytest.raises(QgsProcessingException, match="taken2.dbf already exists"):
        run({"INPUT": point_layer(random_latlon(3)), "FORMAT": FMT["shp"], "OUTPUT": str(tmp_path / "taken2.shp")})
    assert folder_files(tmp_path) == ["taken.gpkg", "taken2.dbf"]


def test_temporary_output_is_allowed(geoclip_provider, tmp_path):
    out = run({"INPUT": point_layer(random_latlon(3)), "OUTPUT": "TEMPORARY_OUTPUT"})
    assert Path(out["OUTPUT"]).is_file() and out["OUTPUT"].endswith(".gpkg")


@pytest.mark.parametrize("kind", ["empty", "no geometry", "all null"])
def test_unusable_layers_are_clear_errors_without_output(geoclip_provider, tmp_path, kind):
    if kind == "empty":
        layer, message = memory_layer(), "has no features"
    elif kind == "no geometry":
        layer, message = memory_layer("None"), "has no geometry"
        add_features(layer, [None, None])
    else:
        layer, message = memory_layer(), "None of the features of 'input' has a usable geometry"
        add_features(layer, [None, "POINT EMPTY"])
    with pytest.raises(QgsProcessingException, match=message):
        run({"INPUT": layer, "OUTPUT": str(tmp_path / "out.gpkg")})
    assert folder_files(tmp_path) == []


def test_latitude_out_of_range_names_the_features(geoclip_provider, tmp_path):
    layer = memory_layer()
    fids = add_features(layer, ["POINT(10 20)", "POINT(45 95)", "POINT(0 0)", "POINT(-5 -120)"])
    with pytest.raises(QgsProcessingException, match=rf"feature id {fids[1]} \(y = 95\), {fids[3]} \(y = -120\)"):
        run({"INPUT": layer, "OUTPUT": str(tmp_path / "out.gpkg")})
    assert folder_files(tmp_path) == []


@pytest.mark.parametrize("fmt,pca", [("gpkg", 0), ("shp", 0), ("npz", 0), ("parquet", 0), ("gpkg", 4)])
def test_cancel_after_first_batch_leaves_nothing(geoclip_provider, tmp_path, fmt, pca):
    layer = point_layer(random_latlon(4096 * 2 + 100, seed=11))
    feedback = LogFeedback(cancel_after_progress=True)
    with pytest.raises(QgsProcessingException, match="Canceled"):
        run({"INPUT": layer, "FORMAT": FMT[fmt], "PCA_COMPONENTS": pca, "OUTPUT": str(tmp_path / f"c.{fmt}")},
            feedback)
    assert feedback.isCanceled()
    assert folder_files(tmp_path) == []


def test_the_typed_extension_decides_the_format_or_the_run_refuses(geoclip_provider, tmp_path):
    """'out.shp' with the format left out writes a Shapefile (not a GeoPackage); a chosen format that
    contradicts the typed name is refused before anything is written."""
    layer = point_layer(random_latlon(5, seed=3))
    out = run({"INPUT": layer, "OUTPUT": str(tmp_path / "out.shp")})
    assert out["OUTPUT"] == str(tmp_path / "out.shp") and (tmp_path / "out.dbf").is_file()
    assert QgsVectorLayer(out["OUTPUT"], "o", "ogr").dataProvider().storageType() == "ESRI Shapefile"
    out = run({"INPUT": layer, "OUTPUT": str(tmp_path / "t.parquet")})
    assert out["OUTPUT"].endswith("t.parquet")
    before = folder_files(tmp_path)
    with pytest.raises(QgsProcessingException, match=r"'c.gpkg' is a GeoPackage name but the output format is CSV"):
        run({"INPUT": layer, "FORMAT": FMT["csv"], "OUTPUT": str(tmp_path / "c.gpkg")})
    assert folder_files(tmp_path) == before
