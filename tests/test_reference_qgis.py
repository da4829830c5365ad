"""Reference photos in headless QGIS: ``geoclip:buildreferences`` from a folder and from a point layer (photos
without a position and bad files named), and ``geoclip:geolocatephotos`` with REFERENCES: the fused answer in the
points, raster and regions, the matched references and lines, and GeoCLIP alone and fused side by side."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from osgeo import gdal
from PIL import Image
from qgis.core import QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsPointXY, QgsProject, QgsVectorLayer

from tools.samples.photos import gps_exif, write_photos


def run(algorithm: str, params: dict, context=None, feedback=None):
    import processing

    return processing.run(algorithm, params, context=context, feedback=feedback)


def scene_folder(scene_photos, folder, scenes: range):
    """Copies of the reference variants of ``scenes`` (with their EXIF GPS) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for photo in scene_photos:
        if not photo.query and photo.scene in scenes:
            shutil.copy(photo.path, folder / photo.path.name)
    return folder


def test_build_from_a_folder_names_what_it_left_out_and_a_second_build_embeds_nothing(
        geoclip_provider, clip_env, scene_photos, tmp_path):
    folder = scene_folder(scene_photos, tmp_path / "refs", range(4))
    write_photos(folder / "no_gps", n=1)  # a photo without EXIF GPS, in a subfolder
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a photo")
    out = run("geoclip:buildreferences", {"FOLDER": str(folder), "COLLECTION": str(tmp_path / "coll")})
    assert (out["N_REFERENCES"], out["N_EMBEDDED"], out["N_LEFT_OUT"]) == (20, 20, 2)
    assert out["INDEX"] == str(tmp_path / "coll" / "reference_index.safetensors")
    points = QgsVectorLayer(out["REFERENCE_POINTS"], "refs", "ogr")
    assert points.isValid() and points.featureCount() == 20 and points.crs().authid() == "EPSG:4326"
    by_name = {f["photo_name"]: f for f in points.getFeatures()}
    first = next(p for p in scene_photos if p.path.name in by_name)
    point = by_name[first.path.name].geometry().asPoint()
    assert (point.y(), point.x()) == pytest.approx((first.lat, first.lon), abs=1e-5)
    left = {f["photo_name"]: f["reason"] for f in QgsVectorLayer(out["LEFT_OUT"], "left", "ogr").getFeatures()}
    assert left["photo_00.jpg"].startswith("no position")
    assert "broken.jpg" in left and "broken.jpg" in left["broken.jpg"]  # named, with why it cannot be read
    html = (tmp_path / "coll" / "report" / "fit.html").read_text(encoding="utf-8")
    assert out["FIT_REPORT"].endswith("fit.html")
    assert "GeoCLIP alone" in html and "Fused (leave-one-out)" in html and "broken.jpg" in html
    again = run("geoclip:buildreferences", {"FOLDER": str(folder), "COLLECTION": str(tmp_path / "coll")})
    assert (again["N_REFERENCES"], again["N_EMBEDDED"]) == (20, 0)


def test_build_from_a_point_layer_takes_the_positions_from_the_geometry(geoclip_provider, clip_env, scene_photos,
                                                                        tmp_path):
    """Query variants carry no EXIF GPS: the positions can only come from the layer (in Web Mercator)."""
    from qgis.core import QgsFeature, QgsField, QgsGeometry, QgsVectorFileWriter

    from geoclip_qgis.compat import FieldType

    mercator = QgsCoordinateReferenceSystem("EPSG:3857")
    to_mercator = QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:4326"), mercator, QgsProject.instance())
    layer = QgsVectorLayer(f"Point?crs={mercator.authid()}", "photos", "memory")
    layer.dataProvider().addAttributes([QgsField("path", FieldType.STRING)])
    layer.updateFields()
    photos = [p for p in scene_photos if p.query][:6]
    (tmp_path / "layer").mkdir()
    for photo in photos:
        shutil.copy(photo.path, tmp_path / "layer" / photo.path.name)
    features = []
    for photo in photos:
        feature = QgsFeature(layer.fields())
        feature.setGeometry(QgsGeometry.fromPointXY(to_mercator.transform(QgsPointXY(photo.lon, photo.lat))))
        feature.setAttributes([photo.path.name])  # relative to the GeoPackage's folder
        features.append(feature)
    no_geometry = QgsFeature(layer.fields())
    no_geometry.setAttributes([str(write_photos(tmp_path / "plain", n=1)[0])])  # no geometry, no EXIF
    layer.dataProvider().addFeatures([*features, no_geometry])
    gpkg = tmp_path / "layer" / "photos.gpkg"
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    QgsVectorFileWriter.writeAsVectorFormatV3(layer, str(gpkg), QgsProject.instance().transformContext(), options)
    out = run("geoclip:buildreferences", {"PHOTO_LAYER": str(gpkg), "FIT": False,
                                          "COLLECTION": str(tmp_path / "coll")})
    assert (out["N_REFERENCES"], out["N_LEFT_OUT"]) == (6, 1)
    got = {f["photo_name"]: (f["lat"], f["lon"]) for f in QgsVectorLayer(out["REFERENCE_POINTS"], "r", "ogr")
           .getFeatures()}
    for photo in photos:
        assert got[photo.path.name] == pytest.approx((photo.lat, photo.lon), abs=1e-6)
    assert "Not fitted" in (tmp_path / "coll" / "report" / "fit.html").read_text(encoding="utf-8")


