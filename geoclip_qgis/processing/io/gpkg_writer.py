"""GeoPackage output of the GPS-embedding export, written through SQLite directly.

Why not ``QgsVectorFileWriter`` for the rows: with 512 values per feature, building 515 QVariant
attributes and OGR's per-field insert cost ~115 µs per point on one core here, as much again as
the encoder. So OGR only creates the empty table (schema, SRS, contents, R-tree and the triggers
that keep them current); the rows and their R-tree entries go in with one ``executemany`` per batch
(geometry blobs built with numpy), with OGR's triggers set aside meanwhile (they call SpatiaLite
functions plain SQLite lacks) and restored, verbatim, at the end. The file is an ordinary
GeoPackage that QGIS and GDAL read and edit as usual.

Two layouts: one REAL column per value (``e000``…, readable in QGIS's attribute table), or one
BLOB column holding the values as little-endian float32 (half the file, about twice as fast)."""

from __future__ import annotations

import json
import math
import sqlite3
from datetime import datetime, timezone

import numpy as np
from qgis.core import (
    QgsField,
    QgsFields,
    QgsProcessingContext,
    QgsProcessingException,
    QgsVectorFileWriter,
)
from qgis.PyQt.QtCore import QByteArray, QDate, QDateTime, Qt, QTime

from ...compat import WKB_POINT, FieldType, is_null
from .embedding_writers import Columns, _Writer
from .geometry import WGS84, PointBatch

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


def _datetime_text(value: QDateTime) -> str | None:
    if not value.isValid():
        return None
    text = value.toString("yyyy-MM-ddTHH:mm:ss.zzz")
    return text + "Z" if value.timeSpec() == Qt.TimeSpec.UTC else text


_PLAIN = (int, float, str, bytes)


