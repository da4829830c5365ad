"""Styling a similarity raster that lacks the stored style range (written before the algorithm stored it):
the range comes from a bounded sample of cells, not a full read on the GUI thread."""

from __future__ import annotations

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsRasterDataProvider, QgsRasterLayer

from geoclip_qgis.layers import SIMILARITY_SAMPLE_CELLS, SIMILARITY_STYLE_FROM, style_similarity_raster


def _geotiff(path, values: np.ndarray) -> str:
    rows, cols = values.shape
    ds = gdal.GetDriverByName("GTiff").Create(str(path), cols, rows, 1, gdal.GDT_Float32,
                                              options=["TILED=YES", "COMPRESS=DEFLATE"])
    ds.SetGeoTransform((-180.0, 360.0 / cols, 0.0, 90.0, 0.0, -180.0 / rows))
    ds.SetProjection("EPSG:4326")
    ds.GetRasterBand(1).WriteArray(values)
    ds = None
    return str(path)


def test_a_raster_without_the_stored_range_is_styled_from_a_bounded_sample(qgis_app, tmp_path,  # noqa: ARG001
                                                                           monkeypatch):
    rows, cols = 1200, 2400  # 2.9 M cells: more than ten times the sample
    lat = np.linspace(-1.0, 1.0, rows, dtype=np.float32)[:, None]
    values = np.broadcast_to(0.8 - 0.9 * np.abs(lat), (rows, cols)).astype(np.float32)  # smooth, top 0.8
    path = _geotiff(tmp_path / "old_similarity.tif", values)
    ds = gdal.Open(path)
    assert ds.GetMetadataItem(SIMILARITY_STYLE_FROM) is None  # the fallback path, not the stored range
    ds = None

    asked = []
    original = QgsRasterDataProvider.bandStatistics

    def spy(provider, *args):
        asked.append(args[3] if len(args) > 3 else 0)  # (band, stats, extent, sample size); 0: every cell
        return original(provider, *args)

    monkeypatch.setattr(QgsRasterDataProvider, "bandStatistics", spy)
    layer = QgsRasterLayer(path, "old", "gdal")
    assert layer.isValid()
    style_similarity_raster(layer)

    assert asked and all(0 < n <= SIMILARITY_SAMPLE_CELLS < values.size for n in asked), asked
    fcn = layer.renderer().shader().rasterShaderFunction()
    top = float(values.max())
    assert fcn.maximumValue() == pytest.approx(top, abs=0.01)  # a sample of a smooth raster finds its top
    assert fcn.minimumValue() == pytest.approx(fcn.maximumValue() / 2)
    assert fcn.clip() and fcn.legendSettings().maximumLabel() == f"{fcn.maximumValue():.3g}"
