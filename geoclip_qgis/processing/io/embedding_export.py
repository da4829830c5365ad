"""The streaming part of ``geoclip:gpsembeddings``: batches in, encoder ahead in a thread, writers out.

Split from the algorithm module (parameters, checks, log) so each stays small. One pass without
PCA; with PCA, pass 1 encodes, spills the embeddings to a temp file and fits scikit-learn's
IncrementalPCA, pass 2 projects and writes. Outputs are committed all together or not at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from qgis.core import QgsFields, QgsProcessingException, QgsProcessingMultiStepFeedback

from model_utils.constants import EMBED_DIM
from model_utils.downstream.pca import StreamingPCA, save_pca
from model_utils.safe_files import commit_renames, temp_sibling

from .embedding_writers import (
    Columns,
    ExportCanceled,
    NpzWriter,
    OutputFormat,
    ParquetWriter,
    VectorWriter,
    _Writer,
)
from .geometry import PointBatch, SkipTally, iter_point_batches
from .gpkg_writer import GpkgWriter

BATCH_SIZE = 4096


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
    from model_utils.geo import invalid_latlon

    bad = invalid_latlon(batch.latlon)
    if bad.any():
        ids = ", ".join(str(int(f)) for f in batch.fids[bad][:10])
        raise QgsProcessingException(
            f"{int(bad.sum())} feature(s) give no valid WGS84 latitude/longitude (feature id {ids}): "
            "is the layer's CRS right?")


# ---------------------------------------------------------------------------- the algorithm
def commit(renames: list[tuple[Path, Path]]) -> None:
    """Rename every temp file into place; if one fails, undo the others so no half output remains."""
    try:
        commit_renames(renames)
    except OSError as exc:
        raise QgsProcessingException(f"Could not move the finished output into place: {exc}") from exc


@dataclass(frozen=True)
class ExportJob:
    """An export's options, read from the parameters on the main thread."""

    source: Any  # the QgsProcessingFeatureSource
    fmt: OutputFormat
    packed: bool  # the values in one binary field (GeoPackage)
    normalize: bool
    n_pca: int  # 0: the 512 values themselves
    output: Path
    project: Any  # the QgsProject to load the result into, or None
    model_choices: tuple[tuple[str, Any], ...]

    @property
    def pca_path(self) -> Path:
        return self.output.with_name(self.output.name + ".pca.npz")

    def targets(self) -> list[Path]:
        """Every file the run will create (Shapefile sidecars, the PCA fit), to refuse overwriting them."""
        files = [self.output.with_suffix(ext) for ext in (".shp", ".shx", ".dbf", ".prj", ".cpg")] \
            if self.fmt.key == "shp" else [self.output]
        if self.n_pca:
            files.append(self.pca_path)
        return files


class ExportRun:
    """One export: streams batches from the source into the writer (one pass, or two with PCA)."""

    def __init__(self, job: ExportJob, context, feedback, columns: Columns, in_fields: QgsFields,
                 encode: Callable[[np.ndarray], np.ndarray], tally: SkipTally, total: int) -> None:
        self.job, self.source, self.context, self.feedback = job, job.source, context, feedback
        self.columns, self.in_fields, self.encode, self.tally, self.total = columns, in_fields, encode, tally, total
        self.writer: _Writer | None = None
        self.extra_renames: list[tuple[Path, Path]] = []
        self.scratch: list[Path] = []

    # -------------------------------------------------------------- plumbing
    def _batches(self, attributes: bool, tally: SkipTally | None) -> Iterator[PointBatch]:
        for batch in iter_point_batches(self.source, self.context, self.feedback, BATCH_SIZE,
                                        attributes=attributes and self.job.fmt.key != "npz",
                                        tally=tally if tally is not None else SkipTally()):
            _check_latlon(batch)
            yield batch
        self._check_canceled()

    def _check_canceled(self) -> None:
        if self.feedback.isCanceled():
            raise ExportCanceled("Canceled: no output was written.")

    def _progress(self, done: int, feedback=None) -> None:
        """Share of the layer done, on ``feedback`` (a pass of a two-pass export) or the run's own."""
        if self.total > 0:
            (feedback or self.feedback).setProgress(100.0 * min(1.0, done / self.total))

    def _open_writer(self, dtype) -> _Writer:
        job, final = self.job, self.job.output
        if job.fmt.key == "npz":
            return NpzWriter(final, self.columns, dtype)
        if job.fmt.key == "parquet":
            return ParquetWriter(final, self.in_fields, self.columns, dtype)
        if job.fmt.key == "gpkg":
            return GpkgWriter(final, self.in_fields, self.columns, self.context, packed=job.packed)
        return VectorWriter(final, job.fmt, self.in_fields, self.columns, self.context)

    def _no_points(self) -> QgsProcessingException:
        name = self.source.sourceName()
        return QgsProcessingException(
            f"None of the features of '{name}' has a usable geometry ({self.tally.total} skipped: "
            f"{', '.join(self.tally.counts) or 'none read'}); nothing was written.")

    def discard(self) -> None:
        """Remove every file this run created (also those of a writer that failed to open)."""
        if self.writer is not None:
            self.writer.discard()
        tmp = temp_sibling(self.job.output)
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
            self._progress(count + self.tally.total)
        if count == 0:
            raise self._no_points()
        self._check_canceled()
        self.writer.close()
        return count

    # -------------------------------------------------------------- PCA: fit pass, then project + write pass
    def export_pca(self) -> int:
        k = self.job.n_pca
        spill = temp_sibling(self.job.output.with_name(self.job.output.name + ".spill"))
        self.scratch += [spill, spill.with_name(spill.name + ".fid")]
        pca, count = StreamingPCA(k), 0
        passes = QgsProcessingMultiStepFeedback(2, self.feedback)  # two equal halves of the progress bar
        passes.setCurrentStep(0)
        self.feedback.setProgressText(f"Pass 1 of 2: encoding and fitting a {k}-component PCA…")
        with open(spill, "wb") as values_out, open(self.scratch[1], "wb") as fids_out:
            for batch, values in encode_ahead(self._batches(False, self.tally), self.encode):
                self._check_canceled()
                values_out.write(values.tobytes())
                fids_out.write(batch.fids.tobytes())
                pca.add(values)
                count += len(batch.fids)
                self._progress(count + self.tally.total, passes)
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
        passes.setCurrentStep(1)
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
                self._progress(written, passes)
        if written != count:
            raise QgsProcessingException(f"Layer '{self.source.sourceName()}' changed while it was exported; "
                                         "nothing was written.")
        self.writer.close()
        self._save_pca(fitted)
        for path in self.scratch:
            path.unlink(missing_ok=True)
        return count

    def _save_pca(self, fitted) -> None:
        final = self.job.pca_path
        tmp = temp_sibling(final)
        self.extra_renames.append((tmp, final))
        with open(tmp, "wb") as out:
            save_pca(fitted, out, normalize=self.job.normalize, columns=list(self.columns.values))
