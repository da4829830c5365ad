"""GeoPackage output of the GPS-embedding export, written through SQLite directly.

Why not ``QgsVectorFileWriter`` for the rows: with 512 values per feature, building 515 QVariant
attributes and OGR's per-field insert cost ~115 µs per point on one core here, as much again as
the encoder. So OGR only creates the empty table (schema, SRS, contents, feature-count triggers),
the rows go in with one ``executemany`` per batch (geometry blobs built with numpy), and OGR adds
the spatial index at the end. The file is an ordinary GeoPackage that QGIS and GDAL read as usual.

Two layouts: one REAL column per value (``e000``…, readable in QGIS's attribute table), or one
BLOB column holding the values as little-endian float32 (half the file, about twice as fast).
"""

from __future__ import annotations

import json
import math
import sqlite3
from datetime import datetime, timezone

import numpy as np
from qgis.core import (
    NULL,
    QgsCoordinateReferenceSystem,
    QgsField,
    QgsFields,
    QgsProcessingContext,
    QgsProcessingException,
    QgsVectorFileWriter,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QByteArray, QDate, QDateTime, Qt, QTime, QVariant

from .embedding_writers import Columns, _Writer
from .geometry import PointBatch

WGS84 = QgsCoordinateReferenceSystem("EPSG:4326")
PAGE_SIZE = 65536  # a 512-REAL row is ~4.2 KB: with SQLite's default 4 KB pages every row would overflow
PACKED_DTYPE = np.dtype("<f4")

# A GeoPackage point: 8-byte header ("GP", version 0, flags 1 = little-endian, no envelope), srs_id,
# then the WKB point (byte order 1, type 1, x, y).
_POINT_BLOB = np.dtype([("magic", "S2"), ("version", "u1"), ("flags", "u1"), ("srs", "<i4"),
                        ("order", "u1"), ("wkb_type", "<u4"), ("x", "<f8"), ("y", "<f8")])


def point_blobs(latlon: np.ndarray, srs_id: int = 4326) -> list[bytes]:
    """GeoPackage geometry blobs of WGS84 points ([lat, lon] rows), built for the whole batch at once."""
    rows = np.zeros(len(latlon), dtype=_POINT_BLOB)
    rows["magic"], rows["flags"], rows["srs"], rows["order"], rows["wkb_type"] = b"GP", 1, srs_id, 1, 1
    rows["x"], rows["y"] = latlon[:, 1], latlon[:, 0]
    raw = rows.tobytes()
    size = _POINT_BLOB.itemsize
    return [raw[i:i + size] for i in range(0, len(raw), size)]


def _is_null(value) -> bool:
    return value is None or value == NULL or (isinstance(value, QVariant) and value.isNull())


def _datetime_text(value: QDateTime) -> str | None:
    if not value.isValid():
        return None
    text = value.toString("yyyy-MM-ddTHH:mm:ss.zzz")
    return text + "Z" if value.timeSpec() == Qt.UTC else text


def sqlite_value(value):
    """A QGIS attribute value as GDAL stores it in a GeoPackage (dates as ISO text, lists as JSON)."""
    if _is_null(value):
        return None
    if isinstance(value, (bool, int, float, str, bytes)):
        return int(value) if isinstance(value, bool) else value
    if isinstance(value, QDateTime):
        return _datetime_text(value)
    if isinstance(value, QDate):
        return value.toString("yyyy-MM-dd") if value.isValid() else None
    if isinstance(value, QTime):
        return value.toString("HH:mm:ss") if value.isValid() else None
    if isinstance(value, QByteArray):
        return bytes(value)
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, default=str)
    return str(value)


