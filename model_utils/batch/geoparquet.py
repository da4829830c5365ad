"""GeoParquet shards: WKB points in EPSG:4326 with the ``geo`` metadata key (spec 1.1.0).

WKB coordinates are (x, y) = (lon, lat) whatever the CRS's axis order, as the spec says.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from ..safe_files import atomic_path

GEO_VERSION = "1.1.0"


def wkb_point(lon: float, lat: float) -> bytes:
    """Little-endian WKB of a 2-D point."""
    return struct.pack("<BIdd", 1, 1, float(lon), float(lat))


def _crs_projjson() -> dict:
    from pyproj import CRS

    return CRS.from_epsg(4326).to_json_dict()


def geo_metadata(lon: np.ndarray, lat: np.ndarray) -> bytes:
    """The ``geo`` key: one WKB Point column, EPSG:4326, with the bounding box of the rows that have one."""
    ok = np.isfinite(lon) & np.isfinite(lat)
    bbox = [float(lon[ok].min()), float(lat[ok].min()), float(lon[ok].max()), float(lat[ok].max())] if ok.any() \
        else None
    return _geo_key(["Point"], bbox)


def _geo_key(types: list[str], bbox: list[float] | None) -> bytes:
    column = {"encoding": "WKB", "geometry_types": types, "crs": _crs_projjson()}
    if bbox is not None:
        column["bbox"] = bbox
    return json.dumps({"version": GEO_VERSION, "primary_column": "geometry",
                       "columns": {"geometry": column}}).encode()


def region_schema():
    import pyarrow as pa

    return pa.schema([("photo", pa.string()), ("level", pa.float64()), ("area_km2", pa.float64()),
                      ("enclosed", pa.float64()), ("n_parts", pa.int32()), ("geometry", pa.binary())])


def region_rows(source: str, regions) -> list[dict]:
    """A photo's credible regions (``model_utils.maps.regions.CredibleRegion``) -> rows with WKB (multi)polygons."""
    import shapely

    return [{"photo": source, "level": r.level, "area_km2": r.area_km2, "enclosed": r.enclosed,
             "n_parts": r.n_parts, "geometry": shapely.to_wkb(r.geometry)} for r in regions]


def write_regions(rows: list[dict], path: Path) -> Path:
    """Region rows -> one GeoParquet file of (multi)polygons, written atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import shapely

    table = pa.Table.from_pylist(rows, schema=region_schema())
    bounds = shapely.bounds(shapely.from_wkb([r["geometry"] for r in rows])) if rows else np.empty((0, 4))
    bbox = [*bounds[:, :2].min(axis=0).tolist(), *bounds[:, 2:].max(axis=0).tolist()] if rows else None
    table = table.replace_schema_metadata({b"geo": _geo_key(["Polygon", "MultiPolygon"], bbox)})
    with atomic_path(Path(path)) as tmp:
        pq.write_table(table, tmp)
    return Path(path)


def prediction_schema():
    import pyarrow as pa

    return pa.schema([("photo", pa.string()), ("rank", pa.int16()), ("lat", pa.float64()), ("lon", pa.float64()),
                      ("prob", pa.float64()), ("truth_lat", pa.float64()), ("truth_lon", pa.float64()),
                      ("error_km", pa.float64()), ("error", pa.string()), ("geometry", pa.binary())])


def embedding_schema():
    import pyarrow as pa

    return pa.schema([("id", pa.int64()), ("lat", pa.float64()), ("lon", pa.float64()),
                      ("embedding", pa.list_(pa.float32())), ("error", pa.string()),
                      ("geometry", pa.binary())])


def write_table(columns: dict, schema, path: Path) -> Path:
    """Columns (lists or Arrow arrays) -> one GeoParquet file, written atomically (never half a shard)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(columns, schema=schema)
    lon = np.array([np.nan if v is None else v for v in columns["lon"]], dtype=np.float64)
    lat = np.array([np.nan if v is None else v for v in columns["lat"]], dtype=np.float64)
    table = table.replace_schema_metadata({b"geo": geo_metadata(lon, lat)})
    with atomic_path(Path(path)) as tmp:
        pq.write_table(table, tmp)
    return Path(path)


def prediction_rows(preds) -> dict[str, list]:
    """Predictions -> columns: one row per photo and rank; one row with the error text per failed photo."""
    cols: dict[str, list] = {name: [] for name in prediction_schema().names}
    for pred in preds:
        if not pred.ok:
            _append(cols, photo=pred.source, rank=None, lat=None, lon=None, prob=None, truth_lat=None, truth_lon=None,
                    error_km=None, error=pred.error, geometry=None)
            continue
        errors = pred.errors_km
        truth = pred.gps or (None, None)
        for rank, (lat, lon, prob) in enumerate(zip(pred.lat, pred.lon, pred.prob), start=1):
            _append(cols, photo=pred.source, rank=rank, lat=float(lat), lon=float(lon), prob=float(prob),
                    truth_lat=truth[0], truth_lon=truth[1],
                    error_km=None if errors is None else float(errors[rank - 1]), error=None,
                    geometry=wkb_point(lon, lat))
    return cols


def _append(cols: dict[str, list], **row) -> None:
    for key, value in row.items():
        cols[key].append(value)
