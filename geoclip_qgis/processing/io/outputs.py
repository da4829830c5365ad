"""Write outputs the safe way: to a temp file beside the target, then rename; never overwrite silently."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from qgis.core import QgsProcessingException

from model_utils.safe_files import atomic_path


def ensure_writable_folder(folder: str | Path) -> Path:
    """Create ``folder`` if needed and prove it is writable, or raise a message naming it."""
    path = Path(folder).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".geoclip-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise QgsProcessingException(
            f"Output folder {path} is not writable ({exc.strerror or exc}). Choose another folder.") from exc
    return path


def refuse_existing(path: Path) -> None:
    """Raise unless ``path`` is free or a Processing temporary output (those are ours to replace)."""
    from qgis.core import QgsProcessingUtils

    if path.exists() and not str(path.resolve()).startswith(str(Path(QgsProcessingUtils.tempFolder()).resolve())):
        raise QgsProcessingException(
            f"{path} already exists and is not overwritten. Choose another file name, or delete the old file first.")


@contextlib.contextmanager
def gdal_raising() -> Iterator[None]:
    """GDAL raises Python exceptions inside the block; the interpreter's mode (shared with QGIS and every
    other plugin) is what it was afterwards."""
    from osgeo import gdal

    if hasattr(gdal, "ExceptionMgr"):  # GDAL >= 3.7
        with gdal.ExceptionMgr(useExceptions=True):
            yield
        return
    was = gdal.GetUseExceptions()
    gdal.UseExceptions()
    try:
        yield
    finally:
        if not was:
            gdal.DontUseExceptions()


def write_geotiff(values: np.ndarray, geotransform, path: Path, nodata: float | None = None,
                  description: str = "", metadata: dict[str, str] | None = None) -> Path:
    """Float32 GeoTIFF in EPSG:4326, DEFLATE-compressed and tiled, written atomically."""
    try:
        with atomic_path(path) as tmp, gdal_raising():
            _write_tiff(values, geotransform, tmp, nodata, description, metadata)
    except Exception as exc:
        raise QgsProcessingException(f"Could not write raster {path}: {exc}") from exc
    return path


def _write_tiff(values: np.ndarray, geotransform, path: Path, nodata: float | None, description: str,
                metadata: dict[str, str] | None) -> None:
    from osgeo import gdal, osr

    rows, cols = values.shape
    ds = gdal.GetDriverByName("GTiff").Create(
        str(path), cols, rows, 1, gdal.GDT_Float32,
        options=["COMPRESS=DEFLATE", "PREDICTOR=3", "TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256",
                 "BIGTIFF=IF_SAFER"])
    ds.SetGeoTransform(tuple(float(v) for v in geotransform))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(4326)
    ds.SetProjection(srs.ExportToWkt())
    band = ds.GetRasterBand(1)
    band.WriteArray(values.astype(np.float32, copy=False))
    if nodata is not None:
        band.SetNoDataValue(nodata)
    if description:
        band.SetDescription(description)
    if metadata:
        ds.SetMetadata({k: str(v) for k, v in metadata.items()})
    band.FlushCache()
    ds = None  # close: GDAL writes on dereference
