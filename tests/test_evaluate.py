"""The accuracy report (``model_utils.evaluation.accuracy_report``) and ``geoclip:evaluategeolocation``, in
real headless QGIS."""

from __future__ import annotations

import csv
import re
import shutil
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsCoordinateTransformContext,
    QgsFeature,
    QgsField,
    QgsFields,
    QgsGeometry,
    QgsPointXY,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProject,
    QgsRectangle,
    QgsVectorFileWriter,
)

from geoclip_qgis.compat import WKB_POINT, WKB_POLYGON, FieldType
from model_utils.evaluation.accuracy_report import PhotoResult, write_accuracy_report
from model_utils.geo import geodesic_km
from tests.disk_faults import disk_full_on

WGS84 = QgsCoordinateReferenceSystem("EPSG:4326")
ODD_NAME = 'a<b>&"c".jpg'

# Hand-made errors: 2 within 1 km (one exactly on it), 3 within 25, 4 within 200, 5 within 750, 6 within 2500.
ERRORS_KM = [0.5, 1.0, 10.0, 100.0, 500.0, 1000.0, 3000.0, 15000.0]


def hand_made_rows() -> list[PhotoResult]:
    rows = [PhotoResult(photo=f"/photos/p{i}.jpg", pred_lat=10.0 + i, pred_lon=20.0, true_lat=10.0, true_lon=20.0,
                        error_km=e, prob=0.5 - 0.01 * i) for i, e in enumerate(ERRORS_KM)]
    rows.append(PhotoResult(photo=f"/photos/{ODD_NAME}", pred_lat=1.0, pred_lon=2.0, prob=0.3))  # no EXIF GPS
    return rows


