"""A float32 GeoTIFF in EPSG:4326 written with Pillow alone.

Why not GDAL: the Ray batch job writes its archive density raster on a cluster's head node,
where GDAL's Python bindings are rarely installed; Pillow is already a dependency. The file is
a plain strip TIFF with the three GeoTIFF tags GDAL, QGIS and rasterio read (pixel scale, tie
point, GeoKey directory: geographic, pixel-is-area, EPSG:4326) and GDAL's nodata tag. The
plugin's own rasters keep GDAL's tiled, compressed writer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..safe_files import atomic_path

_PIXEL_SCALE, _TIEPOINT, _GEOKEYS, _GDAL_METADATA, _GDAL_NODATA = 33550, 33922, 34735, 42112, 42113
# GeoKey directory: version 1.1.0 with 3 keys: GTModelType = geographic (2), GTRasterType =
# pixel is area (1), GeographicType = EPSG:4326.
_GEOKEY_DIRECTORY = (1, 1, 0, 3, 1024, 0, 1, 2, 1025, 0, 1, 1, 2048, 0, 1, 4326)


def write_wgs84_geotiff(values: np.ndarray, geotransform: tuple[float, ...], path: Path,
                        nodata: float | None = None, description: str = "") -> Path:
    """(rows, cols) values, row 0 north, ``geotransform`` as GDAL's (x0, dx, 0, y0, 0, -dy); atomic."""
    from PIL import Image, TiffImagePlugin, TiffTags

    values = np.ascontiguousarray(values, dtype=np.float32)
    if values.ndim != 2 or not values.size:
        raise ValueError(f"a raster needs a non-empty 2-D array, got shape {values.shape}")
    x0, dx, rot_x, y0, rot_y, dy = (float(v) for v in geotransform)
    if rot_x or rot_y or dx <= 0 or dy >= 0:
        raise ValueError(f"only north-up rasters without rotation are written, got geotransform {geotransform}")
    tags = TiffImagePlugin.ImageFileDirectory_v2()
    for tag, kind, value in ((_PIXEL_SCALE, TiffTags.DOUBLE, (dx, -dy, 0.0)),
                             (_TIEPOINT, TiffTags.DOUBLE, (0.0, 0.0, 0.0, x0, y0, 0.0)),
                             (_GEOKEYS, TiffTags.SHORT, _GEOKEY_DIRECTORY)):
        tags[tag] = value
        tags.tagtype[tag] = kind
    if nodata is not None:
        tags[_GDAL_NODATA] = repr(float(nodata))
        tags.tagtype[_GDAL_NODATA] = TiffTags.ASCII
    if description:
        tags[_GDAL_METADATA] = ('<GDALMetadata><Item name="DESCRIPTION" sample="0" role="description">'
                                f"{_xml_text(description)}</Item></GDALMetadata>")
        tags.tagtype[_GDAL_METADATA] = TiffTags.ASCII
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(values, mode="F").save(tmp, format="TIFF", tiffinfo=tags)
    return path


def _xml_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
