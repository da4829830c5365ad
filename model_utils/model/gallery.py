"""GPS galleries and their on-disk embedding cache.

GeoCLIP ranks a photo against a gallery of GPS points. Encoding the 100K default gallery takes
~11 s on a 2-core CPU, so its unit-length embeddings are computed once per (weights, gallery) and
cached as safetensors, written atomically and verified by content hash on every load: a corrupt,
truncated or stale file is rebuilt, never trusted.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..constants import EMBED_DIM
from ..errors import Canceled, GeoClipError
from ..geo import validate_latlon
from ..progress import IsCanceled, Progress
from ..safe_files import atomic_path

CACHE_FORMAT = "geoclip-gallery-v1"
MAX_GRID_POINTS = 1_000_000  # ~3 min to encode on 2 cores here; cached on disk after the first run

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``$GEOCLIP_CACHE_DIR``, else the user's cache folder."""
    env = os.environ.get("GEOCLIP_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "geoclip-qgis"


@dataclass(frozen=True, eq=False)
class Gallery:
    """Candidate GPS locations, (N, 2) float32 degrees [lat, lon]; equal when their coordinates are."""

    latlon: np.ndarray
    name: str = "custom"
    digest: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        arr = np.ascontiguousarray(validate_latlon(self.latlon), dtype=np.float32)
        if len(arr) == 0:
            raise GeoClipError(f"GPS gallery '{self.name}' is empty")
        object.__setattr__(self, "latlon", arr)
        object.__setattr__(self, "digest", hashlib.sha256(arr.tobytes()).hexdigest())

    def __len__(self) -> int:
        return len(self.latlon)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Gallery) and other.digest == self.digest

    def __hash__(self) -> int:
        return hash(self.digest)

    @classmethod
    def from_csv(cls, path: str | os.PathLike, name: str | None = None,
                 lat_field: str = "LAT", lon_field: str = "LON") -> Gallery:
        """Read a CSV with latitude/longitude columns (GeoCLIP's own gallery uses LAT, LON)."""
        path = Path(path)
        try:
            with open(path, newline="", encoding="utf-8") as fh:
                reader = csv.DictReader(fh)
                fields = {f.lower(): f for f in reader.fieldnames or []}
                lat_key = fields.get(lat_field.lower()) or fields.get("lat") or fields.get("latitude")
                lon_key = fields.get(lon_field.lower()) or fields.get("lon") or fields.get("longitude")
                if not lat_key or not lon_key:
                    raise GeoClipError(f"{path}: needs latitude and longitude columns "
                                       f"(e.g. {lat_field},{lon_field}); found {reader.fieldnames}")
                rows = [(float(r[lat_key]), float(r[lon_key])) for r in reader]
        except (OSError, ValueError) as exc:
            raise GeoClipError(f"Cannot read GPS gallery {path}: {exc}") from exc
        return cls(np.asarray(rows, dtype=np.float64).reshape(-1, 2), name or path.stem)

    @classmethod
    def grid(cls, cell_deg: float, extent: tuple[float, float, float, float] = (-180, -90, 180, 90),
             name: str | None = None) -> Gallery:
        """Cell centres of a regular lat/lon grid over (xmin, ymin, xmax, ymax).

        Also the regional gallery for city-scale zoom: GeoCLIP's 100K gallery has about one point per
        2,000 km² of land, so ranking against a fine grid over a region answers at the grid's spacing.
        """
        xmin, ymin, xmax, ymax = extent
        if cell_deg <= 0 or xmax <= xmin or ymax <= ymin:
            raise GeoClipError(f"grid gallery needs a positive cell size and extent, got {cell_deg}, {extent}")
        lons = np.arange(xmin + cell_deg / 2, xmax, cell_deg)
        lats = np.arange(ymin + cell_deg / 2, ymax, cell_deg)
        if len(lons) * len(lats) > MAX_GRID_POINTS:
            raise GeoClipError(
                f"A grid gallery of {len(lats)} x {len(lons)} = {len(lats) * len(lons):,} points is more than "
                f"{MAX_GRID_POINTS:,}: use a coarser spacing or a smaller extent.")
        lon_g, lat_g = np.meshgrid(lons, lats)
        return cls(np.column_stack([lat_g.ravel(), lon_g.ravel()]), name or f"grid-{cell_deg:g}deg")