def sqlite_value(value):
    """A QGIS attribute value as GDAL stores it in a GeoPackage (dates as ISO text, lists as JSON)."""
    if type(value) in _PLAIN:  # the common case first: this runs for every attribute of every feature
        return value
    if is_null(value):
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
        self.next_fid = 1
        self.triggers: list[str] = []
        self.bounds = [math.inf, math.inf, -math.inf, -math.inf]  # min x, min y, max x, max y
        names = [*in_fields.names(), columns.fid, *columns.values, columns.lat, columns.lon]  # the table's columns
        # an integer 'fid' of the input (every GeoPackage source has one) becomes the output's key, as in OGR
        self.key_index = next((i for i, n in enumerate(in_fields.names()) if n.lower() == "fid"), None)
        self._create_empty(in_fields, columns, context)
        self.db = sqlite3.connect(str(self.tmp), isolation_level=None)
        try:
            self._tune()
            self.geometry_column = self.db.execute(
                "SELECT column_name FROM gpkg_geometry_columns WHERE table_name = ?", (self.table,)).fetchone()[0]
            self._check_columns(names)
            self.rtree = f"rtree_{self.table}_{self.geometry_column}"
            self._set_triggers_aside()
        except BaseException:
            self.release()
            raise
        # values first: each row's list of values is extended in place with the rest (no 517-item copy)
        rest = [self.geometry_column, *(["fid"] if self.key_index is None else []), *in_fields.names(),
                columns.fid, columns.lat, columns.lon]
        column_list = ", ".join(_quote(n) for n in [*columns.values, *rest])
        self.sql = (f"INSERT INTO {_quote(self.table)} ({column_list}) "
                    f"VALUES ({', '.join('?' * (len(columns.values) + len(rest)))})")
        self.rtree_sql = f"INSERT INTO {_quote(self.rtree)} VALUES (?, ?, ?, ?, ?)"

    def _create_empty(self, in_fields: QgsFields, columns: Columns, context: QgsProcessingContext) -> None:
        """OGR writes the GeoPackage scaffolding: tables, SRS, contents, R-tree, triggers."""
        fields = QgsFields(in_fields)
        fields.append(QgsField(columns.fid, FieldType.LONG))
        if self.packed:
            fields.append(QgsField(columns.values[0], FieldType.BYTES, "binary"))
        else:
            for name in columns.values:
                fields.append(QgsField(name, FieldType.DOUBLE, "double"))
        for name in (columns.lat, columns.lon):
            fields.append(QgsField(name, FieldType.DOUBLE, "double"))
        options = QgsVectorFileWriter.SaveVectorOptions()
        options.driverName = "GPKG"
        options.fileEncoding = "UTF-8"
        options.layerName = self.table
        writer = QgsVectorFileWriter.create(str(self.tmp), fields, WKB_POINT, WGS84,
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

    def _check_columns(self, expected: list[str]) -> None:
        names = [row[1] for row in self.db.execute(f"PRAGMA table_info({_quote(self.table)})")]
        got = [n for n in names if n != self.geometry_column and (self.key_index is not None or n.lower() != "fid")]
        if sorted(n.lower() for n in got) != sorted(n.lower() for n in expected):
            raise QgsProcessingException(f"GeoPackage table {self.table} came out with unexpected columns: {got}")
        if not self.db.execute("SELECT 1 FROM sqlite_master WHERE name = ?",
                               (f"rtree_{self.table}_{self.geometry_column}",)).fetchone():
            raise QgsProcessingException(f"OGR made {self.final.name} without its spatial index table.")

    def _set_triggers_aside(self) -> None:
        """Drop the table's triggers (R-tree, feature count) for the bulk insert; ``close`` restores them."""
        rows = self.db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?",
                               (self.table,)).fetchall()
        self.triggers = [sql for _, sql in rows]
        for name, _ in rows:
            self.db.execute(f"DROP TRIGGER {_quote(name)}")

    def write(self, batch: PointBatch, values: np.ndarray) -> None:
        latlon = batch.latlon
        n = len(batch.fids)
        geoms = point_blobs(latlon)
        src = batch.fids.tolist()
        lats, lons = latlon[:, 0].tolist(), latlon[:, 1].tolist()
        if self.packed:
            packed = np.ascontiguousarray(values, dtype=PACKED_DTYPE)
            rows = [[row.tobytes()] for row in packed]
        else:
            rows = np.asarray(values).tolist()  # Python floats: float32 -> double is exact
        attributes = ([[sqlite_value(v) for v in row] for row in batch.attributes] if self.n_attributes
                      else [[] for _ in range(n)])
        keys = self._keys(attributes, n)
        for k, row in enumerate(rows):  # same order as the INSERT's column list
            row.append(geoms[k])
            if self.key_index is None:
                row.append(keys[k])
            row.extend(attributes[k])
            row.extend((src[k], lats[k], lons[k]))
        records = rows
        try:
            self.db.execute("BEGIN")
            self.db.executemany(self.sql, records)
            self.db.executemany(self.rtree_sql, zip(keys, lons, lons, lats, lats))
            self.db.execute("COMMIT")
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" not in str(exc):
                raise QgsProcessingException(f"Could not write to {self.final.name}: {exc}") from exc
            raise QgsProcessingException(
                f"Could not write to {self.final.name}: {exc}. The input's integer field 'fid' becomes the "
                "GeoPackage feature id, which must be unique: rename that field in the input (or export to "
                "another format).") from exc
        except sqlite3.Error as exc:
            raise QgsProcessingException(f"Could not write to {self.final.name}: {exc}") from exc
        self.count += n
        b = self.bounds
        self.bounds = [min(b[0], float(latlon[:, 1].min())), min(b[1], float(latlon[:, 0].min())),
                       max(b[2], float(latlon[:, 1].max())), max(b[3], float(latlon[:, 0].max()))]

    def _keys(self, attributes: list[list], n: int) -> list[int]:
        """Feature ids of the batch: the input's 'fid' values (a NULL gets the next free id), else 1, 2, 3…"""
        if self.key_index is None:
            keys = list(range(self.next_fid, self.next_fid + n))
            self.next_fid += n
            return keys
        keys = []
        for row in attributes:
            key = row[self.key_index]
            if key is None:
                key = row[self.key_index] = self.next_fid
            self.next_fid = max(self.next_fid, int(key) + 1)
            keys.append(key)
        return keys

    def close(self) -> None:
        """Record extent and feature count, restore OGR's triggers, close."""
        if self.db is None:
            return
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        extent = self.bounds if math.isfinite(self.bounds[0]) else [None] * 4
        self.db.execute("BEGIN")
        self.db.execute("UPDATE gpkg_contents SET min_x = ?, min_y = ?, max_x = ?, max_y = ?, last_change = ? "
                        "WHERE table_name = ?", (*extent, stamp, self.table))
        self.db.execute("UPDATE gpkg_ogr_contents SET feature_count = ? WHERE lower(table_name) = lower(?)",
                        (self.count, self.table))
        for sql in self.triggers:
            self.db.execute(sql)
        self.db.execute("COMMIT")
        self.db.close()
        self.db = None

    def release(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'

