"""Output side of the GPS-embedding export: formats, column naming, and one streaming writer per format.

Each writer writes to hidden temp files beside the target and exposes the renames that publish them,
so the algorithm can commit all outputs together or discard them on cancel or error.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path

import numpy as np
from qgis.core import (
    Qgis,
    QgsFeature,
    QgsField,
    QgsFields,
    QgsGeometry,
    QgsMessageLog,
    QgsPointXY,
    QgsProcessingContext,
    QgsProcessingException,
    QgsVectorFileWriter,
)

from model_utils.safe_files import next_free, temp_sibling

from ...compat import WKB_NO_GEOMETRY, WKB_POINT, FieldType, field_type_code, is_null
from .geometry import WGS84, PointBatch

DBF_FIELD_WARNING = 255
SHP_WIDTH, SHP_DECIMALS = 20, 15  # DBF numbers are text: 15 decimals keep float32 values to < 1e-15


@dataclass(frozen=True)
class OutputFormat:
    key: str
    label: str
    extension: str
    driver: str | None  # OGR driver, or None for the numpy / pyarrow writers
    geometry: bool = True


FORMATS = [
    OutputFormat("gpkg", "GeoPackage", ".gpkg", "GPKG"),
    OutputFormat("shp", "ESRI Shapefile", ".shp", "ESRI Shapefile"),
    OutputFormat("csv", "CSV (lat/lon columns)", ".csv", "CSV", geometry=False),
    OutputFormat("npz", "NumPy .npz (id column, no attributes)", ".npz", None, geometry=False),
    OutputFormat("parquet", "Parquet (id column + attributes)", ".parquet", None, geometry=False),
]
KNOWN_EXTENSIONS = {f.extension for f in FORMATS}


class FieldLayout(IntEnum):
    """The 'Embedding fields' choice, by its index in the enum parameter."""

    FIELDS = 0  # one number field per value
    PACKED = 1  # one binary float32 field (GeoPackage)


LAYOUT_LABELS = {FieldLayout.FIELDS: "One number field per value (e000…e511; readable in QGIS)",
                 FieldLayout.PACKED: "One binary field 'embedding' (float32 array; GeoPackage only; half the size, "
                                     "faster to write)"}



class ExportCanceled(QgsProcessingException):
    """The user canceled; nothing was written."""


# ---------------------------------------------------------------------------- column names
@dataclass
class Columns:
    """Names of the columns the export adds, after resolving clashes with the input's fields."""

    fid: str
    values: list[str]
    lat: str
    lon: str
    renamed: list[tuple[str, str]] = field(default_factory=list)


def plan_columns(existing: list[str], n_values: int, prefix: str, shapefile: bool = False,
                 packed_name: str | None = None) -> Columns:
    """``src_fid``, ``<prefix>000``…, ``lat``, ``lon``; a name the input already uses gets ``_2``, ``_3``….

    With ``packed_name`` the values share one (binary) column of that name instead. Names compare
    case-insensitively and, for Shapefiles, on their first 10 characters (DBF limit),
    so the input's field and the new one both survive.
    """
    def key(name: str) -> str:
        return (name[:10] if shapefile else name).lower()

    taken = {key(n) for n in existing}
    renamed: list[tuple[str, str]] = []

    def free(name: str) -> str:
        candidate = next_free(name, lambda c: key(c) in taken)
        taken.add(key(candidate))
        if candidate != name:
            renamed.append((name, candidate))
        return candidate

    fid = free("src_fid")
    values = [free(packed_name)] if packed_name else [free(f"{prefix}{i:03d}") for i in range(n_values)]
    return Columns(fid, values, free("lat"), free("lon"), renamed)


INTEGER_TYPES = {int(t) for t in (FieldType.INT, FieldType.UINT, FieldType.LONG, FieldType.ULONG)}


def gpkg_safe_fields(in_fields: QgsFields, columns: Columns) -> QgsFields:
    """The input's fields, with a non-integer ``fid`` renamed: GeoPackage keeps that name for its key."""
    fields = QgsFields()
    taken = {n.lower() for n in [*in_fields.names(), columns.fid, *columns.values, columns.lat, columns.lon]}
    for original in in_fields:
        out = QgsField(original)
        if out.name().lower() == "fid" and field_type_code(out) not in INTEGER_TYPES:
            name = next_free(out.name(), lambda c: c.lower() in taken or c.lower() == "fid")
            taken.add(name.lower())
            columns.renamed.append((out.name(), name))
            out.setName(name)
        fields.append(out)
    return fields