class _Collector(HTMLParser):
    """Tags, the text of every table cell, and all text, as a browser's parser would see them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.cells: list[str] = []
        self.text: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.cells.append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def parse_html(path: Path) -> _Collector:
    parser = _Collector()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    return parser


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


# ---------------------------------------------------------------------------------------------- report
def test_report_csv_has_exact_shares_median_and_counts(tmp_path):
    paths = write_accuracy_report(hand_made_rows(), tmp_path, title="Hand-made")
    assert (paths.csv.name, paths.per_photo_csv.name, paths.html.name) == (
        "accuracy.csv", "per_photo.csv", "accuracy.html")
    report = paths.accuracy
    assert report.n == 8 and report.n_ignored == 1
    assert report.share_within == (0.25, 0.375, 0.5, 0.625, 0.75)
    assert report.median_km == 300.0 and report.mean_km == sum(ERRORS_KM) / 8

    rows = read_csv(paths.csv)
    table = rows[:5]
    assert [r["name"] for r in table] == ["street", "city", "region", "country", "continent"]
    assert [float(r["threshold_km"]) for r in table] == [1, 25, 200, 750, 2500]
    assert [float(r["share"]) for r in table] == [0.25, 0.375, 0.5, 0.625, 0.75]
    assert [float(r["percent"]) for r in table] == [25.0, 37.5, 50.0, 62.5, 75.0]
    assert [int(r["n_within"]) for r in table] == [2, 3, 4, 5, 6]
    assert all(int(r["n"]) == 8 for r in table)
    extra = {r["name"]: r for r in rows[5:]}
    assert float(extra["median_error"]["error_km"]) == 300.0
    assert float(extra["mean_error"]["error_km"]) == pytest.approx(2451.4375)
    assert int(extra["without_ground_truth"]["n"]) == 1

    photos = read_csv(paths.per_photo_csv)
    assert len(photos) == 9
    assert list(photos[0]) == ["photo", "photo_name", "pred_lat", "pred_lon", "true_lat", "true_lon", "error_km",
                               "prob"]
    assert [float(p["error_km"]) for p in photos[:8]] == ERRORS_KM
    assert photos[8]["photo_name"] == ODD_NAME and photos[8]["error_km"] == "" and photos[8]["true_lat"] == ""


def test_report_html_parses_with_chart_tables_and_escaped_names(tmp_path, artifacts_dir):
    paths = write_accuracy_report(hand_made_rows(), tmp_path, title="Hand-made <set> & co")
    shutil.copy(paths.html, artifacts_dir / "accuracy_report_hand_made.html")
    raw = paths.html.read_text(encoding="utf-8")
    parsed = parse_html(paths.html)

    assert parsed.tags.count("table") == 3  # the paper's table, the summary, the per-photo table
    assert "svg" in parsed.tags and "path" in parsed.tags
    for name in ("Street", "City", "Region", "Country", "Continent"):
        assert any(cell.startswith(name) for cell in parsed.cells), name
    assert any("1 km" in c for c in parsed.cells) and any("2500 km" in c for c in parsed.cells)
    # Our row, then the paper's reference row, labelled as such.
    i = parsed.cells.index("This set (N = 8)")
    assert parsed.cells[i + 1:i + 6] == ["25.00", "37.50", "50.00", "62.50", "75.00"]
    ref = next(j for j, c in enumerate(parsed.cells) if c.startswith("Reference: GeoCLIP paper, Im2GPS3k"))
    assert parsed.cells[ref + 1:ref + 6] == ["14.11", "34.47", "50.65", "69.67", "83.82"]
    j = parsed.cells.index("Median error")
    assert parsed.cells[j + 1] == "300.0 km"
    assert parsed.cells[parsed.cells.index("Photos evaluated (N)") + 1] == "8"

    # Names and the title reach the reader intact, and only as escaped text in the source.
    assert ODD_NAME in parsed.cells
    assert "Hand-made <set> & co" in "".join(parsed.text)
    assert "a&lt;b&gt;&amp;&quot;c&quot;.jpg" in raw and ODD_NAME not in raw and "<set>" not in raw
    assert "<script" not in raw and "http://" not in raw.replace("http://www.w3.org/2000/svg", "")
    assert not re.search(r"""(src|href)=["'](?!#)""", raw)  # no external assets

    # The chart is well-formed SVG: axis from 0.1 to 20,000 km, five thresholds, one step per distinct error.
    svg = ET.fromstring(re.search(r"<svg.*?</svg>", raw, re.S).group(0))
    ns = {"s": "http://www.w3.org/2000/svg"}
    labels = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")]
    assert "0.1" in labels and "10,000" in labels and "2,500 km" in labels
    dashed = [line for line in svg.findall("s:line", ns) if line.get("stroke-dasharray")]
    assert len(dashed) == 5
    cdf = next(p for p in svg.findall("s:path", ns) if p.get("class") == "cdf")
    steps = re.findall(r"V([\d.]+)", cdf.get("d"))
    assert len(steps) == len(ERRORS_KM)  # all errors lie in (0.1, 20000] km
    top, bottom = 44.0, 380 - 56.0
    assert float(steps[-1]) == pytest.approx(top)  # every photo within 15,000 km
    first_y = float(re.match(r"M[\d.]+,([\d.]+)", cdf.get("d")).group(1))
    assert first_y == pytest.approx(bottom)  # none within 0.1 km
    assert len(svg.findall("s:circle", ns)) == 5