class GpkgWriter(_Writer):
    """Rows of (input attributes, ``src_fid``, values, ``lat``, ``lon``) with the point as geometry."""

    def __init__(self, final, in_fields: QgsFields, columns: Columns, context: QgsProcessingContext,
                 packed: bool) -> None:
        super().__init__(final)
        self.packed = packed
        self.n_attributes = len(in_fields)
        self.table = final.stem
        self.db: sqlite3.Connection | None = None
        self.count = 0
        self.bounds = [math.inf, math.inf, -math.inf, -math.inf]  # min x, min y, max x, max y
        self._create_empty(in_fields, columns, context)
        self.db = sqlite3.connect(str(self.tmp), isolation_level=None)
        try:
            self._tune()
            self.geometry_column = self.db.execute(
                "SELECT column_name FROM gpkg_geometry_columns WHERE table_name = ?", (self.table,)).fetchone()[0]
            names = [row[1] for row in self.db.execute(f"PRAGMA table_info({_quote(self.table)})")]
            expected = [*in_fields.names(), columns.fid, *columns.values, columns.lat, columns.lon]
            # an integer 'fid' of the input (every GeoPackage source has one) becomes the output's key, as in OGR
            keyed = any(n.lower() == "fid" for n in expected)
            got = [n for n in names if n != self.geometry_column and (keyed or n.lower() != "fid")]
            if sorted(n.lower() for n in got) != sorted(n.lower() for n in expected):
                raise QgsProcessingException(f"GeoPackage table {self.table} came out with unexpected columns: {got}")
        except BaseException:
            self.release()
            raise
        column_list = ", ".join(_quote(n) for n in [self.geometry_column, *expected])
        self.sql = (f"INSERT INTO {_quote(self.table)} ({column_list}) "
                    f"VALUES ({', '.join('?' * (len(expected) + 1))})")

    def _create_empty(self, in_fields: QgsFields, columns: Columns, context: QgsProcessingContext) -> None:
        """OGR writes the GeoPackage scaffolding: tables, SRS, contents, feature-count triggers."""
        fields = QgsFields(in_fields)
        fields.append(QgsField(columns.fid, QVariant.LongLong))
        if self.packed:
            fields.append(QgsField(columns.values[0], QVariant.ByteArray, "binary"))
        else:
            for name in columns.values:
                fields.append(QgsField(name, QVariant.Double, "double"))
        for name in (columns.lat, columns.lon):
            fields.append(QgsField(name, QVariant.Double, "double"))
        options = QgsVectorFileWriter.SaveVectorOptions()
        options.driverName = "GPKG"
        options.fileEncoding = "UTF-8"
        options.layerName = self.table
        options.layerOptions = ["SPATIAL_INDEX=NO"]  # built once at the end: per-row R-tree triggers are slow
        writer = QgsVectorFileWriter.create(str(self.tmp), fields, QgsWkbTypes.Point, WGS84,
                                            context.transformContext(), options)
        error = writer.errorMessage() if writer.hasError() else ""
        del writer  # closes the dataset
        if error:
            raise QgsProcessingException(f"Could not create {self.final.name} (GeoPackage): {error}")

    def _tune(self) -> None:
        """Bigger pages for wide rows; no journal or fsync: the file is a temp file until renamed."""
        self.db.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        self.db.execute("VACUUM")  # applies the page size; the file holds only empty tables yet
        self.db.execute("PRAGMA journal_mode = OFF")
        self.db.execute("PRAGMA synchronous = OFF")

    def write(self, batch: PointBatch, values: np.ndarray) -> None:
        latlon = batch.latlon
        geoms = point_blobs(latlon)
        fids = batch.fids.tolist()
        lats, lons = latlon[:, 0].tolist(), latlon[:, 1].tolist()
        if self.packed:
            packed = np.ascontiguousarray(values, dtype=PACKED_DTYPE)
            rows = [(row.tobytes(),) for row in packed]
        else:
            rows = np.asarray(values).tolist()  # Python floats: float32 -> double is exact
        attributes = ([[sqlite_value(v) for v in row] for row in batch.attributes] if self.n_attributes
                      else [()] * len(fids))
        records = ((geoms[k], *attributes[k], fids[k], *rows[k], lats[k], lons[k]) for k in range(len(fids)))
        try:
            self.db.execute("BEGIN")
            self.db.executemany(self.sql, records)
            self.db.execute("COMMIT")
        except sqlite3.IntegrityError as exc:
            raise QgsProcessingException(
                f"Could not write to {self.final.name}: {exc}. The input's integer field 'fid' becomes the "
                "GeoPackage feature id, which must be unique: rename that field in the input (or export to "
                "another format).") from exc
        except sqlite3.Error as exc:
            raise QgsProcessingException(f"Could not write to {self.final.name}: {exc}") from exc
        lon_min, lon_max = float(latlon[:, 1].min()), float(latlon[:, 1].max())
        lat_min, lat_max = float(latlon[:, 0].min()), float(latlon[:, 0].max())
        self.count += len(fids)
        b = self.bounds
        self.bounds = [min(b[0], lon_min), min(b[1], lat_min), max(b[2], lon_max), max(b[3], lat_max)]

    def close(self) -> None:
        """Record the extent, then let OGR build the R-tree spatial index."""
        if self.db is None:
            return
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        extent = self.bounds if math.isfinite(self.bounds[0]) else [None] * 4
        self.db.execute("UPDATE gpkg_contents SET min_x = ?, min_y = ?, max_x = ?, max_y = ?, last_change = ? "
                        "WHERE table_name = ?", (*extent, stamp, self.table))
        self.db.close()
        self.db = None
        from osgeo import gdal, ogr

        gdal.ErrorReset()
        dataset = ogr.Open(str(self.tmp), 1)
        if dataset is not None:
            dataset.ExecuteSQL(f"SELECT CreateSpatialIndex('{_sql_text(self.table)}', "
                               f"'{_sql_text(self.geometry_column)}')")
            dataset = None  # closes it
        if dataset is None and gdal.GetLastErrorType() >= gdal.CE_Failure:
            raise QgsProcessingException(
                f"Could not build the spatial index of {self.final.name}: {gdal.GetLastErrorMsg()}")
        with sqlite3.connect(str(self.tmp)) as db:  # OGR leaves the count unknown (NULL) after its own edit
            db.execute("UPDATE gpkg_ogr_contents SET feature_count = ? WHERE lower(table_name) = lower(?)",
                       (self.count, self.table))
        db.close()

    def release(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_text(text: str) -> str:
    return text.replace("'", "''")