def cache_path(gallery: Gallery, weights_fingerprint: str, cache_dir: Path | None = None) -> tuple[Path, str]:
    """(file, key) of a gallery's embedding cache; the key binds weights, coordinates and format."""
    key = hashlib.sha256(f"{CACHE_FORMAT}|{weights_fingerprint}|{gallery.digest}".encode()).hexdigest()
    folder = cache_dir or default_cache_dir()
    return folder / f"gallery-{gallery.name[:40]}-{key[:16]}.safetensors", key


def read_cache(path: Path, key: str, n: int) -> tuple[np.ndarray | None, str]:
    """(the cached embeddings, "") if the file is intact and belongs to ``key``; else (None, why it cannot be
    used), the reason empty when there is no file at all."""
    if not path.is_file():
        return None, ""
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as fh:
            meta = fh.metadata() or {}
            emb = fh.get_tensor("embeddings")
    except Exception as exc:  # noqa: BLE001 - any unreadable file (header, truncation, format) is rebuilt
        return None, f"it cannot be read ({type(exc).__name__}: {exc})"
    if meta.get("key") != key or meta.get("format") != CACHE_FORMAT:
        return None, "it was made for other weights, coordinates or an older cache format"
    if emb.shape != (n, EMBED_DIM):
        return None, f"it holds {emb.shape} embeddings where ({n}, {EMBED_DIM}) are needed"
    if hashlib.sha256(np.ascontiguousarray(emb).tobytes()).hexdigest() != meta.get("sha256"):
        return None, "its content does not match its checksum (the file was damaged)"
    return emb, ""


def write_cache(path: Path, key: str, embeddings: np.ndarray) -> None:
    """Write atomically: a temp file in the same folder, then rename over the target."""
    from safetensors.numpy import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    emb = np.ascontiguousarray(embeddings, dtype=np.float32)
    meta = {"format": CACHE_FORMAT, "key": key, "sha256": hashlib.sha256(emb.tobytes()).hexdigest()}
    with atomic_path(path) as tmp:
        save_file({"embeddings": emb}, str(tmp), metadata=meta)


def gallery_embeddings(gallery: Gallery, encode: Callable[[np.ndarray], np.ndarray], weights_fingerprint: str,
                       cache_dir: Path | None = None, batch_size: int = 8192,
                       progress: Progress | None = None,
                       is_canceled: IsCanceled | None = None) -> np.ndarray:
    """Unit-length (N, EMBED_DIM) float32 embeddings of ``gallery``, from cache or computed and cached.

    ``encode`` maps an (n, 2) lat/lon chunk to unit-length (n, EMBED_DIM) embeddings.
    """
    path, key = cache_path(gallery, weights_fingerprint, cache_dir)
    cached, unusable = read_cache(path, key, len(gallery))
    if cached is not None:
        return cached
    if unusable:  # said, not silently paid for: a rebuild costs the full encode
        note = f"The gallery embedding cache {path} is not used: {unusable}. Encoding the gallery again."
        log.warning(note)
        if progress is not None:
            progress(0.0, note)
    out = np.empty((len(gallery), EMBED_DIM), dtype=np.float32)
    for start in range(0, len(gallery), batch_size):
        if is_canceled is not None and is_canceled():
            raise Canceled("Canceled while encoding the GPS gallery")
        chunk = encode(gallery.latlon[start:start + batch_size])
        out[start:start + len(chunk)] = chunk
        if progress is not None:
            done = min(start + batch_size, len(gallery))
            progress(done / len(gallery), f"Encoding GPS gallery '{gallery.name}': {done}/{len(gallery)}")
    try:
        write_cache(path, key, out)
    except Exception as exc:  # noqa: BLE001 - OSError, or safetensors' own error for a full disk: costs speed
        if progress is not None:  # next time, not this result: say so, once
            progress(1.0, _unsaved_message(path.parent, exc, out.nbytes, len(gallery)))
    return out


def _unsaved_message(folder: Path, exc: Exception, size: int, n_points: int) -> str:
    """Why the cache was not saved (a full disk said as such) and what it costs: the next run encodes again."""
    from ..disk import disk_full_message, is_disk_full, size_text

    again = f"the next run encodes the {n_points:,} points again"
    if is_disk_full(exc, folder, size):
        return disk_full_message(folder, f"the gallery embeddings ({size_text(size)}) were not saved, and {again}")
    reason = getattr(exc, "strerror", None) or exc
    return (f"Could not save the gallery embeddings to {folder} ({reason}): {again}. Choose a writable embedding "
            "cache folder (Setup tab, or GEOCLIP_CACHE_DIR).")