def test_report_never_overwrites_and_leaves_no_temp_files(tmp_path):
    first = write_accuracy_report(hand_made_rows(), tmp_path, title="one")
    before = first.html.read_bytes()
    second = write_accuracy_report(hand_made_rows()[:3], tmp_path, title="two")
    assert (second.csv.name, second.per_photo_csv.name, second.html.name) == (
        "accuracy_2.csv", "per_photo_2.csv", "accuracy_2.html")
    assert first.html.read_bytes() == before
    assert second.accuracy.n == 3
    # A name taken by any one of the three moves all three on, so a report's files stay together.
    (tmp_path / "per_photo_3.csv").write_text("someone else's")
    third = write_accuracy_report(hand_made_rows(), tmp_path, title="three")
    assert third.html.name == "accuracy_4.html" and third.per_photo_csv.name == "per_photo_4.csv"
    assert (tmp_path / "per_photo_3.csv").read_text() == "someone else's"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_report_failure_midway_leaves_nothing(tmp_path, monkeypatch):
    disk_full_on(monkeypatch, ".html")  # the page is the last file of a report to be renamed into place
    with pytest.raises(OSError):
        write_accuracy_report(hand_made_rows(), tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_report_from_geolocate_style_dicts_computes_missing_errors(tmp_path):
    paris, london = (48.8566, 2.3522), (51.5072, -0.1276)
    rows = [dict(photo="/p/paris.jpg", pred_lat=london[0], pred_lon=london[1], true_lat=paris[0],
                 true_lon=paris[1], error_km=None, prob=0.2)]
    paths = write_accuracy_report(rows, tmp_path, title="dicts", stem="paris")
    assert paths.html.name == "paris.html" and paths.per_photo_csv.name == "paris_per_photo.csv"
    assert paths.accuracy.median_km == pytest.approx(343.9, abs=1.0)
    assert paths.accuracy.share_within == (0.0, 0.0, 0.0, 1.0, 1.0)


def test_report_without_ground_truth_raises_and_writes_nothing(tmp_path):
    rows = [PhotoResult(photo="/p/a.jpg", pred_lat=1.0, pred_lon=2.0)]
    with pytest.raises(ValueError, match="EXIF GPS"):
        write_accuracy_report(rows, tmp_path / "out")
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


# ---------------------------------------------------------------------------------------------- algorithm
PARIS, LONDON = (48.8566, 2.3522), (51.5072, -0.1276)
SYDNEY, NEW_YORK = (-33.8568, 151.2153), (40.7128, -74.0060)

PREDICTION_FIELDS = [("photo", FieldType.STRING), ("photo_name", FieldType.STRING), ("rank", FieldType.INT),
                     ("prob", FieldType.DOUBLE), ("lat", FieldType.DOUBLE), ("lon", FieldType.DOUBLE),
                     ("true_lat", FieldType.DOUBLE), ("true_lon", FieldType.DOUBLE), ("error_km", FieldType.DOUBLE)]


def prediction_rows() -> list[dict]:
    """Rank-1 guesses of 5 photos (4 with GPS) plus rank-2 guesses that must not count."""
    def row(name, rank, pred, truth, error_km=None, prob=0.5):
        return dict(photo=f"/photos/{name}", photo_name=name, rank=rank, prob=prob, lat=pred[0], lon=pred[1],
                    true_lat=truth[0] if truth else None, true_lon=truth[1] if truth else None, error_km=error_km)

    return [
        row("street.jpg", 1, (PARIS[0] + 0.001, PARIS[1]), PARIS),           # ~0.11 km
        row("street.jpg", 2, SYDNEY, PARIS),                                   # rank 2: ignored
        row("city.jpg", 1, (0.0, 0.1), (0.0, 0.0)),                            # ~11.1 km
        row("country.jpg", 1, LONDON, PARIS, error_km=1.0),                    # ~343.9 km; stored value is wrong
        row("far.jpg", 1, NEW_YORK, SYDNEY),                                   # ~16,000 km
        row("far.jpg", 2, SYDNEY, SYDNEY),                                     # rank 2: ignored
        row("nogps.jpg", 1, LONDON, None),                                     # no EXIF GPS
    ]


def expected_errors() -> list[float]:
    pairs = [((PARIS[0] + 0.001, PARIS[1]), PARIS), ((0.0, 0.1), (0.0, 0.0)), (LONDON, PARIS), (NEW_YORK, SYDNEY)]
    return [float(geodesic_km(t[0], t[1], p[0], p[1])) for p, t in pairs]


def write_layer(path: Path, rows: list[dict], fields_spec=PREDICTION_FIELDS, crs: str = "EPSG:4326",
                geometry: str = "point") -> str:
    """A GeoPackage layer on disk; point geometry at (lon, lat) transformed into ``crs``."""
    fields = QgsFields()
    for name, kind in fields_spec:
        fields.append(QgsField(name, kind))
    target = QgsCoordinateReferenceSystem(crs)
    transform = QgsCoordinateTransform(WGS84, target, QgsProject.instance())
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    options.layerName = "predictions"
    wkb = WKB_POINT if geometry == "point" else WKB_POLYGON
    writer = QgsVectorFileWriter.create(str(path), fields, wkb, target, QgsCoordinateTransformContext(), options)
    assert writer.hasError() == QgsVectorFileWriter.WriterError.NoError, writer.errorMessage()
    for row in rows:
        feature = QgsFeature(fields)
        lat, lon = row.get("lat", row.get("plat")), row.get("lon", row.get("plon"))
        if geometry == "point":
            geom = QgsGeometry.fromPointXY(QgsPointXY(lon, lat))
        else:
            geom = QgsGeometry.fromRect(QgsRectangle(lon - 0.1, lat - 0.1, lon + 0.1, lat + 0.1))
        geom.transform(transform)
        feature.setGeometry(geom)
        feature.setAttributes([row.get(name) for name, _ in fields_spec])
        assert writer.addFeature(feature)
    del writer
    return str(path)


class Capture(QgsProcessingFeedback):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def pushInfo(self, info):  # noqa: N802
        self.messages.append(info)
        super().pushInfo(info)

    def pushWarning(self, warning):  # noqa: N802
        self.messages.append(warning)
        super().pushWarning(warning)

    def reportError(self, error, fatalError=False):  # noqa: N802, N803
        self.messages.append(error)
        super().reportError(error, fatalError)


def evaluate(params: dict, feedback: QgsProcessingFeedback | None = None) -> dict:
    import processing

    return processing.run("geoclip:evaluategeolocation", params, feedback=feedback)


def check_numbers(out: dict) -> None:
    errors = sorted(expected_errors())
    assert out["N"] == 4 and out["N_WITHOUT_TRUTH"] == 1
    assert [out[k] for k in ("SHARE_1KM", "SHARE_25KM", "SHARE_200KM", "SHARE_750KM", "SHARE_2500KM")] == [
        0.25, 0.5, 0.5, 0.75, 0.75]
    assert out["MEDIAN_KM"] == pytest.approx((errors[1] + errors[2]) / 2, rel=1e-9)
    assert out["MEDIAN_KM"] == pytest.approx((11.13 + 343.9) / 2, abs=1.0)
    assert out["MEAN_KM"] == pytest.approx(sum(errors) / 4, rel=1e-9)


def test_evaluate_predictions_layer(geoclip_provider, tmp_path, artifacts_dir):
    layer = write_layer(tmp_path / "predictions.gpkg", prediction_rows())
    feedback = Capture()
    out = evaluate({"INPUT": layer, "OUTPUT_FOLDER": str(tmp_path / "report")}, feedback)
    check_numbers(out)
    html, table = Path(out["OUTPUT_HTML"]), Path(out["OUTPUT_CSV"])
    assert html == tmp_path / "report" / "accuracy.html" and table.name == "accuracy.csv"
    assert Path(out["OUTPUT_PER_PHOTO_CSV"]).name == "per_photo.csv"
    shutil.copy(html, artifacts_dir / "accuracy_report_evaluate.html")
    rows = read_csv(table)
    assert [float(r["share"]) for r in rows[:5]] == [0.25, 0.5, 0.5, 0.75, 0.75]
    photos = {p["photo_name"]: p for p in read_csv(Path(out["OUTPUT_PER_PHOTO_CSV"]))}
    assert set(photos) == {"street.jpg", "city.jpg", "country.jpg", "far.jpg", "nogps.jpg"}
    # error_km was recomputed (the stored 1.0 km was wrong), and said so.
    assert float(photos["country.jpg"]["error_km"]) == pytest.approx(343.9, abs=1.0)
    assert photos["nogps.jpg"]["error_km"] == ""
    assert any("recomputed" in m for m in feedback.messages)
    assert any("2 feature(s) with rank" in m for m in feedback.messages)
    parsed = parse_html(html)
    assert "svg" in parsed.tags and "nogps.jpg" in parsed.cells

    # A second run writes next to the first, never over it.
    again = evaluate({"INPUT": layer, "OUTPUT_FOLDER": str(tmp_path / "report")})
    assert Path(again["OUTPUT_HTML"]).name == "accuracy_2.html"
    assert html.exists()


def test_evaluate_in_web_mercator_gives_the_same_numbers(geoclip_provider, tmp_path):
    layer = write_layer(tmp_path / "predictions_3857.gpkg", prediction_rows(), crs="EPSG:3857")
    out = evaluate({"INPUT": layer, "OUTPUT_FOLDER": str(tmp_path / "report")})
    check_numbers(out)
    photos = {p["photo_name"]: p for p in read_csv(Path(out["OUTPUT_PER_PHOTO_CSV"]))}
    assert float(photos["city.jpg"]["pred_lon"]) == pytest.approx(0.1, abs=1e-6)


def test_evaluate_any_point_layer_with_chosen_truth_fields(geoclip_provider, tmp_path):
    spec = [("label", FieldType.STRING), ("gt_lat", FieldType.STRING), ("gt_lon", FieldType.DOUBLE)]
    rows = [dict(label="paris", plat=LONDON[0], plon=LONDON[1], gt_lat=str(PARIS[0]), gt_lon=PARIS[1]),
            dict(label="zero", plat=0.0, plon=0.1, gt_lat="0", gt_lon=0.0),
            dict(label="unknown", plat=10.0, plon=10.0, gt_lat=None, gt_lon=None)]
    layer = write_layer(tmp_path / "generic.gpkg", rows, fields_spec=spec)
    out = evaluate({"INPUT": layer, "TRUE_LAT_FIELD": "gt_lat", "TRUE_LON_FIELD": "gt_lon",
                    "OUTPUT_FOLDER": str(tmp_path / "report")})
    assert out["N"] == 2 and out["N_WITHOUT_TRUTH"] == 1
    assert (out["SHARE_1KM"], out["SHARE_25KM"], out["SHARE_750KM"]) == (0.0, 0.5, 1.0)
    assert out["MEDIAN_KM"] == pytest.approx((343.9 + 11.13) / 2, abs=1.0)


def test_evaluate_without_ground_truth_fails_clearly(geoclip_provider, tmp_path):
    rows = [r | {"true_lat": None, "true_lon": None, "error_km": None} for r in prediction_rows()]
    layer = write_layer(tmp_path / "nogps.gpkg", rows)
    with pytest.raises(QgsProcessingException) as info:
        evaluate({"INPUT": layer, "OUTPUT_FOLDER": str(tmp_path / "report")})
    message = str(info.value)
    assert "None of the 5 photo(s)" in message and "nothing to evaluate" in message
    assert not list((tmp_path / "report").glob("*.html"))


def test_evaluate_missing_fields_are_named(geoclip_provider, tmp_path):
    spec = [("photo", FieldType.STRING), ("rank", FieldType.INT)]
    layer = write_layer(tmp_path / "bare.gpkg", [dict(photo="/p/a.jpg", rank=1, lat=1.0, lon=2.0)], fields_spec=spec)
    with pytest.raises(QgsProcessingException) as info:
        evaluate({"INPUT": layer, "OUTPUT_FOLDER": str(tmp_path / "report")})
    message = str(info.value)
    assert "'true_lat'" in message and "'true_lon'" in message and "photo, rank" in message
    with pytest.raises(QgsProcessingException, match="'gps_lat'"):
        evaluate({"INPUT": layer, "TRUE_LAT_FIELD": "gps_lat", "TRUE_LON_FIELD": "rank",
                  "OUTPUT_FOLDER": str(tmp_path / "report")})


def test_evaluate_rejects_non_point_layers(geoclip_provider, tmp_path):
    layer = write_layer(tmp_path / "polygons.gpkg", prediction_rows(), geometry="polygon")
    with pytest.raises(QgsProcessingException, match="not a point layer .*Polygon"):
        evaluate({"INPUT": layer, "OUTPUT_FOLDER": str(tmp_path / "report")})

