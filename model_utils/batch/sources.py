"""What a batch job works on: the photo list (folder, glob or Parquet manifest) and point tables.

The list is resolved once, on the driver, sorted, and saved in the job's plan, so shards are the
same on every run of the job (the condition for ``--resume``).
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import numpy as np

from ..errors import GeoClipError
from ..photos.folders import FolderScan, scan_photos
from ..photos.formats import skip_reason
from ..photos.images import IMAGE_EXTENSIONS

LAT_NAMES = ("lat", "latitude", "y")
LON_NAMES = ("lon", "lng", "long", "longitude", "x")


class SourceError(GeoClipError):
    """The job's input cannot be read; the message names it and says what to do."""


def list_photos(source: str, recursive: bool = True) -> list[str]:
    """Photo paths from a folder, a glob pattern or a Parquet manifest with a ``path`` column, sorted."""
    return photo_source(source, recursive)[0]


def photo_source(source: str, recursive: bool = True) -> tuple[list[str], list[str]]:
    """(sorted photo paths, one line per kind of file a folder or pattern held besides photos, by reason)."""
    path = Path(source).expanduser()
    if path.suffix.lower() == ".parquet":
        return sorted(_manifest_paths(path)), []
    if path.is_dir():
        scan = scan_photos(path, recursive=recursive)
        if not scan.photos:
            raise SourceError(scan.no_photo_message())
        return [str(p) for p in scan.photos], scan.skipped_lines()
    if glob.has_magic(source):
        matches = [Path(p) for p in glob.glob(os.path.expanduser(source), recursive=True) if not Path(p).is_dir()]
        photos = sorted(str(p.absolute()) for p in matches if p.suffix.lower() in IMAGE_EXTENSIONS)
        others: dict[tuple[str, str], list[Path]] = {}
        for p in matches:
            if p.suffix.lower() not in IMAGE_EXTENSIONS:
                others.setdefault((p.suffix.lower(), skip_reason(p.suffix.lower())), []).append(p)
        scan = FolderScan(Path(source), skipped={key: tuple(sorted(v)) for key, v in others.items()})
        if not photos:
            raise SourceError(f"No photos match '{source}'" + (f": {'; '.join(scan.skipped_lines())}" if others
                              else "") + ". Check the pattern (e.g. '/data/**/*.jpg').")
        return photos, scan.skipped_lines()
    raise SourceError(f"Photo source '{source}' is neither a folder, a glob pattern nor a .parquet manifest "
                      f"(it does not exist). Check the path.")


def _manifest_paths(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as exc:
        raise SourceError(f"Manifest '{path}' cannot be read as Parquet ({exc}).") from None
    if "path" not in table.column_names:
        raise SourceError(f"Manifest '{path}' has no 'path' column (it has: {', '.join(table.column_names)}). "
                          f"Name the column of photo paths 'path'.")
    base = path.parent
    paths = [str(base / p) if p and not os.path.isabs(p) else p for p in table.column("path").to_pylist()]
    missing = sum(1 for p in paths if not p)
    if missing:
        raise SourceError(f"Manifest '{path}': {missing} row(s) have an empty 'path'. Fill or remove them.")
    return paths


def read_points(source: str) -> tuple[np.ndarray, np.ndarray]:
    """(ids, latlon) from a CSV or Parquet table with lat/lon columns; ids are the row numbers (from 0).

    Invalid coordinates are kept (they become error rows), so the output has one row per input row.
    """
    path = Path(source).expanduser()
    if not path.is_file():
        raise SourceError(f"Point table '{path}' not found. Check the path.")
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path) if path.suffix.lower() == ".parquet" else pcsv.read_csv(path)
    except (OSError, ValueError) as exc:
        raise SourceError(f"Point table '{path}' cannot be read ({exc}). Use CSV with a header or Parquet.") from None
    lat_col, lon_col = (_column(table.column_names, names, path) for names in (LAT_NAMES, LON_NAMES))
    latlon = np.column_stack([_floats(table.column(c)) for c in (lat_col, lon_col)])
    return np.arange(len(latlon), dtype=np.int64), latlon


def _column(columns: list[str], names: tuple[str, ...], path: Path) -> str:
    lower = {c.lower(): c for c in columns}
    for name in names:
        if name in lower:
            return lower[name]
    raise SourceError(f"Point table '{path}' has no {names[0]} column (looked for {', '.join(names)}; it has "
                      f"{', '.join(columns)}). Rename the coordinate columns.")


def _floats(column) -> np.ndarray:
    import pyarrow.compute as pc

    try:
        return column.cast("float64").to_numpy(zero_copy_only=False)
    except Exception:  # text that is not a number: NaN, reported per row later
        return np.array([_to_float(v) for v in pc.cast(column, "string").to_pylist()], dtype=np.float64)


def _to_float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")
