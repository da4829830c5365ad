"""``geoclip:gpsembeddings``: any vector layer -> its features with GeoCLIP's 512-d GPS embedding.

The layer streams through in batches of ``BATCH_SIZE`` points: while the location encoder works on
one batch (torch, in a helper thread) the previous one is written, so memory stays bounded by a
few batches whatever the layer size. Every format is written to a hidden temp file beside the
target and renamed only when complete (all Shapefile sidecars together); cancel or error leaves
nothing behind. With PCA the layer is read twice: pass 1 encodes, spills the embeddings to a temp
file and fits scikit-learn's IncrementalPCA; pass 2 projects them and writes.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from qgis.core import (
    QgsFields,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingUtils,
)

from model_utils.constants import EMBED_DIM
from model_utils.downstream.pca import PCA_USAGE

from ...compat import FLAG_ADVANCED, NUMBER_INTEGER, SOURCE_VECTOR_ANY, WKB_NO_GEOMETRY
from ...i18n import tr
from .. import definitions as d
from ..base import GeoClipAlgorithm
from ..io.embedding_export import BATCH_SIZE, ExportJob, ExportRun, commit
from ..io.embedding_writers import (
    DBF_FIELD_WARNING,
    FORMATS,
    LAYOUT_LABELS,
    SHP_WIDTH,
    Columns,
    FieldLayout,
    OutputFormat,
    gpkg_safe_fields,
    plan_columns,
)
from ..io.geometry import SkipTally
from ..io.outputs import ensure_writable_folder, refuse_existing


class GpsEmbeddings(GeoClipAlgorithm):
    """Export GeoCLIP GPS embeddings of a layer's features (optionally L2-normalised or PCA-reduced)."""


    def name(self) -> str:
        return "gpsembeddings"

    def displayName(self) -> str:  # noqa: N802
        return tr("Export GeoCLIP GPS embeddings")

    def shortHelpString(self) -> str:  # noqa: N802
        return (
            tr("Adds GeoCLIP's 512-dimensional GPS embedding to every feature of a layer, for downstream "
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
            "project the same way: <code>{pca_usage}</code>.\n"
            "<b>Output format</b>: GeoPackage (default; values stored as exact doubles); ESRI Shapefile "
            "(field names fit the 10-character DBF limit; values as text with 15 decimals; beyond 255 fields "
            "some DBF readers fail, so use PCA with at most ~250 components to stay under); CSV with lat/lon "
            "columns; NumPy .npz (arrays src_fid, lat, lon, embeddings, columns; no other attributes: join on "
            "src_fid); Parquet (attributes, src_fid, one float column per value, lat, lon; needs pyarrow). "
            "A file name without extension gets the format's; from qgis_process or a script, a typed extension "
            "(out.shp) picks the format when none is given, and a format that contradicts it is refused.\n"
            "<b>Embedding fields</b>: one number field per value (default: usable in QGIS's attribute table, "
            "expressions and styling), or, for GeoPackage, a single binary field <b>embedding</b> (<b>pca</b> "
            "with PCA) holding the values as little-endian float32: half the file size and about twice as fast "
            "to write; read it with <code>numpy.frombuffer(blob, '&lt;f4')</code>.\n\n"
            "Every output has the input's attributes (not for .npz), <b>src_fid</b> (the input's feature id), "
            "the values and <b>lat</b>/<b>lon</b> (WGS84 degrees of the encoded point); GeoPackage and "
            "Shapefile outputs have that point as geometry (EPSG:4326) and are added to the project. "
            "A new column whose name the input already uses gets a suffix (_2) and the log says so. Existing "
            "files are never overwritten; the output is written to a temporary file and renamed when complete, "
            "so cancel or an error leaves no partial file.").format(pca_usage=PCA_USAGE)
        )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterFeatureSource(
            d.INPUT, tr("Input layer"), [SOURCE_VECTOR_ANY]))
        normalize = QgsProcessingParameterBoolean(d.NORMALIZE, tr("L2-normalise embeddings"), defaultValue=False)
        normalize.setHelp("Off: the raw embedding, as the reference GeoCLIP outputs it. On: unit length.")
        self.addParameter(normalize)
        pca = QgsProcessingParameterNumber(
            d.PCA_COMPONENTS, tr("PCA components (0 = keep all 512 values)"), NUMBER_INTEGER,
            defaultValue=0, minValue=0, maxValue=EMBED_DIM)
        pca.setHelp("N > 0: reduce to N principal components; the fit is saved as <output>.pca.npz.")
        self.addParameter(pca)
        self.addParameter(QgsProcessingParameterEnum(
            d.FORMAT, tr("Output format"), options=[f.label for f in FORMATS], defaultValue=0))
        layout = QgsProcessingParameterEnum(d.LAYOUT, tr("Embedding fields"),
                                            options=[LAYOUT_LABELS[m] for m in FieldLayout],
                                            defaultValue=int(FieldLayout.FIELDS))
        layout.setHelp("Number fields work everywhere in QGIS; the binary field is compact and fast (GeoPackage).")
        layout.setFlags(layout.flags() | FLAG_ADVANCED)
        self.addParameter(layout)
        self.add_model_parameters(image_side=False)
        self.addParameter(QgsProcessingParameterFileDestination(
            d.OUTPUT, tr("Output file"), ";;".join(f"{f.label} (*{f.extension})" for f in FORMATS)))
        self.addOutput(QgsProcessingOutputFile(d.PCA_FILE, tr("PCA fit (.pca.npz; empty without PCA)")))
        self.addOutput(QgsProcessingOutputNumber(d.FEATURE_COUNT, tr("Features exported")))
        self.addOutput(QgsProcessingOutputNumber(d.SKIPPED_COUNT, tr("Features skipped (no geometry)")))

    # ------------------------------------------------------------------ main thread: freeze inputs
    def prepare(self, parameters, context, feedback) -> ExportJob:
        """The layer and every option, resolved on the calling (main) thread; the run sees plain data."""
        source = self.parameterAsSource(parameters, d.INPUT, context)
        if source is None:
            raise QgsProcessingException(self.invalidSourceError(parameters, d.INPUT))
        raw = self.parameterAsFileOutput(parameters, d.OUTPUT, context)
        if not raw:
            raise QgsProcessingException("Choose an output file.")
        fmt, output = _format_and_path(Path(raw), parameters.get(d.FORMAT) not in (None, ""),
                                       FORMATS[self.parameterAsEnum(parameters, d.FORMAT, context)], feedback)
        packed = self.parameterAsEnum(parameters, d.LAYOUT, context) == FieldLayout.PACKED
        if packed and fmt.key == "npz":
            packed = False  # .npz holds one array already
            feedback.pushInfo("'Embedding fields': .npz always stores the values as one array; option ignored.")
        elif packed and fmt.key != "gpkg":
            raise QgsProcessingException(
                f"'Embedding fields' = one binary field needs the GeoPackage format; {fmt.label} cannot "
                "hold it. Choose GeoPackage, or 'one number field per value'.")
        return ExportJob(source=source, fmt=fmt, packed=packed,
                         normalize=self.parameterAsBool(parameters, d.NORMALIZE, context),
                         n_pca=self.parameterAsInt(parameters, d.PCA_COMPONENTS, context),
                         output=output, project=context.project(),
                         model_choices=tuple(sorted(self.model_choices(parameters, context).items())))

    # ------------------------------------------------------------------ worker thread: compute + write
    def process(self, parameters, context, feedback):
        job: ExportJob = self.job
        source, name = job.source, job.source.sourceName()
        if source.wkbType() == WKB_NO_GEOMETRY:
            raise QgsProcessingException(
                f"Layer '{name}' has no geometry (it is a table): GPS embeddings need point, line or polygon "
                "features.")
        total = source.featureCount()
        if total == 0:
            raise QgsProcessingException(
                f"Layer '{name}' has no features to export (with 'Selected features only', select some first).")
        if not source.sourceCrs().isValid():
            feedback.reportError(f"Layer '{name}' has no CRS: its coordinates are taken as WGS84 degrees.", False)
        ensure_writable_folder(job.output.parent)
        for path in job.targets():
            refuse_existing(path)

        model = self.load_model(dict(job.model_choices), feedback)
        shapefile = job.fmt.key == "shp"
        n_values = job.n_pca or EMBED_DIM
        in_fields = source.fields() if job.fmt.key != "npz" else QgsFields()
        packed_name = ("pca" if job.n_pca else "embedding") if job.packed else None
        columns = plan_columns(in_fields.names(), n_values, "pc" if job.n_pca else "e", shapefile, packed_name)
        if job.fmt.key == "gpkg":
            in_fields = gpkg_safe_fields(in_fields, columns)
        _log_plan(job, columns, in_fields, n_values, total, feedback)

        def encode(latlon: np.ndarray) -> np.ndarray:
            return model.encode_locations(latlon, normalize=job.normalize, batch_size=BATCH_SIZE)

        tally = SkipTally()
        run = ExportRun(job, context, feedback, columns, in_fields, encode, tally, total)
        started = time.perf_counter()
        try:
            count = run.export_pca() if job.n_pca else run.export()
            renames = run.writer.renames() + run.extra_renames
            commit(renames)
        except BaseException:
            run.discard()
            raise
        seconds = time.perf_counter() - started
        for line in tally.messages(name):
            feedback.reportError(line, False)
        if tally.wrapped_longitudes:
            feedback.pushInfo(f"{tally.wrapped_longitudes} longitude(s) beyond ±180° were wrapped into [-180, 180].")
        feedback.pushInfo(f"Exported {count} feature(s) of '{name}' in {seconds:.1f} s "
                          f"({count / max(seconds, 1e-9):.0f} points/s) to {job.output}")
        if job.fmt.key in ("gpkg", "shp") and job.project is not None:
            details = QgsProcessingContext.LayerDetails(job.output.stem, job.project, d.OUTPUT)
            details.forceName = True
            details.layerTypeHint = QgsProcessingUtils.LayerHint.Vector
            context.addLayerToLoadOnCompletion(str(job.output), details)
        feedback.setProgress(100)
        return {
            d.OUTPUT: str(job.output),
            d.PCA_FILE: str(job.pca_path) if job.n_pca else "",
            d.FEATURE_COUNT: count,
            d.SKIPPED_COUNT: tally.total,
        }



