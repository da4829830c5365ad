"""Where reference photos and their positions come from: a folder (EXIF GPS), a table (CSV or Parquet of
path + lat/lon) or a list of (path, lat, lon) from any caller (a QGIS point layer, a script).

Each source becomes a list of ``Candidate``: a photo path and its position, or no position (then the build
lists it and leaves it out). A table row with an empty or invalid position falls back to the photo's EXIF GPS.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..photos.folders import find_photos
from .index import CollectionError

PATH_NAMES = ("path", "photo", "file", "filename", "image")
LAT_NAMES = ("lat", "latitude", "y")
LON_NAMES = ("lon", "lng", "long", "longitude", "x")
TABLE_SUFFIXES = (".csv", ".parquet")


@dataclass(frozen=True)
class Candidate:
    """A photo offered to the collection: its path, and its position when the source gives one (else EXIF)."""

    path: str
    lat: float | None = None
    lon: float | None = None

    @property
    def position(self) -> tuple[float, float] | None:
        if self.lat is None or self.lon is None:
            return None
        if not (math.isfinite(self.lat) and math.isfinite(self.lon)):
            return None
        if not (-90 <= self.lat <= 90 and -180 <= self.lon <= 180) or (self.lat == 0 and self.lon == 0):
            return None  # (0, 0) is the "no fix" placeholder of many devices, as for EXIF
        return float(self.lat), float(self.lon)


def candidates(source, recursive: bool = True) -> tuple[list[Candidate], str]:
    """(candidates, a short description) from a folder, a .csv / .parquet table, or (path, lat, lon) items."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        if path.suffix.lower() in TABLE_SUFFIXES and not path.is_dir():
            return read_table(path), f"table {path}"
        return [Candidate(str(p)) for p in find_photos(path, recursive=recursive)], f"folder {path}"
    return from_items(source), "a list of photos"


def from_items(items: Iterable[Sequence]) -> list[Candidate]:
    """(path, lat, lon) triples (lat/lon may be None: EXIF then), or bare paths; bad rows are named."""
    out = []
    for i, item in enumerate(items):
        if isinstance(item, (str, os.PathLike)):
            out.append(Candidate(os.fspath(item)))
            continue
        try:
            path, lat, lon = item
        except (TypeError, ValueError):
            raise CollectionError(f"Reference photo #{i + 1} is {item!r}: give (path, lat, lon) or a path.") from None
        out.append(Candidate(os.fspath(path), _number(lat), _number(lon)))
    return out


def read_table(path: Path) -> list[Candidate]:
    """Rows of a CSV (with a header) or Parquet table: a path column and optional lat/lon columns; relative
    paths are read from the table's folder."""
    if not path.is_file():
        raise CollectionError(f"Reference table '{path}' not found. Check the path.")
    columns = _read_parquet(path) if path.suffix.lower() == ".parquet" else _read_csv(path)
    names = {c.lower(): c for c in columns}
    path_col = _pick(names, PATH_NAMES)
    if path_col is None:
        raise CollectionError(f"Reference table '{path}' has no photo path column (looked for "
                             f"{', '.join(PATH_NAMES)}; it has {', '.join(columns)}). Rename the column of paths.")
    lat_col, lon_col = _pick(names, LAT_NAMES), _pick(names, LON_NAMES)
    if (lat_col is None) != (lon_col is None):
        raise CollectionError(f"Reference table '{path}' has only one of the coordinate columns "
                             f"(lat: {lat_col}, lon: {lon_col}). Give both, or neither to use EXIF GPS.")
    out = []
    for i, raw in enumerate(columns[path_col]):
        text = "" if raw is None else str(raw).strip()
        if not text:
            raise CollectionError(f"Reference table '{path}': data row {i + 1} has an empty path. Fill or remove it.")
        photo = text if os.path.isabs(text) else str(path.parent / text)
        lat = _number(columns[lat_col][i]) if lat_col else None
        lon = _number(columns[lon_col][i]) if lon_col else None
        out.append(Candidate(photo, lat, lon))
    return out


def _pick(names: dict[str, str], wanted: tuple[str, ...]) -> str | None:
    return next((names[w] for w in wanted if w in names), None)


def _read_csv(path: Path) -> dict[str, list]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            fields = list(reader.fieldnames or [])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CollectionError(f"Reference table '{path}' cannot be read as CSV ({exc}). Save it as UTF-8 CSV "
                             f"with a header row.") from None
    return {f: [row.get(f) for row in rows] for f in fields}


def _read_parquet(path: Path) -> dict[str, list]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise CollectionError(f"Reading '{path}' needs pyarrow (pip install pyarrow), or save the table as CSV.") \
            from None
    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as exc:
        raise CollectionError(f"Reference table '{path}' cannot be read as Parquet ({exc}).") from None
    return {name: table.column(name).to_pylist() for name in table.column_names}


def _number(value) -> float | None:
    """A float from a cell, or None for empty and non-numeric cells."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
