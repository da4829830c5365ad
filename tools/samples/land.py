"""Which raster cells are land: QGIS's bundled Natural Earth countries, rasterised at cell centres.
Used to measure where a map's probability mass lies (tests and benchmarks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# 20 query places on five continents (lat, lon): "places like here" is measured from each
PROBE_PLACES: dict[str, list[tuple[str, float, float]]] = {
    "Europe": [("Paris", 48.857, 2.352), ("Rome", 41.903, 12.496), ("Berlin", 52.520, 13.405),
               ("Madrid", 40.417, -3.704)],
    "Asia": [("Tokyo", 35.676, 139.650), ("Delhi", 28.614, 77.209), ("Beijing", 39.904, 116.407),
             ("Bangkok", 13.756, 100.502)],
    "Africa": [("Nairobi", -1.292, 36.822), ("Cairo", 30.044, 31.236), ("Lagos", 6.524, 3.379),
               ("Cape Town", -33.925, 18.424)],
    "North America": [("New York", 40.713, -74.006), ("Mexico City", 19.433, -99.133),
                      ("Chicago", 41.878, -87.630), ("Vancouver", 49.283, -123.121)],
    "South America": [("Sao Paulo", -23.551, -46.633), ("Buenos Aires", -34.604, -58.382),
                      ("Lima", -12.046, -77.043), ("Bogota", 4.711, -74.072)],
}


def world_map_gpkg() -> Path:
    """QGIS's bundled world map (Natural Earth countries)."""
    from qgis.core import QgsApplication

    bundled = Path(QgsApplication.pkgDataPath()) / "resources" / "data" / "world_map.gpkg"
    return bundled if bundled.is_file() else Path("/usr/share/qgis/resources/data/world_map.gpkg")


def land_mask(spec, gpkg: Path | None = None) -> np.ndarray:
    """(height, width) bool: land touches the cell (a country of the world map). Touching, not the centre: at
    1 degree the cell of a coastal city (Shanghai, Lagos) is centred at sea but holds the city."""
    from osgeo import gdal

    ds = gdal.Rasterize("", str(gpkg or world_map_gpkg()), format="MEM", layers=["countries"], burnValues=[1],
                        allTouched=True,
                        outputBounds=(spec.xmin, spec.ymin, spec.xmax, spec.ymax), width=spec.width,
                        height=spec.height, outputType=gdal.GDT_Byte, outputSRS="EPSG:4326")
    mask = ds.GetRasterBand(1).ReadAsArray().astype(bool)
    ds = None
    return mask
