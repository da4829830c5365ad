"""Credible-region coverage in ``geoclip:evaluategeolocation``: given true positions against each photo's
50% / 90% regions, from the run's credible_regions layer beside the predictions or a chosen polygon layer."""

from __future__ import annotations

import math
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
    QgsProcessingException,
    QgsProject,
    QgsRectangle,
    QgsVectorFileWriter,
)

from geoclip_qgis.compat import FieldType
from tests.test_evaluate import (
    LONDON,
    PARIS,
    WGS84,
    Capture,
    check_numbers,
    evaluate,
    parse_html,
    prediction_rows,
    read_csv,
    write_layer,
)


def box(lon0: float, lat0: float, lon1: float, lat1: float) -> QgsGeometry:
    return QgsGeometry.fromRect(QgsRectangle(lon0, lat0, lon1, lat1))


def write_regions(path: Path, rows: list[tuple], key: str = "photo", crs: str = "EPSG:4326",
                  with_area: bool = True) -> str:
    """A credible_regions layer (beside the predictions when ``path`` is their GeoPackage): per row
    (photo, level, area_km2, geometry in WGS84)."""
    from geoclip_qgis.compat import WKB_MULTIPOLYGON

    spec = [(key, FieldType.STRING), ("level", FieldType.DOUBLE)] + ([("area_km2", FieldType.DOUBLE)] * with_area)
    fields = QgsFields()
    for name, kind in spec:
        fields.append(QgsField(name, kind))
    target = QgsCoordinateReferenceSystem(crs)
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    options.layerName = "credible_regions"
    if path.exists():  # a layer beside the predictions
        options.actionOnExistingFile = QgsVectorFileWriter.ActionOnExistingFile.CreateOrOverwriteLayer
    writer = QgsVectorFileWriter.create(str(path), fields, WKB_MULTIPOLYGON, target, QgsCoordinateTransformContext(),
                                        options)
    assert writer.hasError() == QgsVectorFileWriter.WriterError.NoError, writer.errorMessage()
    for photo, level, area, geometry in rows:
        geometry = QgsGeometry(geometry)
        geometry.convertToMultiType()
        geometry.transform(QgsCoordinateTransform(WGS84, target, QgsProject.instance()))
        feature = QgsFeature(fields)
        feature.setGeometry(geometry)
        feature.setAttributes([photo, level, area][:len(spec)])
        assert writer.addFeature(feature)
    del writer
    return f"{path}|layername=credible_regions"


def run_regions() -> list[tuple]:
    """Per photo of prediction_rows: 50% and 90% regions around (or away from) its true position."""
    def both_edges(lat0: float, lat1: float, lon0: float, lon1: float) -> QgsGeometry:  # across the antimeridian
        return QgsGeometry.unaryUnion([box(lon0, lat0, 180.0, lat1), box(-180.0, lat0, lon1, lat1)])

    return [
        ("/photos/street.jpg", 0.5, 10.0, box(2.0, 48.0, 3.0, 49.0)),          # Paris inside
        ("/photos/street.jpg", 0.9, 100.0, box(0.0, 46.0, 5.0, 51.0)),         # inside
        ("/photos/city.jpg", 0.5, 20.0, box(0.05, 0.05, 0.2, 0.2)),            # truth (0, 0) on no edge: outside
        ("/photos/city.jpg", 0.9, 200.0, box(0.0, 0.0, 0.2, 0.2)),             # truth on the corner: inside
        ("/photos/country.jpg", 0.5, 30.0, box(-1.0, 51.0, 1.0, 52.0)),        # around London: Paris outside
        ("/photos/country.jpg", 0.9, 300.0, box(-2.0, 50.0, 2.0, 53.0)),       # outside
        ("/photos/far.jpg", 0.5, 40.0, both_edges(-40.0, -30.0, 175.0, -175.0)),  # Sydney (151 E) outside
        ("/photos/far.jpg", 0.9, 400.0, both_edges(-40.0, -30.0, 150.0, -170.0)),  # inside the western part
        ("/photos/nogps.jpg", 0.9, 500.0, box(-1.0, 51.0, 1.0, 52.0)),         # no truth: not counted
    ]


