"""Which raster cells are land: QGIS's bundled Natural Earth countries, rasterised (touching, or at cell
centres with GSHHG's lakes taken out). Used to measure where a map's probability mass lies (tests and
benchmarks); the land-aware kernel itself uses GSHHG's mask (model_utils.maps.land), so the sea coasts here
are measured against an independent coastline."""

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


# coastal and lake-shore cities on six continents (lat, lon, "sea" or "lake"): the land-aware kernel's target
COASTAL_PLACES: dict[str, list[tuple[str, float, float, str]]] = {
    "Europe": [("Lisbon", 38.72, -9.14, "sea"), ("Marseille", 43.30, 5.37, "sea"), ("Naples", 40.85, 14.27, "sea"),
               ("Istanbul", 41.01, 28.98, "sea"), ("Geneva", 46.20, 6.14, "lake")],
    "Asia": [("Mumbai", 19.08, 72.88, "sea"), ("Hong Kong", 22.32, 114.17, "sea"), ("Tokyo", 35.68, 139.65, "sea")],
    "Africa": [("Cape Town", -33.93, 18.42, "sea"), ("Lagos", 6.52, 3.38, "sea"), ("Dakar", 14.72, -17.47, "sea"),
               ("Kampala", 0.35, 32.58, "lake")],
    "North America": [("Vancouver", 49.28, -123.12, "sea"), ("San Francisco", 37.77, -122.42, "sea"),
                      ("Boston", 42.36, -71.06, "sea"), ("Honolulu", 21.31, -157.86, "sea"),
                      ("Chicago", 41.88, -87.63, "lake"), ("Toronto", 43.65, -79.38, "lake")],
    "South America": [("Rio de Janeiro", -22.91, -43.17, "sea"), ("Valparaiso", -33.05, -71.62, "sea")],
    "Oceania": [("Sydney", -33.87, 151.21, "sea"), ("Auckland", -36.85, 174.76, "sea")],
}


def weight_on_land(values: np.ndarray, land: np.ndarray) -> float:
    """The share of a raster's weight above its median (of the cells that hold any) lying on ``land`` cells:
    the faint far tail, half the cells, does not count."""
    values = np.asarray(values, dtype=np.float64)
    above = values > np.median(values[values > 0])
    return float(values[above & land].sum() / values[above].sum())


def centre_land(spec, gpkg: Path | None = None) -> np.ndarray:
    """(height, width) bool: the cell's centre is on land, a country of QGIS's Natural Earth world map and not
    in a lake (GSHHG's lakes: Natural Earth's countries cover them)."""
    from osgeo import gdal

    from model_utils.maps.land import read_mask_codes

    ds = gdal.Rasterize("", str(gpkg or world_map_gpkg()), format="MEM", layers=["countries"], burnValues=[1],
                        outputBounds=(spec.xmin, spec.ymin, spec.xmax, spec.ymax), width=spec.width,
                        height=spec.height, outputType=gdal.GDT_Byte, outputSRS="EPSG:4326")
    countries = ds.GetRasterBand(1).ReadAsArray().astype(bool)
    ds = None
    codes = read_mask_codes(1.25)
    pixel = 1.25 / 60
    rows = np.minimum(((90.0 - spec.lat_centers) / pixel).astype(int), codes.shape[0] - 1)
    cols = np.minimum(((spec.lon_centers + 180.0) / pixel).astype(int), codes.shape[1] - 1)
    return countries & (codes[np.ix_(rows, cols)] != 2)


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
