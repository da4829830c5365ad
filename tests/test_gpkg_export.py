"""The GeoPackage side of ``geoclip:gpsembeddings``: rows written through SQLite directly.

OGR writes the same input as the reference: every attribute type QGIS offers must read back from our
file exactly as from OGR's, the file must be a complete GeoPackage (contents extent, feature count,
R-tree index), and the packed layout's binary field must hold the encoder's float32 values bit for bit.
"""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from qgis.core import (
    QgsCoordinateTransformContext,
    QgsField,
    QgsGeometry,
    QgsPointXY,
    QgsProcessingException,
    QgsVectorFileWriter,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QByteArray, QDate, QDateTime, Qt, QTime

from geoclip_qgis.compat import FieldType
from tests.embedding_helpers import (
    FMT,
    LogFeedback,
    add_features,
    folder_files,
    memory_layer,
    point_layer,
    random_latlon,
    read_layer,
    run,
)

PACKED = 1


@pytest.fixture(scope="module")
def model():
    from model_utils.model.geoclip import shared_model

    return shared_model()


def typed_layer() -> QgsVectorLayer:
    fields = [QgsField("i", FieldType.INT), QgsField("big", FieldType.LONG), QgsField("d", FieldType.DOUBLE),
              QgsField("s", FieldType.STRING), QgsField("flag", FieldType.BOOL), QgsField("day", FieldType.DATE),
              QgsField("stamp", FieldType.DATETIME), QgsField("clock", FieldType.TIME),
              QgsField("raw", FieldType.BYTES)]
    layer = memory_layer(fields=fields)
    rows = [
        [1, 2**40, 1.5, "Zürich 'quoted' \"double\"", True, QDate(2020, 1, 2),
         QDateTime(QDate(2020, 1, 2), QTime(3, 4, 5, 678)), QTime(3, 4, 5), QByteArray(b"\x00ab")],
        [None] * 9,
        [-7, -(2**40), -0.25, "", False, QDate(1999, 12, 31),
         QDateTime(QDate(2021, 6, 30), QTime(23, 59, 59, 0), Qt.TimeSpec.UTC), QTime(0, 0, 1), QByteArray(b"")],
    ]
    add_features(layer, ["POINT(8.5 47.4)", "POINT(-70 -33)", "POINT(151.2 -33.9)"], rows)
    return layer


def ogr_reference(layer: QgsVectorLayer, path) -> dict[str, list]:
    """What OGR itself writes for ``layer`` into a GeoPackage, read back through QGIS: {name: values}."""
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    error = QgsVectorFileWriter.writeAsVectorFormatV3(layer, str(path), QgsCoordinateTransformContext(), options)
    assert error[0] == QgsVectorFileWriter.WriterError.NoError, error
    written = QgsVectorLayer(str(path), "ref", "ogr")
    return {name: [f[name] for f in written.getFeatures()] for name in layer.fields().names()}


def test_every_attribute_type_reads_back_as_ogr_writes_it(geoclip_provider, tmp_path):
    layer = typed_layer()
    reference = ogr_reference(layer, tmp_path / "ref.gpkg")
    out = run({"INPUT": layer, "OUTPUT": str(tmp_path / "typed.gpkg")})
    names, by_fid = read_layer(out["OUTPUT"])
    ours = [by_fid[f.id()] for f in layer.getFeatures()]
    inputs = list(layer.getFeatures())
    for name in layer.fields().names():
        got = [f[name] for f in ours]
        # GeoPackage has no time type (OGR and we both store 'HH:MM:SS' text); the memory layer hands a NULL
        # binary value out as an empty QByteArray (OGR and we both store NULL)
        if name not in ("clock", "raw"):
            assert got == [f[name] for f in inputs], name
        if name != "stamp":  # OGR through QGIS 3.22 drops the milliseconds (03:04:05.678 -> 03:04:05); we keep them
            assert got == reference[name], name
    assert [f["clock"] for f in ours][::2] == ["03:04:05", "00:00:01"]
    ogr_kinds = {f.name(): f.type() for f in QgsVectorLayer(str(tmp_path / "ref.gpkg"), "ref", "ogr").fields()}
    kinds = {f.name(): f.type() for f in QgsVectorLayer(out["OUTPUT"], "typed", "ogr").fields()}
    assert all(kinds[name] == ogr_kinds[name] for name in layer.fields().names()), (kinds, ogr_kinds)
    assert kinds["day"] == FieldType.DATE and kinds["stamp"] == FieldType.DATETIME and kinds["raw"] == FieldType.BYTES
    assert ours[0]["s"] == "Zürich 'quoted' \"double\"" and ours[0]["big"] == 2**40


def test_output_is_a_complete_geopackage(geoclip_provider, tmp_path):
    latlon = random_latlon(500, seed=3)
    out = run({"INPUT": point_layer(latlon), "OUTPUT": str(tmp_path / "full.gpkg")})["OUTPUT"]
    layer = QgsVectorLayer(out, "full", "ogr")
    assert layer.isValid() and layer.featureCount() == 500
    extent = layer.extent()
    assert (extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum()) == pytest.approx(
        (latlon[:, 1].min(), latlon[:, 0].min(), latlon[:, 1].max(), latlon[:, 0].max()), abs=1e-12)
    with sqlite3.connect(out) as db:
        assert db.execute("PRAGMA application_id").fetchone()[0] == 0x47504B47  # 'GPKG'
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT feature_count FROM gpkg_ogr_contents WHERE table_name = 'full'").fetchone()[0] \
            == 500
        contents = db.execute("SELECT min_x, min_y, max_x, max_y, srs_id FROM gpkg_contents").fetchone()
        assert contents[4] == 4326 and contents[0] == pytest.approx(latlon[:, 1].min())
        assert db.execute("SELECT extension_name FROM gpkg_extensions WHERE table_name = 'full'").fetchone()[0] \
            == "gpkg_rtree_index"
        assert db.execute("SELECT count(*) FROM rtree_full_geom").fetchone()[0] == 500
    # the spatial index answers a rectangle query like a plain scan does
    from qgis.core import QgsFeatureRequest, QgsRectangle

    box = QgsRectangle(-30, -20, 60, 45)
    hits = {f["src_fid"] for f in layer.getFeatures(QgsFeatureRequest().setFilterRect(box))}
    inside = {i + 1 for i, (lat, lon) in enumerate(latlon) if -30 <= lon <= 60 and -20 <= lat <= 45}
    assert hits == inside and hits
    from osgeo import ogr

    dataset = ogr.Open(out)
    assert dataset.GetLayer(0).GetFeatureCount() == 500 and dataset.GetLayer(0).GetSpatialRef().GetAuthorityCode(
        None) == "4326"
    dataset = None
    # OGR's triggers are back: an edit in QGIS keeps the R-tree and the feature count current
    with sqlite3.connect(out) as db:
        triggers = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND "
                                             "tbl_name = 'full'")}
    db.close()
    assert {"rtree_full_geom_insert", "rtree_full_geom_delete", "trigger_insert_feature_count_full"} <= triggers
    from qgis.core import QgsFeature, QgsPointXY

    added = QgsFeature(layer.fields())
    added.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(-150.5, 60.25)))
    assert layer.dataProvider().addFeatures([added])[0]
    del layer
    with sqlite3.connect(out) as db:
        assert db.execute("SELECT feature_count FROM gpkg_ogr_contents").fetchone()[0] == 501
        assert db.execute("SELECT count(*) FROM rtree_full_geom WHERE minx < -150 AND maxx > -151").fetchone()[0] \
            == 1 + sum(1 for lat, lon in latlon if -151 < lon < -150)
    db.close()