def _format_and_path(path: Path, chosen: bool, fmt: OutputFormat, feedback) -> tuple[OutputFormat, Path]:
    """The format and file to write. A known extension the user typed decides the format when no format was
    chosen ('out.shp' writes a Shapefile); a chosen format that contradicts it is refused before any work;
    a name without a known extension gets the format's ('out' with GeoPackage writes 'out.gpkg')."""
    typed = next((f for f in FORMATS if f.extension == path.suffix.lower()), None)
    if typed is None:
        fixed = path.with_name(path.name + fmt.extension)
        feedback.pushInfo(f"Output format is {fmt.label}: writing {fixed.name}.")
        return fmt, fixed
    if typed.key == fmt.key or not chosen:
        return typed, path
    raise QgsProcessingException(
        f"The output file '{path.name}' is a {typed.label} name but the output format is {fmt.label}. Choose "
        f"{typed.label} as the format, or name the file '{path.stem}{fmt.extension}'.")


def _log_plan(job: ExportJob, columns: Columns, in_fields: QgsFields, n_values: int, total: int, feedback) -> None:
    what = f"{n_values} PCA components" if job.n_pca else f"{n_values} embedding values"
    norm = "L2-normalised" if job.normalize else "raw (not normalised)"
    feedback.pushInfo(f"{total if total >= 0 else 'unknown number of'} feature(s) -> {what}, {norm}, "
                      f"{job.fmt.label}: {job.output}")
    if job.packed:
        feedback.pushInfo(f"The values go into one binary field '{columns.values[0]}': {n_values} little-endian "
                          "float32 per feature; numpy.frombuffer(blob, '<f4') reads them back.")
    if columns.renamed:
        pairs = ", ".join(f"{old} -> {new}" for old, new in columns.renamed[:12])
        more = f" and {len(columns.renamed) - 12} more" if len(columns.renamed) > 12 else ""
        feedback.reportError(
            f"{len(columns.renamed)} column name(s) clash (with the input's fields, or with GeoPackage's "
            f"integer key 'fid'), so they get a suffix; no values are lost: {pairs}{more}.", False)
    if job.fmt.key == "shp":
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
