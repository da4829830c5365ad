"""Shared helpers for the GPS-embedding export tests: layers in, features and values out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from qgis.core import (
    QgsFeature,
    QgsField,
    QgsGeometry,
    QgsPointXY,
    QgsProcessingFeedback,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import Qt

from geoclip_qgis.compat import FieldType

ALG = "geoclip:gpsembeddings"
FMT = {"gpkg": 0, "shp": 1, "csv": 2, "npz": 3, "parquet": 4}
E_NAMES = [f"e{i:03d}" for i in range(512)]


class LogFeedback(QgsProcessingFeedback):
    """Keeps every message, so tests can assert on the log."""

    def __init__(self, cancel_after_progress: bool = False) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.cancel_after_progress = cancel_after_progress
        # on the signal, in the thread that reports progress: QGIS's own feedback classes (a multi-step
        # feedback) call setProgress from C++, which a Python override would not see
        self.progressChanged.connect(self._on_progress, Qt.ConnectionType.DirectConnection)

    def pushInfo(self, info):  # noqa: N802
        self.lines.append(info)
        super().pushInfo(info)

    def reportError(self, error, fatalError=False):  # noqa: N802, N803
        self.lines.append(error)
        super().reportError(error, fatalError)

    def pushWarning(self, warning):  # noqa: N802
        self.lines.append(warning)
        super().pushWarning(warning)

    def _on_progress(self, progress: float) -> None:
        if self.cancel_after_progress and 0 < progress < 100:
            self.cancel()  # the first batch is written: stop before the next

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def run(params: dict, feedback: QgsProcessingFeedback | None = None) -> dict:
    import processing

    return processing.run(ALG, params, feedback=feedback or LogFeedback())


def memory_layer(geometry: str = "Point", crs: str = "EPSG:4326", fields: list[QgsField] | None = None,
                 name: str = "input") -> QgsVectorLayer:
    uri = geometry if geometry == "None" else f"{geometry}?crs={crs}"
    layer = QgsVectorLayer(uri, name, "memory")
    assert layer.isValid()
    fields = fields if fields is not None else [QgsField("name", FieldType.STRING), QgsField("value", FieldType.INT)]
    layer.dataProvider().addAttributes(fields)
    layer.updateFields()
    return layer


def add_features(layer: QgsVectorLayer, geometries: list, attributes: list[list] | None = None) -> list[int]:
    feats = []
    for i, geom in enumerate(geometries):
        f = QgsFeature(layer.fields())
        if geom is not None:
            f.setGeometry(geom if isinstance(geom, QgsGeometry) else QgsGeometry.fromWkt(geom))
        f.setAttributes(attributes[i] if attributes is not None else [f"p{i}", i])
        feats.append(f)
    ok, added = layer.dataProvider().addFeatures(feats)
    assert ok
    return [f.id() for f in added]


def random_latlon(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.c_[rng.uniform(-89, 89, n), rng.uniform(-179.9, 179.9, n)]


def point_layer(latlon: np.ndarray, crs: str = "EPSG:4326") -> QgsVectorLayer:
    layer = memory_layer(crs=crs)
    add_features(layer, [QgsGeometry.fromPointXY(QgsPointXY(lon, lat)) for lat, lon in latlon.tolist()])
    return layer


def read_layer(path: str) -> tuple[list[str], dict[int, QgsFeature]]:
    """Field names and {src_fid: feature}, in the order the export wrote the features."""
    layer = QgsVectorLayer(path, "out", "ogr")
    assert layer.isValid(), path
    by_fid = {int(f["src_fid"]): f for f in layer.getFeatures()}
    names = layer.fields().names()
    return names, by_fid


def expected_values(model, features: list[QgsFeature], normalize: bool = False) -> np.ndarray:
    """``encode_locations`` of the features' lat/lon, called as the export calls it."""
    return model.encode_locations(values_of(features, ["lat", "lon"]), normalize=normalize, batch_size=4096)


def values_of(features: list[QgsFeature], names: list[str]) -> np.ndarray:
    return np.array([[f[n] for n in names] for f in features], dtype=np.float64)


def folder_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())
