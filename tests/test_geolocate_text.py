"""Text queries: ``GeoCLIP.predict_text`` and ``geoclip:geolocatetext`` with the tiny random CLIP.

The tiny backbone's answers mean nothing geographically; what is checked is the path: the text tower
loads through the same loader as a user's backbone, its features equal transformers' own CLIPModel
text features, they go through GeoCLIP's head, and the outputs are the same kind as for photos.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from osgeo import gdal
from qgis.core import QgsProcessingException, QgsVectorLayer

from model_utils import GeoCLIP
from model_utils.errors import BackboneUnavailable, Canceled
from tests.network_guard import forbid_network
from tests.qgis_events import wait_for

QUERIES = ["Pyramids of Giza", "Eiffel Tower at night", "a snowy mountain village"]


@pytest.fixture(scope="module")
def model(tiny_model):
    return tiny_model



def run(params, feedback=None):
    import processing

    return processing.run("geoclip:geolocatetext", params, feedback=feedback)


# ---------------------------------------------------------------------------- model
def test_text_embeddings_equal_clipmodel_text_features_through_the_head(model, tiny_clip):
    from transformers import AutoTokenizer, CLIPModel

    clip = CLIPModel.from_pretrained(str(tiny_clip)).eval()
    tokens = AutoTokenizer.from_pretrained(str(tiny_clip))(QUERIES, padding=True, return_tensors="pt")
    with torch.inference_mode():
        feats = clip.get_text_features(**tokens)
        feats = feats if isinstance(feats, torch.Tensor) else feats.pooler_output
        expected = torch.nn.functional.normalize(model.mlp(feats.float()), dim=1)
    got = model.embed_texts(QUERIES)
    assert got.shape == (3, 512)
    assert torch.allclose(got, expected, atol=1e-5)
    assert model._vision is None  # text needs only the text tower


def test_predict_text_ranks_the_whole_gallery(model):
    preds = model.predict_text(QUERIES + ["   "], top_k=4)
    assert [p.source for p in preds] == [*QUERIES, "   "]
    assert preds[3].error and "Query 4 is empty" in preds[3].error
    gallery = model.gallery.latlon
    for pred in preds[:3]:
        assert pred.ok and len(pred.lat) == 4
        assert abs(float(pred.gallery_probs.sum()) - 1.0) < 1e-4 and len(pred.gallery_probs) == len(gallery)
        assert np.all(np.diff(pred.prob) <= 0)
        # the gallery repeats 5,877 coordinates, so equal probabilities tie: compare values, not tie order
        assert pred.gallery_probs[pred.indices[0]] == pred.gallery_probs.max()
        np.testing.assert_allclose(pred.prob, np.sort(pred.gallery_probs)[::-1][:4], rtol=1e-6)
        assert np.array_equal(np.c_[pred.lat, pred.lon], gallery[pred.indices].astype(np.float64))
    single = model.predict_text(QUERIES[0], top_k=4)[0]  # one string, not a list of characters
    np.testing.assert_allclose(single.prob, preds[0].prob, rtol=1e-5)
    assert np.allclose(np.c_[single.lat, single.lon], np.c_[preds[0].lat, preds[0].lon])


def test_text_progress_and_cancel(model):
    seen = []
    model.predict_text(QUERIES * 2, top_k=1, batch_size=4, progress=lambda f, _m: seen.append(f))
    assert seen == pytest.approx([4 / 6, 1.0])
    with pytest.raises(Canceled):
        model.predict_text(QUERIES * 2, top_k=1, batch_size=4, is_canceled=lambda: True)


def test_long_queries_are_cut_at_clips_limit(model):
    long = " ".join(["pyramid"] * 400)
    pred = model.predict_text([long], top_k=1)[0]
    assert pred.ok


def test_missing_text_tower_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = GeoCLIP.from_pretrained(clip_model="openai/clip-vit-large-patch14", device="cpu")
    attempts = forbid_network(monkeypatch)  # "fast": no socket, no hub probe, no download is even tried
    with pytest.raises(BackboneUnavailable) as err:
        model.predict_text(["Pyramids of Giza"])
    assert attempts == []
    assert "HF_HUB_OFFLINE is set" in str(err.value)
    assert "GEOCLIP_CLIP_MODEL" in str(err.value) and "clip-vit-large-patch14" in str(err.value)


# ---------------------------------------------------------------------------- algorithm
def test_geolocate_text_writes_rasters_and_points(geoclip_provider, clip_env, tmp_path):
    query_file = tmp_path / "queries.txt"
    query_file.write_text("\ufeffZürich Hauptbahnhof\n\n  St. Peter's   Basilica  \n", encoding="utf-8")
    out = run({"QUERIES": "\n".join(QUERIES[:2]) + "\n\n", "QUERY_FILE": str(query_file), "TOP_K": 3,
               "CELL_SIZE": 1.0, "BANDWIDTH_KM": 100, "OUTPUT_FOLDER": str(tmp_path / "out")})
    assert out["N_QUERIES"] == 4 and out["N_FAILED"] == 0 and "N_PHOTOS" not in out
    rasters = out["RASTERS"]
    assert [r.rsplit("/", 1)[1] for r in rasters] == [
        "Pyramids_of_Giza.tif", "Eiffel_Tower_at_night.tif", "Zürich_Hauptbahnhof.tif", "St._Peter_s_Basilica.tif"]
    for path in rasters:
        ds = gdal.Open(path)
        assert (ds.RasterXSize, ds.RasterYSize) == (360, 180)
        assert abs(ds.GetRasterBand(1).ReadAsArray().sum() - 1.0) < 1e-3
        assert ds.GetMetadataItem("query") in ("Pyramids of Giza", "Eiffel Tower at night", "Zürich Hauptbahnhof",
                                               "St. Peter's Basilica")
    points = QgsVectorLayer(out["POINTS"], "p", "ogr")
    assert points.featureCount() == 12
    names = points.fields().names()
    assert {"query", "label", "rank", "prob", "lat", "lon"} <= set(names) and "photo" not in names
    giza = sorted((f["rank"], f["prob"]) for f in points.getFeatures() if f["query"] == "Pyramids of Giza")
    assert [r for r, _ in giza] == [1, 2, 3] and giza[0][1] >= giza[1][1]
    assert out["REPORT_HTML"] == ""


@pytest.mark.parametrize("params,message", [
    ({"QUERIES": "  \n \n"}, "No text queries given"),
    ({"QUERY_FILE": "/no/such/queries.txt"}, "does not exist"),
])
def test_bad_text_input_gets_clear_errors(geoclip_provider, clip_env, tmp_path, params, message):
    with pytest.raises(QgsProcessingException, match=message):
        run({**params, "OUTPUT_FOLDER": str(tmp_path / "out")})
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_query_file_not_utf8(geoclip_provider, clip_env, tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("Zürich\n".encode("latin-1"))
    with pytest.raises(QgsProcessingException, match="is not UTF-8 text"):
        run({"QUERY_FILE": str(bad), "OUTPUT_FOLDER": str(tmp_path / "out")})


def test_missing_backbone_leaves_no_run_folder(geoclip_provider, tmp_path, monkeypatch):
    monkeypatch.setenv("GEOCLIP_CLIP_MODEL", str(tmp_path / "no-such-backbone"))
    with pytest.raises(QgsProcessingException, match="does not exist"):
        run({"QUERIES": "Pyramids of Giza", "OUTPUT_FOLDER": str(tmp_path / "out")})
    assert not any((tmp_path / "out").iterdir())


# ---------------------------------------------------------------------------- dock
def test_text_tab_runs_a_task_and_adds_styled_layers(loaded_plugin, clip_env, tmp_path, artifacts_dir,
                                                     render_canvas):
    from qgis.core import (
        QgsExpression,
        QgsExpressionContext,
        QgsExpressionContextUtils,
        QgsLayerTreeGroup,
        QgsProject,
        QgsRasterLayer,
        QgsSettings,
        QgsSymbolLayer,
    )

    from tools.samples.rendering import world_basemap

    tab = loaded_plugin.dock.text_tab
    tabs = loaded_plugin.dock.tabs
    assert tabs.tabText(loaded_plugin.dock.index_of(tab)) == "Text query"
    for widget in (tab.queries, tab.query_file, tab.results.top_k, tab.results.cell, tab.results.output,
                   tab.controls.run_button):
        assert widget.toolTip()
    tab.queries.setPlainText("")
    tab.run()
    assert not tab.controls.running and "No text queries given" in tab.controls.log.toPlainText()
    tab.queries.setPlainText("Pyramids of Giza\nEiffel Tower at night")
    tab.results.top_k.setValue(3)
    tab.results.cell.setValue(1.0)
    tab.results.output.setFilePath(str(tmp_path / "out"))
    tab.run()
    assert tab.controls.running
    wait_for(lambda: not tab.controls.running)
    log = tab.controls.log.toPlainText()
    assert tab.controls.results.get("N_QUERIES") == 2, log
    assert QgsSettings().value("geoclip/text/queries") == "Pyramids of Giza\nEiffel Tower at night"
    root = QgsProject.instance().layerTreeRoot()
    groups = [c for c in root.children() if isinstance(c, QgsLayerTreeGroup) and c.name().startswith("GeoCLIP ")]
    assert groups[0].name() == "GeoCLIP Text: Pyramids of Giza (+1 more)"
    layers = [node.layer() for node in groups[-1].findLayers()]
    rasters = sorted((lyr for lyr in layers if isinstance(lyr, QgsRasterLayer)), key=lambda lyr: lyr.name())
    points = [lyr for lyr in layers if isinstance(lyr, QgsVectorLayer)][0]
    assert [r.name() for r in rasters] == ["Pyramids of Giza"]  # the first query's; the other one stays on disk
    assert len(tab.controls.results["RASTERS"]) == 2
    browser = loaded_plugin.dock.results_tab  # the queries listed; selecting one shows its raster in that layer
    wait_for(lambda: browser.index is not None)
    assert browser.index.source_field == "query" and browser.proxy.rowCount() == 2
    browser.table.setCurrentIndex(browser.proxy.index(1, 0))
    assert browser.current_row().source == "Eiffel Tower at night" and rasters[0].name() == "Eiffel Tower at night"
    assert rasters[0].source().endswith("Eiffel_Tower_at_night.tif")
    # the points' size expression groups by query when there is no photo field
    categories = points.renderer().categories()  # one colour per query, named in the legend
    assert sorted(c.label() for c in categories) == ["Eiffel Tower at night", "Pyramids of Giza"]
    size = {category.value(): category.symbol().symbolLayer(0).dataDefinedProperties().property(
        QgsSymbolLayer.Property.PropertySize).expressionString() for category in categories}  # one per query
    context = QgsExpressionContext(QgsExpressionContextUtils.globalProjectLayerScopes(points))
    sizes = {}
    for feature in points.getFeatures():
        context.setFeature(feature)
        sizes[(feature["query"], feature["rank"])] = QgsExpression(size[feature["label"]]).evaluate(context)
    assert sizes[("Pyramids of Giza", 1)] == pytest.approx(7.5)
    assert all(isinstance(v, float) and 2.5 <= v <= 7.5 for v in sizes.values())
    png = render_canvas([points, rasters[0], world_basemap()], "text_query_dock_run")
    assert png.stat().st_size > 10_000
    tabs.setCurrentIndex(tabs.indexOf(tab))
    loaded_plugin.dock.resize(460, 720)
    assert loaded_plugin.dock.grab().save(str(artifacts_dir / "dock_text.png"))
    for group in groups:
        root.removeChildNode(group)
    QgsProject.instance().removeAllMapLayers()
