"""``geoclip:gpsembeddings``: any vector layer -> its features with GeoCLIP's 512-d GPS embedding.

The layer streams through in batches of ``BATCH_SIZE`` points: while the location encoder works on
one batch (torch, in a helper thread) the previous one is written, so memory stays bounded by a
few batches whatever the layer size. Every format is written to a hidden temp file beside the
target and renamed only when complete (all Shapefile sidecars together); cancel or error leaves
nothing behind. With PCA the layer is read twice: pass 1 encodes, spills the embeddings to a temp
file and fits scikit-learn's IncrementalPCA; pass 2 projects them and writes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFields,
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingUtils,
    QgsWkbTypes,
)

from .base import GeoClipAlgorithm
from .embedding_writers import (
    DBF_FIELD_WARNING,
    EMBED_DIM,
    FORMATS,
    KNOWN_EXTENSIONS,
    PCA_USAGE,
    SHP_WIDTH,
    Columns,
    ExportCanceled,
    NpzWriter,
    ParquetWriter,
    VectorWriter,
    _Writer,
    gpkg_safe_fields,
    plan_columns,
)
from .geometry import PointBatch, SkipTally, iter_point_batches
from .gpkg_writer import GpkgWriter
from .outputs import ensure_writable_folder, refuse_existing, temp_sibling

BATCH_SIZE = 4096
WGS84 = QgsCoordinateReferenceSystem("EPSG:4326")


def encode_ahead(batches: Iterator[PointBatch], encode: Callable[[np.ndarray], np.ndarray]
                 ) -> Iterator[tuple[PointBatch, np.ndarray]]:
    """Yield (batch, embeddings) in order, encoding the next batch while the caller handles this one.

    torch releases the GIL, so reading and writing (Python + OGR) overlap with the encoder; at most
    three batches are in memory at a time.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="geoclip-encode") as pool:
        pending = None
        for batch in batches:
            future = pool.submit(encode, batch.latlon)
            if pending is not None:
                yield pending[0], pending[1].result()
            pending = (batch, future)
        if pending is not None:
            yield pending[0], pending[1].result()


def _check_latlon(batch: PointBatch) -> None:
    """Name the features whose transformed point is not a valid [lat, lon] (e.g. outside a CRS's area)."""
    lat, lon = batch.latlon[:, 0], batch.latlon[:, 1]
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(batch.latlon).all(axis=1) | (np.abs(lat) > 90) | (np.abs(lon) > 180)
    if bad.any():
        ids = ", ".join(str(int(f)) for f in batch.fids[bad][:10])
        raise QgsProcessingException(
            f"{int(bad.sum())} feature(s) give no valid WGS84 latitude/longitude (feature id {ids}): "
            "is the layer's CRS right?")


class _HeldBackPCA:
    """IncrementalPCA fed batch by batch; a short last batch joins the previous one (partial_fit needs
    at least ``n_components`` rows per call)."""

    def __init__(self, n_components: int) -> None:
        from sklearn.decomposition import IncrementalPCA

        self.pca = IncrementalPCA(n_components=n_components)
        self.k = n_components
        self.held: np.ndarray | None = None

    def add(self, values: np.ndarray) -> None:
        values = values.astype(np.float64)
        if self.held is None:
            self.held = values
        elif len(values) < self.k:
            self.held = np.concatenate([self.held, values])
        else:
            self.pca.partial_fit(self.held)
            self.held = values

    def finish(self):
        if self.held is not None:
            self.pca.partial_fit(self.held)
            self.held = None
        return self.pca


