"""A geolocation run read back from its folder: per photo (or text query) its best guess, probability, credible
region and error, and which raster file is its own.

The run's ``predictions.gpkg`` is the index: the results browser builds its list from it, so a project saved
today and reopened tomorrow (or a run written by ``qgis_process``) lists the same photos as the run that just
ended. Read with SQLite (a GeoPackage is one), no layer is opened: 1,000 photos are read in milliseconds.
"""

from __future__ import annotations

import sqlite3
import struct
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from .processing.io import run_layout as layout

PREFERRED_LEVEL = 0.9  # the credible level the browser shows (area, zoom) when the run has it
LEVEL_TOLERANCE = 1e-9  # levels are written and read back as doubles


@dataclass(frozen=True)
class PhotoRow:
    """One photo or query of a run, as the browser lists it."""

    source: str  # the photo's path, or the query's text
    name: str  # the photo's file name, or the query's short label
    lat: float  # top-1 guess
    lon: float
    prob: float
    error_km: float | None  # top-1 error, with EXIF GPS
    area_km2: float | None  # the area of its region at ``RunIndex.level``
    bbox: tuple[float, float, float, float] | None  # that region's xmin, ymin, xmax, ymax (degrees)
    raster: str | None  # its probability raster (absolute path), if the run wrote rasters


@dataclass(frozen=True)
class RunIndex:
    """What the browser needs of one run folder."""

    folder: Path
    source_field: str  # "photo" or "query": the field naming each row in every layer of the run
    rows: tuple[PhotoRow, ...]
    level: float | None  # the credible level of the rows' area and bbox (None: the run has no regions)
    layers: frozenset[str]  # the GeoPackage's layers

    @property
    def points(self) -> Path:
        return self.folder / layout.PREDICTIONS_FILE

    @property
    def photos(self) -> bool:
        return self.source_field == "photo"

    def layer_name(self, row: PhotoRow) -> str:
        """The raster layer's name while it shows ``row``, as the run names its first raster: the photo's file
        name without extension, or the query's label."""
        return Path(row.source).stem if self.photos else row.name.rstrip("…")


def is_run_folder(folder: str | Path) -> bool:
    """Whether ``folder`` holds a geolocation run (photos or text queries)."""
    return (Path(folder) / layout.PREDICTIONS_FILE).is_file()


class RunFolderError(ValueError):
    """A folder that is not (or no longer) a readable geolocation run; the message says which and why."""


def read_run(folder: str | Path) -> RunIndex:
    """The run in ``folder``; :class:`RunFolderError` if it holds no readable ``predictions.gpkg``."""
    folder = Path(folder)
    gpkg = folder / layout.PREDICTIONS_FILE
    if not gpkg.is_file():
        raise RunFolderError(f"{folder} is not a GeoCLIP run folder: it has no {layout.PREDICTIONS_FILE}. Pick the "
                             "folder a geolocation run wrote (geoclip_YYYYMMDD_HHMMSS).")
    try:
        with closing(sqlite3.connect(f"{gpkg.resolve().as_uri()}?mode=ro", uri=True)) as db:
            return _read(db, folder)
    except sqlite3.Error as exc:
        raise RunFolderError(f"{gpkg} could not be read ({exc}); is it a GeoPackage written by GeoCLIP?") from exc


# The SQL is written out for both kinds of run (photos, queries): the table and column names are the run layout's
# (processing/io/run_layout.py), and no query is built from strings.
TOPS = "SELECT * FROM predictions WHERE rank = 1 ORDER BY fid"
LEVELS = "SELECT DISTINCT level FROM credible_regions"
RTREE = "rtree_credible_regions_geom"
REGION_BOXES = {  # the spatial index holds each region's bounding box: no geometry is read
    "photo": "SELECT r.photo, r.area_km2, t.minx, t.miny, t.maxx, t.maxy FROM credible_regions r "
             "LEFT JOIN rtree_credible_regions_geom t ON t.id = r.fid WHERE abs(r.level - ?) < ?",
    "query": "SELECT r.query, r.area_km2, t.minx, t.miny, t.maxx, t.maxy FROM credible_regions r "
             "LEFT JOIN rtree_credible_regions_geom t ON t.id = r.fid WHERE abs(r.level - ?) < ?"}
