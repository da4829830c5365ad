"""``geoclip:geolocatephotos`` in a real headless QGIS with the tiny random backbone."""

from __future__ import annotations

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsProject, QgsVectorLayer

from geoclip_qgis.compat import WKB_POINT, FieldType
from tools.samples.official import kauai_png
from tools.samples.photos import write_gps_photo, write_photos


def run(params):
    import processing

    return processing.run("geoclip:geolocatephotos", params)


def test_geolocate_folder_writes_rasters_points_and_report(geoclip_provider, clip_env, tmp_path):
    write_photos(tmp_path / "in", n=2)
    write_gps_photo(tmp_path / "in" / "sydney.jpg", -33.8568, 151.2153)
    (tmp_path / "in" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    out = run({"FOLDER": str(tmp_path / "in"), "PHOTOS": [str(kauai_png())], "TOP_K": 3, "CELL_SIZE": 1.0,
               "BANDWIDTH_KM": 100, "OUTPUT_FOLDER": str(tmp_path / "out")})
    assert out["N_PHOTOS"] == 4 and out["N_FAILED"] == 1
    assert "broken.jpg" in out["ERRORS"]
    rasters = out["RASTERS"]
    assert len(rasters) == 4
    ds = gdal.Open(rasters[0])
    assert ds.GetGeoTransform() == pytest.approx((-180, 1.0, 0, 90, 0, -1.0))
    assert (ds.RasterXSize, ds.RasterYSize) == (360, 180)
    assert ds.GetRasterBand(1).DataType == gdal.GDT_Float32
    assert "4326" in ds.GetSpatialRef().GetAuthorityCode(None)
    assert ds.GetMetadata("IMAGE_STRUCTURE").get("COMPRESSION") == "DEFLATE"
    assert ds.GetRasterBand(1).GetBlockSize() == [256, 256]
    values = ds.GetRasterBand(1).ReadAsArray()
    assert abs(values.sum() - 1.0) < 1e-3
    points = QgsVectorLayer(out["POINTS"], "p", "ogr")
    assert points.isValid() and points.featureCount() == 4 * 3
    assert points.crs().authid() == "EPSG:4326"
    names = points.fields().names()
    for field in ("photo", "photo_name", "rank", "prob", "lat", "lon", "true_lat", "true_lon", "error_km"):
        assert field in names
    sydney = [f for f in points.getFeatures() if f["photo_name"] == "sydney.jpg"]
    assert len(sydney) == 3 and sydney[0]["true_lat"] == pytest.approx(-33.8568, abs=1e-4)
    assert sydney[0]["error_km"] > 0
    assert out["REPORT_HTML"].endswith(".html")


def test_top1_point_is_in_the_raster_maximum():
    """With a peaked GeoCLIP distribution (real weights, 100K gallery), the raster's maximum cell holds
    the top-1 gallery point. The query is a location embedding scored exactly as a photo embedding is."""
    from model_utils import GeoCLIP
    from model_utils.maps.heatmap import GridSpec, probability_grid

    model = GeoCLIP.from_pretrained(device="cpu")
    gallery = model.gallery.latlon
    emb = model.gallery_embeddings().numpy()
    spec = GridSpec.world(0.25)
    for lat, lon in [(48.8584, 2.2945), (-33.8568, 151.2153), (22.07, -159.5)]:
        query = model.encode_locations([[lat, lon]], normalize=True)[0]
        logits = float(model.logit_scale.exp()) * (emb @ query)
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        top = int(np.argmax(probs))
        grid = probability_grid(gallery[:, 0], gallery[:, 1], probs, spec, bandwidth_km=25)
        assert abs(grid.values.sum() - 1) < 1e-3
        row, col = np.unravel_index(np.argmax(grid.values), grid.values.shape)
        x0, dx, _, y0, _, dy = spec.geotransform
        assert abs(int((gallery[top, 1] - x0) // dx) - col) <= 1
        assert abs(int((gallery[top, 0] - y0) // dy) - row) <= 1


class CancelAfterFirstBatch:
    """Feedback that cancels once prediction progress has started (after the first batch).

    It listens to ``progressChanged`` in the reporting thread: a Python ``setProgress`` override would not
    see progress that QGIS's own feedback classes (a multi-step feedback) forward from C++.
    """

    def __new__(cls):
        from qgis.core import QgsProcessingFeedback
        from qgis.PyQt.QtCore import Qt

        feedback = QgsProcessingFeedback()

        def on_progress(value):  # past the tower and gallery stages (2 of 4): a batch of photos is done
            if value > 50:
                feedback.cancel()

        # on the signal, in the reporting thread: the multi-step feedback calls setProgress from C++
        feedback.progressChanged.connect(on_progress, Qt.ConnectionType.DirectConnection)
        feedback._keep = on_progress  # the slot lives as long as the feedback
        return feedback


def test_cancel_mid_run_leaves_no_partial_outputs(geoclip_provider, clip_env, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    photos = write_photos(tmp_path / "in", n=10)
    out = tmp_path / "out"
    out.mkdir()
    (out / "earlier.txt").write_text("an earlier result")
    feedback = CancelAfterFirstBatch()
    with pytest.raises(QgsProcessingException, match="Canceled: no outputs were kept"):
        processing.run("geoclip:geolocatephotos", {"PHOTOS": [str(p) for p in photos], "BATCH_SIZE": 2,
                                                   "CELL_SIZE": 2.0, "OUTPUT_FOLDER": str(out)}, feedback=feedback)
    assert feedback.isCanceled()
    assert sorted(p.name for p in out.iterdir()) == ["earlier.txt"]


def test_second_run_never_overwrites_the_first(geoclip_provider, clip_env, tmp_path):
    params = {"PHOTOS": [str(kauai_png())], "TOP_K": 1, "CELL_SIZE": 5.0, "OUTPUT_FOLDER": str(tmp_path)}
    first, second = run(params), run(params)
    assert first["RUN_FOLDER"] != second["RUN_FOLDER"]
    assert QgsVectorLayer(first["POINTS"], "a", "ogr").featureCount() == 1
    assert QgsVectorLayer(second["POINTS"], "b", "ogr").featureCount() == 1


def test_photo_layer_paths_and_selection(geoclip_provider, clip_env, tmp_path):
    from qgis.core import QgsFeature, QgsField, QgsProcessingFeatureSourceDefinition

    photos = write_photos(tmp_path / "in", n=3)
    layer = QgsVectorLayer("Point?crs=EPSG:4326", "photos", "memory")
    layer.dataProvider().addAttributes([QgsField("photo", FieldType.STRING)])
    layer.updateFields()
    for path in [*photos, tmp_path / "gone.jpg"]:
        f = QgsFeature(layer.fields())
        f["photo"] = str(path)
        layer.dataProvider().addFeature(f)
    QgsProject.instance().addMapLayer(layer)
    try:
        out = run({"PHOTO_LAYER": layer, "TOP_K": 1, "WRITE_RASTERS": False, "OUTPUT_FOLDER": str(tmp_path / "o")})
        assert out["N_PHOTOS"] == 3 and out["N_FAILED"] == 1 and "gone.jpg" in out["ERRORS"], out["ERRORS"]
        layer.selectByIds([1])
        out = run({"PHOTO_LAYER": QgsProcessingFeatureSourceDefinition(layer.id(), True), "TOP_K": 1,
                   "WRITE_RASTERS": False, "OUTPUT_FOLDER": str(tmp_path / "o")})
        assert out["N_PHOTOS"] == 1 and out["RASTERS"] == []
    finally:
        QgsProject.instance().removeMapLayer(layer.id())


@pytest.mark.parametrize(
    "params, message",
    [
        ({}, "No photos given"),
        ({"EXTENT": "10,10,20,20 [EPSG:4326]"}, "zero area"),
        ({"CELL_SIZE": 0.001}, "cells"),
    ],
)
def test_bad_parameters_get_clear_errors(geoclip_provider, clip_env, tmp_path, params, message):
    from qgis.core import QgsProcessingException

    base = {"PHOTOS": [str(kauai_png())], "OUTPUT_FOLDER": str(tmp_path)}
    if not params:
        base.pop("PHOTOS")
    with pytest.raises(QgsProcessingException, match=message):
        run({**base, **params})
    assert [p for p in tmp_path.iterdir() if p.name.startswith(("geoclip_", ".geoclip_"))] == []


def test_unwritable_output_folder(geoclip_provider, clip_env, tmp_path):
    from qgis.core import QgsProcessingException

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(QgsProcessingException, match="not writable"):
        run({"PHOTOS": [str(kauai_png())], "OUTPUT_FOLDER": str(blocker / "sub")})


def test_layer_without_path_field(geoclip_provider, clip_env, tmp_path):
    from qgis.core import QgsProcessingException

    layer = QgsVectorLayer("Point?crs=EPSG:4326&field=name:string", "nopaths", "memory")
    with pytest.raises(QgsProcessingException, match="no photo path field"):
        run({"PHOTO_LAYER": layer, "OUTPUT_FOLDER": str(tmp_path)})


def test_relative_photo_paths_resolve_against_the_layer_folder(geoclip_provider, clip_env, tmp_path):
    from qgis.core import (
        QgsCoordinateReferenceSystem,
        QgsCoordinateTransformContext,
        QgsFeature,
        QgsField,
        QgsFields,
        QgsVectorFileWriter,
    )

    write_photos(tmp_path / "data" / "pics", n=2)
    fields = QgsFields()
    fields.append(QgsField("photo", FieldType.STRING))
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    gpkg = tmp_path / "data" / "photos.gpkg"
    writer = QgsVectorFileWriter.create(str(gpkg), fields, WKB_POINT,
                                        QgsCoordinateReferenceSystem("EPSG:4326"), QgsCoordinateTransformContext(),
                                        options)
    for name in ("pics/photo_00.jpg", "pics/photo_01.jpg"):
        f = QgsFeature(fields)
        f["photo"] = name
        writer.addFeature(f)
    del writer
    out = run({"PHOTO_LAYER": str(gpkg), "TOP_K": 1, "WRITE_RASTERS": False, "OUTPUT_FOLDER": str(tmp_path / "o")})
    assert out["N_PHOTOS"] == 2 and out["N_FAILED"] == 0, out["ERRORS"]