# ---------------------------------------------------------------------------- the algorithm
class GpsEmbeddings(GeoClipAlgorithm):
    """Export GeoCLIP GPS embeddings of a layer's features (optionally L2-normalised or PCA-reduced)."""

    INPUT = "INPUT"
    NORMALIZE = "NORMALIZE"
    PCA_COMPONENTS = "PCA_COMPONENTS"
    FORMAT = "FORMAT"
    LAYOUT = "LAYOUT"
    OUTPUT = "OUTPUT"
    LAYOUTS = ["One number field per value (e000…e511; readable in QGIS)",
               "One binary field 'embedding' (float32 array; GeoPackage only; half the size, ~2x faster)"]

    def name(self) -> str:
        return "gpsembeddings"

    def displayName(self) -> str:  # noqa: N802
        return "Export GeoCLIP GPS embeddings"

    def shortHelpString(self) -> str:  # noqa: N802
        return (
            "Adds GeoCLIP's 512-dimensional GPS embedding to every feature of a layer, for downstream "
            "classifiers and similarity search (as in the GeoCLIP paper's Geo-tagged NUS-WIDE experiment). "
            "Needs only the GeoCLIP weights: works offline, no image backbone.\n\n"
            "<b>Input layer</b>: any vector layer in any CRS ('Selected features only' exports just the "
            "selection). Points are used as they are; multipoints and lines by their centroid; polygons by a "
            "point on their surface (always inside, unlike a centroid). The point is taken in the layer's CRS, "
            "then transformed to WGS84. Features with a NULL or empty geometry are skipped and counted in the "
            "log; a latitude beyond ±90° in a geographic CRS stops the run naming the feature ids.\n"
            "<b>L2-normalise</b>: off gives the raw embedding of the reference implementation (what the "
            "model outputs); on scales each to unit length (cosine similarity = dot product).\n"
            "<b>PCA components</b>: 0 keeps all 512 values (e000…e511). N > 0 fits a PCA (scikit-learn "
            "IncrementalPCA, streamed) and writes N values pc000…; the fit is saved beside the output as "
            "&lt;output&gt;.pca.npz (components, mean, explained_variance_ratio, normalize) so new points "
            f"project the same way: <code>{PCA_USAGE}</code>.\n"
            "<b>Output format</b>: GeoPackage (default; values stored as exact doubles); ESRI Shapefile "
            "(field names fit the 10-character DBF limit; values as text with 15 decimals; beyond 255 fields "
            "some DBF readers fail, so use PCA with at most ~250 components to stay under); CSV with lat/lon "
            "columns; NumPy .npz (arrays src_fid, lat, lon, embeddings, columns; no other attributes: join on "
            "src_fid); Parquet (attributes, src_fid, one float column per value, lat, lon; needs pyarrow). "
            "The file name's extension follows the format.\n"
            "<b>Embedding fields</b>: one number field per value (default: usable in QGIS's attribute table, "
            "expressions and styling), or, for GeoPackage, a single binary field <b>embedding</b> (<b>pca</b> "
            "with PCA) holding the values as little-endian float32: half the file size and about twice as fast "
            "to write; read it with <code>numpy.frombuffer(blob, '&lt;f4')</code>.\n\n"
            "Every output has the input's attributes (not for .npz), <b>src_fid</b> (the input's feature id), "
            "the values and <b>lat</b>/<b>lon</b> (WGS84 degrees of the encoded point); GeoPackage and "
            "Shapefile outputs have that point as geometry (EPSG:4326) and are added to the project. "
            "A new column whose name the input already uses gets a suffix (_2) and the log says so. Existing "
            "files are never overwritten; the output is written to a temporary file and renamed when complete, "
            "so cancel or an error leaves no partial file."
        )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.INPUT, "Input layer", [QgsProcessing.TypeVectorAnyGeometry]))
        normalize = QgsProcessingParameterBoolean(self.NORMALIZE, "L2-normalise embeddings", defaultValue=False)
        normalize.setHelp("Off: the raw embedding, as the reference GeoCLIP outputs it. On: unit length.")
        self.addParameter(normalize)
        pca = QgsProcessingParameterNumber(
            self.PCA_COMPONENTS, "PCA components (0 = keep all 512 values)", QgsProcessingParameterNumber.Integer,
            defaultValue=0, minValue=0, maxValue=EMBED_DIM)
        pca.setHelp("N > 0: reduce to N principal components; the fit is saved as <output>.pca.npz.")
        self.addParameter(pca)
        self.addParameter(QgsProcessingParameterEnum(
            self.FORMAT, "Output format", options=[f.label for f in FORMATS], defaultValue=0))
        layout = QgsProcessingParameterEnum(self.LAYOUT, "Embedding fields", options=self.LAYOUTS, defaultValue=0)
        layout.setHelp("Number fields work everywhere in QGIS; the binary field is compact and fast (GeoPackage).")
        layout.setFlags(layout.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(layout)
        self.add_model_parameters(image_side=False)
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT, "Output file", ";;".join(f"{f.label} (*{f.extension})" for f in FORMATS)))
        self.addOutput(QgsProcessingOutputFile("PCA_FILE", "PCA fit (.pca.npz; empty without PCA)"))
        self.addOutput(QgsProcessingOutputNumber("FEATURE_COUNT", "Features exported"))
        self.addOutput(QgsProcessingOutputNumber("SKIPPED_COUNT", "Features skipped (no geometry)"))

    # ------------------------------------------------------------------ main thread: freeze inputs
    def prepareAlgorithm(self, parameters, context, feedback) -> bool:  # noqa: N802
        """Resolve the layer and every option on the calling (main) thread; the run sees plain data."""
        self.source = self.parameterAsSource(parameters, self.INPUT, context)
        if self.source is None:
            raise QgsProcessingException(self.invalidSourceError(parameters, self.INPUT))
        self.normalize = self.parameterAsBool(parameters, self.NORMALIZE, context)
        self.n_pca = self.parameterAsInt(parameters, self.PCA_COMPONENTS, context)
        self.fmt = FORMATS[self.parameterAsEnum(parameters, self.FORMAT, context)]
        self.packed = self.parameterAsEnum(parameters, self.LAYOUT, context) == 1
        raw = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        if not raw:
            raise QgsProcessingException("Choose an output file.")
        self.output = self._with_format_extension(Path(raw), feedback)
        self.project = context.project()
        return True

    def _with_format_extension(self, path: Path, feedback) -> Path:
        """The format decides the extension: 'x' or 'x.gpkg' with format CSV becomes 'x.csv' (logged)."""
        ext = self.fmt.extension
        if path.suffix.lower() == ext:
            return path
        fixed = path.with_suffix(ext) if path.suffix.lower() in KNOWN_EXTENSIONS else path.with_name(path.name + ext)
        feedback.pushInfo(f"Output format is {self.fmt.label}: writing {fixed.name} (not {path.name}).")
        return fixed

    def _targets(self) -> list[Path]:
        """Every file the run will create (Shapefile sidecars, the PCA fit), to refuse overwriting them."""
        out = self.output
        files = [out.with_suffix(ext) for ext in (".shp", ".shx", ".dbf", ".prj", ".cpg")] \
            if self.fmt.key == "shp" else [out]
        if self.n_pca:
            files.append(self.pca_path)
        return files

    @property
    def pca_path(self) -> Path:
        return self.output.with_name(self.output.name + ".pca.npz")

    # ------------------------------------------------------------------ worker thread: compute + write
    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        source, name = self.source, self.source.sourceName()
        if source.wkbType() == QgsWkbTypes.NoGeometry:
            raise QgsProcessingException(
                f"Layer '{name}' has no geometry (it is a table): GPS embeddings need point, line or polygon "
                "features.")
        total = source.featureCount()
        if total == 0:
            raise QgsProcessingException(
                f"Layer '{name}' has no features to export (with 'Selected features only', select some first).")
        if not source.sourceCrs().isValid():
            feedback.reportError(f"Layer '{name}' has no CRS: its coordinates are taken as WGS84 degrees.", False)
        if self.packed and self.fmt.key == "npz":
            self.packed = False  # .npz holds one array already
            feedback.pushInfo("'Embedding fields': .npz always stores the values as one array; option ignored.")
        elif self.packed and self.fmt.key != "gpkg":
            raise QgsProcessingException(
                f"'Embedding fields' = one binary field needs the GeoPackage format; {self.fmt.label} cannot "
                "hold it. Choose GeoPackage, or 'one number field per value'.")
        ensure_writable_folder(self.output.parent)
        for path in self._targets():
            refuse_existing(path)

        model = self.load_model(parameters, context, feedback)
        shapefile = self.fmt.key == "shp"
        n_values = self.n_pca or EMBED_DIM
        in_fields = source.fields() if self.fmt.key != "npz" else QgsFields()
        packed_name = ("pca" if self.n_pca else "embedding") if self.packed else None
        columns = plan_columns(in_fields.names(), n_values, "pc" if self.n_pca else "e", shapefile, packed_name)
        if self.fmt.key == "gpkg":
            in_fields = gpkg_safe_fields(in_fields, columns)
        self._log_plan(columns, in_fields, n_values, total, feedback)

        def encode(latlon: np.ndarray) -> np.ndarray:
            return model.encode_locations(latlon, normalize=self.normalize, batch_size=BATCH_SIZE)

        tally = SkipTally()
        run = _Run(self, source, context, feedback, columns, in_fields, encode, tally, total)
        started = time.perf_counter()
        try:
            count = run.export_pca() if self.n_pca else run.export()
            renames = run.writer.renames() + run.extra_renames
            _commit(renames)
        except BaseException:
            run.discard()
            raise
        seconds = time.perf_counter() - started
        for line in tally.messages(name):
            feedback.reportError(line, False)
        if tally.wrapped_longitudes:
            feedback.pushInfo(f"{tally.wrapped_longitudes} longitude(s) beyond ±180° were wrapped into [-180, 180].")
        feedback.pushInfo(f"Exported {count} feature(s) of '{name}' in {seconds:.1f} s "
                          f"({count / max(seconds, 1e-9):.0f} points/s) to {self.output}")
        if self.fmt.key in ("gpkg", "shp") and self.project is not None:
            details = QgsProcessingContext.LayerDetails(self.output.stem, self.project, self.OUTPUT)
            details.forceName = True
            details.layerTypeHint = QgsProcessingUtils.LayerHint.Vector
            context.addLayerToLoadOnCompletion(str(self.output), details)
        feedback.setProgress(100)
        return {
            self.OUTPUT: str(self.output),
            "PCA_FILE": str(self.pca_path) if self.n_pca else "",
            "FEATURE_COUNT": count,
            "SKIPPED_COUNT": tally.total,
        }

    def _log_plan(self, columns: Columns, in_fields: QgsFields, n_values: int, total: int, feedback) -> None:
        what = f"{n_values} PCA components" if self.n_pca else f"{n_values} embedding values"
        norm = "L2-normalised" if self.normalize else "raw (not normalised)"
        feedback.pushInfo(f"{total if total >= 0 else 'unknown number of'} feature(s) -> {what}, {norm}, "
                          f"{self.fmt.label}: {self.output}")
        if self.packed:
            feedback.pushInfo(f"The values go into one binary field '{columns.values[0]}': {n_values} little-endian "
                              "float32 per feature; numpy.frombuffer(blob, '<f4') reads them back.")
        if columns.renamed:
            pairs = ", ".join(f"{old} -> {new}" for old, new in columns.renamed[:12])
            more = f" and {len(columns.renamed) - 12} more" if len(columns.renamed) > 12 else ""
            feedback.reportError(
                f"{len(columns.renamed)} column name(s) clash (with the input's fields, or with GeoPackage's "
                f"integer key 'fid'), so they get a suffix; no values are lost: {pairs}{more}.", False)
        if self.fmt.key == "shp":
            n_fields = len(in_fields) + n_values + 3
            if n_fields > DBF_FIELD_WARNING:
                feedback.reportError(
                    f"Shapefile with {n_fields} fields: GDAL writes them, but some DBF readers only read the "
                    f"first {DBF_FIELD_WARNING} fields. To stay under {DBF_FIELD_WARNING}, set 'PCA components' "
                    f"to at most {max(1, DBF_FIELD_WARNING - len(in_fields) - 3)} (e.g. 64), or use GeoPackage.",
                    False)
            record = n_values * SHP_WIDTH + 2 * SHP_WIDTH + 20
            if total > 0 and total * record > 2**31:
                feedback.reportError(
                    f"The .dbf will be about {total * record / 2**30:.1f} GB: many programs cannot read DBF "
                    "files over 2 GB. GeoPackage or Parquet have no such limit.", False)