REGION_HEADERS = {  # without one: the envelope in each geometry's header (8 bytes, then 4 doubles)
    "photo": "SELECT photo, area_km2, substr(geom, 1, 40) FROM credible_regions WHERE abs(level - ?) < ?",
    "query": "SELECT query, area_km2, substr(geom, 1, 40) FROM credible_regions WHERE abs(level - ?) < ?"}
RASTER_FILES = "SELECT * FROM rasters"


def _read(db: sqlite3.Connection, folder: Path) -> RunIndex:
    layers = frozenset(name for (name,) in db.execute("SELECT table_name FROM gpkg_contents"))
    if layout.LAYER_PREDICTIONS not in layers:
        raise RunFolderError(f"{folder / layout.PREDICTIONS_FILE} has no '{layout.LAYER_PREDICTIONS}' layer")
    db.row_factory = sqlite3.Row
    tops = db.execute(TOPS).fetchall()
    source, name = ("photo", "photo_name") if tops and "photo" in tops[0].keys() else ("query", "label")
    db.row_factory = None
    level, regions = _regions(db, layers, source)
    rasters = _rasters(db, layers, source, folder)
    rows = tuple(
        PhotoRow(source=top[source], name=top[name] or top[source], lat=top["lat"], lon=top["lon"], prob=top["prob"],
                 error_km=top["error_km"], area_km2=regions.get(top[source], (None, None))[0],
                 bbox=regions.get(top[source], (None, None))[1], raster=rasters.get(top[source]))
        for top in tops)
    return RunIndex(folder=folder, source_field=source, rows=rows, level=level, layers=layers)


def _regions(db: sqlite3.Connection, layers: frozenset[str], source: str) -> tuple[float | None, dict]:
    """The level shown (90% when the run has it, else its widest) and per row that region's area and bbox."""
    if layout.LAYER_REGIONS not in layers:
        return None, {}
    levels = [level for (level,) in db.execute(LEVELS)]
    if not levels:
        return None, {}
    level = next((lv for lv in levels if abs(lv - PREFERRED_LEVEL) < LEVEL_TOLERANCE), max(levels))
    if db.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (RTREE,)).fetchone() is not None:
        return level, {src: (area, None if x0 is None else (x0, y0, x1, y1))
                       for src, area, x0, y0, x1, y1 in db.execute(REGION_BOXES[source], (level, LEVEL_TOLERANCE))}
    return level, {src: (area, envelope(head))
                   for src, area, head in db.execute(REGION_HEADERS[source], (level, LEVEL_TOLERANCE))}


def envelope(blob: bytes | None) -> tuple[float, float, float, float] | None:
    """xmin, ymin, xmax, ymax from a GeoPackage geometry's header, when it carries an envelope."""
    if not blob or len(blob) < 8 or blob[:2] != b"GP":
        return None
    flags = blob[3]
    if (flags >> 1) & 0b111 == 0 or len(blob) < 40:  # no envelope (or not one of x and y)
        return None
    xmin, xmax, ymin, ymax = struct.unpack("<4d" if flags & 1 else ">4d", blob[8:40])
    return xmin, ymin, xmax, ymax


def _rasters(db: sqlite3.Connection, layers: frozenset[str], source: str, folder: Path) -> dict[str, str]:
    """Per row its raster file: the run's ``rasters`` table, or (a run written before it existed) the photo or
    query each GeoTIFF names in its metadata."""
    if layout.LAYER_RASTERS in layers:
        db.row_factory = sqlite3.Row
        found = {row[source]: str(folder / row["raster"]) for row in db.execute(RASTER_FILES)}
        db.row_factory = None
        return found
    from osgeo import gdal

    found = {}
    for path in sorted((folder / layout.RASTERS_FOLDER).glob("*.tif")):
        ds = gdal.Open(str(path))
        named = ds.GetMetadataItem(source) if ds is not None else None
        ds = None
        if named:
            found.setdefault(named, str(path))
    return found