# ---------------------------------------------------------------------------- writers
class _Writer:
    """Write batches to a hidden temp file beside ``final``; ``finish()`` lists the renames to make."""

    def __init__(self, final: Path) -> None:
        self.final = final
        self.tmp = temp_sibling(final)

    def write(self, batch: PointBatch, values: np.ndarray) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Flush and close the temp file(s)."""

    def temp_files(self) -> list[Path]:
        """Every file this writer created (the temp file and its sidecars)."""
        prefix = self.tmp.stem + "."
        return sorted(p for p in self.tmp.parent.iterdir() if p.name.startswith(prefix))

    def renames(self) -> list[tuple[Path, Path]]:
        """(temp, final) pairs: sidecars keep their extension (.shp .shx .dbf .prj .cpg …)."""
        return [(p, self.final.with_name(self.final.stem + p.name[len(self.tmp.stem):])) for p in self.temp_files()]

    def release(self) -> None:
        """Let go of open files without finishing them (before ``discard``)."""
        self.close()

    def discard(self) -> None:
        try:
            self.release()
        except Exception as exc:  # noqa: BLE001 - best effort: the files go anyway
            QgsMessageLog.logMessage(f"Closing the unfinished {self.tmp.name} before deleting it: {exc}", "GeoCLIP",
                                     Qgis.MessageLevel.Info)
        for path in self.temp_files():
            path.unlink(missing_ok=True)


class VectorWriter(_Writer):
    """Shapefile or CSV through ``QgsVectorFileWriter`` (points in EPSG:4326); GeoPackage: gpkg_writer.py."""

    def __init__(self, final: Path, fmt: OutputFormat, in_fields: QgsFields, columns: Columns,
                 context: QgsProcessingContext) -> None:
        super().__init__(final)
        self.fmt = fmt
        shapefile = fmt.key == "shp"
        width, decimals = (SHP_WIDTH, SHP_DECIMALS) if shapefile else (0, 0)  # CSV: shortest exact text
        fields = QgsFields(in_fields)
        fields.append(QgsField(columns.fid, FieldType.LONG))
        for name in [*columns.values, columns.lat, columns.lon]:
            fields.append(QgsField(name, FieldType.DOUBLE, "double", width, decimals))
        options = QgsVectorFileWriter.SaveVectorOptions()
        options.driverName = fmt.driver
        options.fileEncoding = "UTF-8"
        options.layerName = final.stem
        if fmt.key == "csv":
            options.layerOptions = ["SEPARATOR=COMMA", "STRING_QUOTING=IF_NEEDED"]
        geometry = WKB_POINT if fmt.geometry else WKB_NO_GEOMETRY
        self.writer = QgsVectorFileWriter.create(str(self.tmp), fields, geometry, WGS84,
                                                 context.transformContext(), options)
        if self.writer.hasError():
            message = self.writer.errorMessage()
            self.writer = None
            raise QgsProcessingException(f"Could not create {final.name} ({fmt.label}): {message}")

    def write(self, batch: PointBatch, values: np.ndarray) -> None:
        rows = np.asarray(values).tolist()  # Python floats: float32 -> double is exact
        fids = batch.fids.tolist()
        lats = batch.latlon[:, 0].tolist()
        lons = batch.latlon[:, 1].tolist()
        features = []
        for k, fid in enumerate(fids):
            feature = QgsFeature(fid)
            feature.setAttributes([*batch.attributes[k], fid, *rows[k], lats[k], lons[k]])
            if self.fmt.geometry:
                feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(lons[k], lats[k])))
            features.append(feature)
        if not self.writer.addFeatures(features):
            raise QgsProcessingException(f"Could not write to {self.final.name}: {self.writer.errorMessage()}")

    def close(self) -> None:
        if self.writer is not None:
            del self.writer  # closes the OGR dataset
            self.writer = None


class NpzWriter(_Writer):
    """``src_fid``, ``lat``, ``lon``, ``embeddings`` (N, D) and ``columns``, streamed through raw temp files.

    ``np.savez`` needs whole arrays in memory; here each array grows on disk and is copied into the
    zip under an .npy header at the end, so 1,000,000 x 512 never sits in RAM.
    """

    def __init__(self, final: Path, columns: Columns, dtype: np.dtype) -> None:
        super().__init__(final)
        self.columns = columns
        self.dtype = np.dtype(dtype)
        self.parts = {name: self.tmp.with_name(f"{self.tmp.stem}.{name}.raw") for name in
                      ("src_fid", "lat", "lon", "embeddings")}
        self.handles = {name: open(path, "wb") for name, path in self.parts.items()}  # noqa: SIM115
        self.count = 0

    def write(self, batch: PointBatch, values: np.ndarray) -> None:
        self.handles["src_fid"].write(batch.fids.astype("<i8").tobytes())
        self.handles["lat"].write(batch.latlon[:, 0].astype("<f8").tobytes())
        self.handles["lon"].write(batch.latlon[:, 1].astype("<f8").tobytes())
        self.handles["embeddings"].write(np.ascontiguousarray(values, dtype=self.dtype.newbyteorder("<")).tobytes())
        self.count += len(batch.fids)

    def close(self) -> None:
        if not self.handles:
            return
        for handle in self.handles.values():
            handle.close()
        self.handles = {}
        shapes = {"src_fid": ("<i8", (self.count,)), "lat": ("<f8", (self.count,)), "lon": ("<f8", (self.count,)),
                  "embeddings": (self.dtype.newbyteorder("<").str, (self.count, len(self.columns.values)))}
        with zipfile.ZipFile(self.tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for name, (descr, shape) in shapes.items():
                with archive.open(f"{name}.npy", "w", force_zip64=True) as out, open(self.parts[name], "rb") as raw:
                    np.lib.format.write_array_header_1_0(out, {"descr": descr, "fortran_order": False, "shape": shape})
                    while chunk := raw.read(1 << 24):
                        out.write(chunk)
                self.parts[name].unlink()
            with archive.open("columns.npy", "w") as out:
                np.lib.format.write_array(out, np.array(self.columns.values))

    def release(self) -> None:
        for handle in self.handles.values():
            handle.close()
        self.handles = {}

    def renames(self) -> list[tuple[Path, Path]]:
        return [(self.tmp, self.final)]


class ParquetWriter(_Writer):
    """The input's attributes, ``src_fid``, the embedding columns and lat/lon; one row group per batch."""

    def __init__(self, final: Path, in_fields: QgsFields, columns: Columns, dtype: np.dtype) -> None:
        super().__init__(final)
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError as exc:
            raise QgsProcessingException(
                f"Parquet output needs the Python package pyarrow, which is not importable here ({exc}). "
                "Install it in QGIS's Python (pip install pyarrow), or choose another format.") from exc
        self.pa = pa
        self.in_fields = [(f.name(), _arrow_type(pa, f.type())) for f in in_fields]
        value_type = pa.float32() if np.dtype(dtype) == np.float32 else pa.float64()
        self.dtype = np.dtype(dtype)
        self.columns = columns
        self.schema = pa.schema(
            [pa.field(name, kind) for name, kind in self.in_fields]
            + [pa.field(columns.fid, pa.int64())]
            + [pa.field(name, value_type) for name in columns.values]
            + [pa.field(columns.lat, pa.float64()), pa.field(columns.lon, pa.float64())])
        self.writer = pq.ParquetWriter(str(self.tmp), self.schema)

    def write(self, batch: PointBatch, values: np.ndarray) -> None:
        pa = self.pa
        arrays = []
        for i, (_, kind) in enumerate(self.in_fields):
            arrays.append(pa.array([_python_value(row[i], kind, pa) for row in batch.attributes], type=kind))
        arrays.append(pa.array(batch.fids, type=pa.int64()))
        values = np.asarray(values, dtype=self.dtype)
        arrays.extend(pa.array(values[:, j]) for j in range(values.shape[1]))
        arrays.append(pa.array(batch.latlon[:, 0]))
        arrays.append(pa.array(batch.latlon[:, 1]))
        self.writer.write_batch(pa.record_batch(arrays, schema=self.schema))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _arrow_type(pa, kind) -> object:
    """The Arrow type for a QGIS field type (QVariant or QMetaType code, by number)."""
    return {
        int(FieldType.INT): pa.int64(), int(FieldType.UINT): pa.int64(), int(FieldType.LONG): pa.int64(),
        int(FieldType.ULONG): pa.uint64(), int(FieldType.DOUBLE): pa.float64(), int(FieldType.BOOL): pa.bool_(),
        int(FieldType.DATE): pa.date32(), int(FieldType.DATETIME): pa.timestamp("ms"),
        int(FieldType.TIME): pa.time64("us"),
    }.get(field_type_code(kind), pa.string())


def _python_value(value, kind, pa):
    """A QGIS attribute value as the plain Python value pyarrow expects for ``kind``."""
    if type(value) in (int, float) or (type(value) is str and kind == pa.string()):
        return value  # the common case first: this runs for every attribute of every feature
    if is_null(value):
        return None
    for method in ("toPyDateTime", "toPyDate", "toPyTime"):
        if hasattr(value, method):
            return getattr(value, method)()
    if kind == pa.string() and not isinstance(value, str):
        return str(value)
    return value


# ---------------------------------------------------------------------------- streaming helpers