def test_build_refuses_no_source_and_two_sources(geoclip_provider, clip_env, tmp_path):
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match="No reference photos given"):
        run("geoclip:buildreferences", {"COLLECTION": str(tmp_path / "c")})
    (tmp_path / "t.csv").write_text("path,lat,lon\n", encoding="utf-8")
    with pytest.raises(QgsProcessingException, match="Several sources given"):
        run("geoclip:buildreferences", {"FOLDER": str(tmp_path), "TABLE": str(tmp_path / "t.csv"),
                                        "COLLECTION": str(tmp_path / "c")})


def geotagged_queries(scene_photos, folder, n: int = 3):
    """Held-out variants of the first ``n`` scenes, saved again with their scene's EXIF GPS (so both errors show)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for photo in [p for p in scene_photos if p.query][:2 * n:2]:
        path = folder / photo.path.name
        Image.open(photo.path).save(path, quality=95, exif=gps_exif(photo.lat, photo.lon))
        out.append((path, photo))
    return out


def test_geolocate_with_references_gives_the_fused_answer_matches_lines_and_both_columns(
        geoclip_provider, clip_env, scene_collection, scene_photos, reference_model, tmp_path):
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    from model_utils.reference import ReferenceGeolocator

    queries = geotagged_queries(scene_photos, tmp_path / "queries")
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    out = run("geoclip:geolocatephotos", {
        "PHOTOS": [str(p) for p, _ in queries], "REFERENCES": str(scene_collection.index), "TOP_K": 3,
        "CELL_SIZE": 2.0, "OUTPUT_FOLDER": str(tmp_path / "out")}, context, QgsProcessingFeedback())
    assert out["N_PHOTOS"] == 3
    expected = ReferenceGeolocator(reference_model, scene_collection.index).predict([str(p) for p, _ in queries],
                                                                                    top_k=3)
    points = QgsVectorLayer(out["POINTS"], "p", "ogr")
    top1 = {f["photo_name"]: (f["lat"], f["lon"]) for f in points.getFeatures() if f["rank"] == 1}
    for (path, photo), pred in zip(queries, expected):
        assert top1[path.name] == pytest.approx((pred.lat[0], pred.lon[0]), abs=1e-6)  # the fused answer
        assert top1[path.name] == pytest.approx((photo.lat, photo.lon), abs=1e-6)  # which is the scene's place
    for raster in out["RASTERS"]:  # the fused distribution, spread on the grid, still sums to 1
        assert abs(gdal.Open(raster).GetRasterBand(1).ReadAsArray().astype(np.float64).sum() - 1.0) < 1e-3
    matches = QgsVectorLayer(out["MATCHES"], "m", "ogr")
    assert matches.isValid() and matches.featureCount() == 3 * 10
    for name in ("photo", "photo_name", "rank", "similarity", "share", "reference", "lat", "lon"):
        assert name in matches.fields().names()
    best = [f for f in matches.getFeatures() if f["rank"] == 1]
    assert all(f["reference"] == m.matches[0].path for f, m in zip(best, expected))
    lines = QgsVectorLayer(out["MATCHES"].replace("matches", "match_lines"), "l", "ogr")
    assert lines.featureCount() == 30
    line = next(lines.getFeatures()).geometry().asPolyline()
    assert (line[0].y(), line[0].x()) == pytest.approx(top1[queries[0][0].name], abs=1e-6)
    names = [details.name for details in context.layersToLoadOnCompletion().values()]
    assert "Matched reference photos" in names and "Best guess to matched references" in names
    html = open(out["REFERENCE_REPORT"], encoding="utf-8").read()
    assert "GeoCLIP alone" in html and "Fused with the references" in html and html.count("Error (km)") == 2


def test_a_canceled_build_keeps_the_collection_as_it_was(geoclip_provider, clip_env, scene_photos, tmp_path):
    from qgis.core import QgsProcessingException, QgsProcessingFeedback

    folder = scene_folder(scene_photos, tmp_path / "refs", range(1))
    feedback = QgsProcessingFeedback()
    feedback.cancel()
    with pytest.raises(QgsProcessingException, match="Canceled: the collection was left as it was"):
        run("geoclip:buildreferences", {"FOLDER": str(folder), "COLLECTION": str(tmp_path / "coll")},
            feedback=feedback)
    assert not (tmp_path / "coll" / "reference_index.safetensors").exists()