def test_evaluate_reports_coverage_of_the_runs_credible_regions(geoclip_provider, tmp_path):
    """The predictions' GeoPackage holds a credible_regions layer: coverage is reported without asking."""
    gpkg = tmp_path / "predictions.gpkg"
    layer = write_layer(gpkg, prediction_rows())
    write_regions(gpkg, run_regions())
    feedback = Capture()
    out = evaluate({"INPUT": layer, "OUTPUT_FOLDER": str(tmp_path / "report")}, feedback)
    check_numbers(out)  # the accuracy figures are unchanged
    photos = {p["photo_name"]: p for p in read_csv(Path(out["OUTPUT_PER_PHOTO_CSV"]))}
    inside = {name: (p["truth_inside_50"], p["truth_inside_90"]) for name, p in photos.items()}
    assert inside == {"street.jpg": ("1", "1"), "city.jpg": ("0", "1"), "country.jpg": ("0", "0"),
                      "far.jpg": ("0", "1"), "nogps.jpg": ("", "")}
    assert photos["far.jpg"]["region_km2_90"] == "400"
    parsed = parse_html(Path(out["OUTPUT_HTML"]))
    assert "Credible regions" in parsed.text
    cells = parsed.cells
    fifty, ninety = cells.index("50%"), cells.index("90%")
    assert cells[fifty:fifty + 4] == ["50%", "25.0%", "1 of 4", "25 km²"]  # median of 10, 20, 30, 40
    assert cells[ninety:ninety + 4] == ["90%", "75.0%", "3 of 4", "250 km²"]  # median of 100, 200, 300, 400
    assert any("50% credible region: truth inside for 1 of 4 photo(s) (25%), median area 25 km²" in m
               for m in feedback.messages)


def test_evaluate_given_coordinates_against_a_chosen_regions_layer(geoclip_provider, tmp_path):
    """Any point layer with the true position in two fields, and regions from another file in another CRS
    without an area field: the truths are tested in the regions' CRS and the areas measured on the ellipsoid."""
    spec = [("name", FieldType.STRING), ("gt_lat", FieldType.DOUBLE), ("gt_lon", FieldType.DOUBLE)]
    points = [dict(name="paris", plat=LONDON[0], plon=LONDON[1], gt_lat=PARIS[0], gt_lon=PARIS[1]),
              dict(name="dateline", plat=-17.0, plon=178.0, gt_lat=-16.5, gt_lon=181.0)]  # 0..360 longitude
    layer = write_layer(tmp_path / "given.gpkg", points, fields_spec=spec)
    regions = write_regions(tmp_path / "regions.gpkg", [
        ("paris", 0.9, None, box(2.0, 48.0, 3.0, 49.0)),
        ("dateline", 0.9, None, QgsGeometry.unaryUnion([box(175.0, -20.0, 180.0, -15.0),
                                                       box(-180.0, -20.0, -178.0, -15.0)])),
    ], key="name", crs="EPSG:3832", with_area=False)
    out = evaluate({"INPUT": layer, "TRUE_LAT_FIELD": "gt_lat", "TRUE_LON_FIELD": "gt_lon", "REGIONS": regions,
                    "OUTPUT_FOLDER": str(tmp_path / "report")})
    photos = {p["photo_name"]: p for p in read_csv(Path(out["OUTPUT_PER_PHOTO_CSV"]))}
    assert photos["paris"]["truth_inside_90"] == "1" and photos["dateline"]["truth_inside_90"] == "1"
    one_degree_box = 111.2 * 111.2 * math.cos(math.radians(48.5))  # km², about 8,190
    assert float(photos["paris"]["region_km2_90"]) == pytest.approx(one_degree_box, rel=0.01)


def test_evaluate_refuses_a_regions_layer_without_levels(geoclip_provider, tmp_path):
    layer = write_layer(tmp_path / "predictions.gpkg", prediction_rows())
    with pytest.raises(QgsProcessingException, match="needs a 'level' field"):
        evaluate({"INPUT": layer, "REGIONS": write_layer(tmp_path / "poly.gpkg", prediction_rows(),
                                                         geometry="polygon"),
                  "OUTPUT_FOLDER": str(tmp_path / "report")})
    with pytest.raises(QgsProcessingException, match="not a polygon layer"):
        evaluate({"INPUT": layer, "REGIONS": layer, "OUTPUT_FOLDER": str(tmp_path / "report")})