def _commit(renames: list[tuple[Path, Path]]) -> None:
    """Rename every temp file into place; if one fails, undo the others so no half output remains."""
    done: list[Path] = []
    try:
        for tmp, final in renames:
            os.replace(tmp, final)
            done.append(final)
    except OSError as exc:
        for path in done:
            path.unlink(missing_ok=True)
        raise QgsProcessingException(f"Could not move the finished output into place: {exc}") from exc


class _Run:
    """One export: streams batches from the source into the writer (one pass, or two with PCA)."""

    def __init__(self, alg: GpsEmbeddings, source, context, feedback, columns: Columns, in_fields: QgsFields,
                 encode: Callable[[np.ndarray], np.ndarray], tally: SkipTally, total: int) -> None:
        self.alg, self.source, self.context, self.feedback = alg, source, context, feedback
        self.columns, self.in_fields, self.encode, self.tally, self.total = columns, in_fields, encode, tally, total
        self.writer: _Writer | None = None
        self.extra_renames: list[tuple[Path, Path]] = []
        self.scratch: list[Path] = []

    # -------------------------------------------------------------- plumbing
    def _batches(self, attributes: bool, tally: SkipTally | None) -> Iterator[PointBatch]:
        for batch in iter_point_batches(self.source, self.context, self.feedback, BATCH_SIZE,
                                        attributes=attributes and self.alg.fmt.key != "npz",
                                        tally=tally if tally is not None else SkipTally()):
            _check_latlon(batch)
            yield batch
        self._check_canceled()

    def _check_canceled(self) -> None:
        if self.feedback.isCanceled():
            raise ExportCanceled("Canceled: no output was written.")

    def _progress(self, done: int, start: float, end: float) -> None:
        if self.total > 0:
            self.feedback.setProgress(start + (end - start) * min(1.0, done / self.total))

    def _open_writer(self, dtype) -> _Writer:
        alg, final = self.alg, self.alg.output
        if alg.fmt.key == "npz":
            return NpzWriter(final, self.columns, dtype)
        if alg.fmt.key == "parquet":
            return ParquetWriter(final, self.in_fields, self.columns, dtype)
        if alg.fmt.key == "gpkg":
            return GpkgWriter(final, self.in_fields, self.columns, self.context, packed=alg.packed)
        return VectorWriter(final, alg.fmt, self.in_fields, self.columns, self.context)

    def _no_points(self) -> QgsProcessingException:
        name = self.source.sourceName()
        return QgsProcessingException(
            f"None of the features of '{name}' has a usable geometry ({self.tally.total} skipped: "
            f"{', '.join(self.tally.counts) or 'none read'}); nothing was written.")

    def discard(self) -> None:
        """Remove every file this run created (also those of a writer that failed to open)."""
        if self.writer is not None:
            self.writer.discard()
        tmp = temp_sibling(self.alg.output)
        leftovers = [p for p in tmp.parent.iterdir() if p.name.startswith(tmp.stem + ".")]
        for path in [*leftovers, *(t for t, _ in self.extra_renames), *self.scratch]:
            path.unlink(missing_ok=True)

    # -------------------------------------------------------------- one pass
    def export(self) -> int:
        count = 0
        for batch, values in encode_ahead(self._batches(True, self.tally), self.encode):
            self._check_canceled()
            if self.writer is None:
                self.writer = self._open_writer(np.float32)
            self.writer.write(batch, values)
            count += len(batch.fids)
            self._progress(count + self.tally.total, 0, 100)
        if count == 0:
            raise self._no_points()
        self._check_canceled()
        self.writer.close()
        return count

    # -------------------------------------------------------------- PCA: fit pass, then project + write pass
    def export_pca(self) -> int:
        k = self.alg.n_pca
        spill = temp_sibling(self.alg.output.with_name(self.alg.output.name + ".spill"))
        self.scratch += [spill, spill.with_name(spill.name + ".fid")]
        pca, count = _HeldBackPCA(k), 0
        self.feedback.setProgressText(f"Pass 1 of 2: encoding and fitting a {k}-component PCA…")
        with open(spill, "wb") as values_out, open(self.scratch[1], "wb") as fids_out:
            for batch, values in encode_ahead(self._batches(False, self.tally), self.encode):
                self._check_canceled()
                values_out.write(values.tobytes())
                fids_out.write(batch.fids.tobytes())
                pca.add(values)
                count += len(batch.fids)
                self._progress(count + self.tally.total, 0, 50)
        if count == 0:
            raise self._no_points()
        if count < k:
            raise QgsProcessingException(
                f"PCA with {k} components needs at least {k} points; '{self.source.sourceName()}' has {count} "
                "usable feature(s). Lower 'PCA components' or set it to 0.")
        fitted = pca.finish()
        self.feedback.pushInfo(f"PCA: {k} components keep {100 * fitted.explained_variance_ratio_.sum():.1f}% of "
                               "the embeddings' variance.")
        written = 0
        self.feedback.setProgressText("Pass 2 of 2: projecting and writing…")
        with open(spill, "rb") as values_in, open(self.scratch[1], "rb") as fids_in:
            for batch in self._batches(True, None):
                self._check_canceled()
                n = len(batch.fids)
                fids = np.frombuffer(fids_in.read(8 * n), dtype=np.int64)
                if not np.array_equal(fids, batch.fids):
                    raise QgsProcessingException(
                        f"Layer '{self.source.sourceName()}' changed while it was exported (features came back in "
                        "another order); nothing was written. Try again when it is not being edited.")
                values = np.frombuffer(values_in.read(4 * EMBED_DIM * n), dtype=np.float32).reshape(n, EMBED_DIM)
                if self.writer is None:
                    self.writer = self._open_writer(np.float64)
                self.writer.write(batch, fitted.transform(values.astype(np.float64)))
                written += n
                self._progress(written, 50, 100)
        if written != count:
            raise QgsProcessingException(f"Layer '{self.source.sourceName()}' changed while it was exported; "
                                         "nothing was written.")
        self.writer.close()
        self._save_pca(fitted)
        for path in self.scratch:
            path.unlink(missing_ok=True)
        return count

    def _save_pca(self, fitted) -> None:
        final = self.alg.pca_path
        tmp = temp_sibling(final)
        self.extra_renames.append((tmp, final))
        with open(tmp, "wb") as out:
            np.savez(out, components=fitted.components_.astype(np.float64), mean=fitted.mean_.astype(np.float64),
                     explained_variance=fitted.explained_variance_,
                     explained_variance_ratio=fitted.explained_variance_ratio_,
                     singular_values=fitted.singular_values_, n_samples=np.int64(fitted.n_samples_seen_),
                     normalize=np.bool_(self.alg.normalize), columns=np.array(self.columns.values),
                     usage=np.array(PCA_USAGE))