def test_packed_field_holds_the_float32_values_exactly(geoclip_provider, model, tmp_path):
    latlon = random_latlon(300, seed=5)
    layer = point_layer(latlon)
    feedback = LogFeedback()
    out = run({"INPUT": layer, "LAYOUT": PACKED, "OUTPUT": str(tmp_path / "packed.gpkg")}, feedback)
    names, by_fid = read_layer(out["OUTPUT"])
    assert names[-4:] == ["src_fid", "embedding", "lat", "lon"]
    assert "numpy.frombuffer(blob, '<f4')" in feedback.text
    feats = [by_fid[f.id()] for f in layer.getFeatures()]
    got = np.stack([np.frombuffer(bytes(f["embedding"]), dtype="<f4") for f in feats])
    assert got.shape == (300, 512)
    assert np.array_equal(got, model.encode_locations(latlon, batch_size=4096))
    assert {len(bytes(f["embedding"])) for f in feats} == {2048}  # 512 x 4 bytes; 4,096 as 512 REAL columns


def test_packed_pca_field_matches_the_saved_fit(geoclip_provider, model, tmp_path):
    latlon = random_latlon(200, seed=6)
    layer = point_layer(latlon)
    out = run({"INPUT": layer, "LAYOUT": PACKED, "PCA_COMPONENTS": 4, "OUTPUT": str(tmp_path / "p.gpkg")})
    fit = np.load(out["PCA_FILE"])
    _, by_fid = read_layer(out["OUTPUT"])
    got = np.stack([np.frombuffer(bytes(by_fid[f.id()]["pca"]), dtype="<f4") for f in layer.getFeatures()])
    expected = (model.encode_locations(latlon, batch_size=4096).astype(np.float64) - fit["mean"]) @ fit["components"].T
    assert got.shape == (200, 4) and np.allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_packed_needs_geopackage(geoclip_provider, tmp_path):
    layer = point_layer(random_latlon(5))
    for fmt in ("shp", "csv", "parquet"):
        with pytest.raises(QgsProcessingException, match="one binary field needs the GeoPackage format"):
            run({"INPUT": layer, "LAYOUT": PACKED, "FORMAT": FMT[fmt], "OUTPUT": str(tmp_path / f"x.{fmt}")})
    assert folder_files(tmp_path) == []
    feedback = LogFeedback()
    run({"INPUT": layer, "LAYOUT": PACKED, "FORMAT": FMT["npz"], "OUTPUT": str(tmp_path / "x.npz")}, feedback)
    assert "option ignored" in feedback.text and folder_files(tmp_path) == ["x.npz"]


def test_cancel_packed_leaves_nothing(geoclip_provider, tmp_path):
    layer = point_layer(random_latlon(4096 * 2 + 10, seed=12))
    feedback = LogFeedback(cancel_after_progress=True)
    with pytest.raises(QgsProcessingException, match="Canceled"):
        run({"INPUT": layer, "LAYOUT": PACKED, "OUTPUT": str(tmp_path / "c.gpkg")}, feedback)
    assert folder_files(tmp_path) == []


def test_geometry_blobs_match_ogr(tmp_path):
    from geoclip_qgis.processing.io.gpkg_writer import point_blobs

    layer = memory_layer()
    add_features(layer, [QgsGeometry.fromPointXY(QgsPointXY(12.5, -41.25))])
    ogr_reference(layer, tmp_path / "one.gpkg")
    with sqlite3.connect(tmp_path / "one.gpkg") as db:
        blob = db.execute("SELECT geom FROM one").fetchone()[0]
    assert point_blobs(np.array([[-41.25, 12.5]]))[0] == blob


def test_dock_offers_the_packed_field_for_geopackage_only(loaded_plugin, tmp_path):
    from qgis.core import QgsProject, QgsSettings

    tab = loaded_plugin.dock.embeddings_tab
    layer = point_layer(random_latlon(3))
    QgsProject.instance().addMapLayer(layer)
    tab.layer.setLayer(layer)
    tab.output.setFilePath(str(tmp_path / "dock.gpkg"))
    tab.packed.setCurrentIndex(1)
    tab.format.setCurrentIndex(FMT["shp"])
    assert not tab.packed.isEnabled() and tab.parameters()["LAYOUT"] == 0
    tab.format.setCurrentIndex(FMT["gpkg"])
    assert tab.packed.isEnabled() and tab.parameters()["LAYOUT"] == 1 and tab.packed.toolTip()
    tab.remember()
    assert QgsSettings().value("geoclip/embeddings/packed", type=bool) is True
    tab.packed.setCurrentIndex(0)
    tab.remember()
    QgsProject.instance().removeMapLayer(layer.id())


def test_geopackage_input_keeps_its_feature_ids(geoclip_provider, tmp_path):
    from osgeo import ogr, osr

    source = tmp_path / "in" / "sparse.gpkg"
    source.parent.mkdir()
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(4326)
    dataset = ogr.GetDriverByName("GPKG").CreateDataSource(str(source))
    layer = dataset.CreateLayer("sparse", srs, ogr.wkbPoint)
    layer.CreateField(ogr.FieldDefn("name", ogr.OFTString))
    for fid, (lon, lat) in zip((10, 20, 35), ((2.35, 48.85), (-74.0, 40.7), (139.7, 35.7))):
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetFID(fid)
        feature.SetField("name", f"n{fid}")
        feature.SetGeometry(ogr.CreateGeometryFromWkt(f"POINT ({lon} {lat})"))
        layer.CreateFeature(feature)
    dataset = None
    out = run({"INPUT": str(source), "OUTPUT": str(tmp_path / "kept.gpkg")})
    written = QgsVectorLayer(out["OUTPUT"], "kept", "ogr")
    assert sorted((f.id(), f["src_fid"], f["name"]) for f in written.getFeatures()) == [
        (10, 10, "n10"), (20, 20, "n20"), (35, 35, "n35")]


def test_duplicate_integer_fid_field_is_a_clear_error(geoclip_provider, tmp_path):
    layer = memory_layer(fields=[QgsField("fid", FieldType.INT)])
    add_features(layer, ["POINT(1 2)", "POINT(3 4)"], [[7], [7]])
    with pytest.raises(QgsProcessingException, match="field 'fid' becomes the GeoPackage feature id"):
        run({"INPUT": layer, "OUTPUT": str(tmp_path / "dup.gpkg")})
    assert folder_files(tmp_path) == []
