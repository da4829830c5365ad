"""Build or update a reference collection: every photo embedded once, ever.

A photo's embedding is found by the SHA-256 of its bytes in the previous index (so a renamed or moved
photo is not embedded again), and a file whose path, size and mtime are unchanged is not even read to hash
it. Only new content goes through the backbone, by the same image pipeline as predictions
(``predictor.iter_batches``). Photos without a position are listed and left out; files that cannot be read
are named with the reason, as predictions do; a second file with the same content is listed as a duplicate.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..constants import EMBED_DIM
from ..photos.images import DEFAULT_MAX_PIXELS, PhotoError, read_exif_gps
from ..progress import IsCanceled, Progress
from .index import CollectionError, ReferenceCollection, empty_collection, model_key, read_index, write_index
from .sources import Candidate, candidates

HASH_SHARE = 0.1  # of the progress bar: checking and hashing files (embedding takes the rest)


@dataclass
class BuildReport:
    """What a build did: the collection and where its index is, how many photos were embedded now and how many
    came from the index, and every photo left out (no position, unreadable, same content as another)."""

    collection: ReferenceCollection
    index: Path
    source: str
    embedded: int = 0
    reused: int = 0
    hashed: int = 0
    without_position: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    note: str = ""
    fit: object = None  # the FitResult kept in the index (fitted now or earlier), or None
    fit_error: str = ""  # why there is no fit (too few photos)

    def text(self) -> str:
        lines = [f"Reference collection from {self.source}: {len(self.collection)} photos with a position "
                 f"({self.embedded} embedded now, {self.reused} from the index {self.index})."]
        if self.note:
            lines.append(f"  index: {self.note}")
        if self.without_position:
            lines.append(f"  {len(self.without_position)} without a position (no EXIF GPS, no coordinates), left "
                         f"out: " + ", ".join(Path(p).name for p in self.without_position[:10])
                         + (" ..." if len(self.without_position) > 10 else ""))
        lines += [f"  skipped: {message}" for _, message in self.failed]
        lines += [f"  duplicate: {path} has the same content as {kept}" for path, kept in self.duplicates]
        if self.fit_error:
            lines.append(f"  not fitted: {self.fit_error}")
        return "\n".join(lines)


@dataclass
class ReferenceRow:
    """One photo of the collection being built: where it is, where it was taken, its content and embedding."""

    path: str
    lat: float
    lon: float
    digest: bytes
    stat: tuple[int, int]
    embedding: np.ndarray | None = None


def default_index_path(source, cache_dir: Path | None = None) -> Path:
    """Where a collection's index lives when the caller names none: under the embedding cache, named after
    the folder or table (or the common folder of a list of photos) and a hash of its absolute path."""
    from ..model.gallery import default_cache_dir

    if isinstance(source, (str, os.PathLike)):
        where = Path(source).expanduser().absolute()
    else:
        paths = [os.fspath(c.path) for c in source]
        where = Path(os.path.commonpath([os.path.abspath(p) for p in paths])) if paths else Path("empty")
    tag = hashlib.sha256(str(where).encode()).hexdigest()[:12]
    return (cache_dir or default_cache_dir()) / "references" / f"{where.stem[:40] or 'photos'}-{tag}.safetensors"


def build_collection(model, source, index: str | os.PathLike | None = None, recursive: bool = True,
                     fit: bool = True, batch_size: int = 8, max_pixels: int = DEFAULT_MAX_PIXELS,
                     progress: Progress | None = None, is_canceled: IsCanceled | None = None) -> BuildReport:
    """Build or update the collection of ``source`` (a folder of photos with EXIF GPS, a .csv / .parquet table
    of path + lat/lon, or (path, lat, lon) items) in ``index`` (default: under the embedding cache).

    With ``fit``, the fusion is fitted on the collection by leave-one-out (``fit_collection``) and kept in the
    index; a fit is kept as long as the photos and positions stay the same.
    """
    found, description = candidates(source, recursive=recursive)
    model.load_backbone()
    key = model_key(model)
    index = Path(index) if index is not None else default_index_path(
        source if isinstance(source, (str, os.PathLike)) else found, model.cache_dir)
    old, why = read_index(index, key)
    report = BuildReport(empty_collection(key), index, description, note="" if old or not index.exists() else why)
    rows = embed_candidates(model, found, old or empty_collection(key), report, batch_size, max_pixels, progress,
                            is_canceled)
    if not rows:
        raise CollectionError(f"No reference photo with a position could be used from {description}: "
                              + _why_empty(report, len(found)))
    collection = collection_from_rows(rows, key, {"source": description, "backbone": str(model.clip_model),
                                                  "precision": str(model.precision)})
    if old is not None and old.fit and old.fit.get("content") == collection.content_digest():
        from .fit import FitResult

        collection, report.fit = collection.with_fit(old.fit), FitResult.from_dict(old.fit)
    elif fit:
        collection = _fit(model, collection, report)
    report.collection = collection
    write_index(collection, index)
    return report


def embed_candidates(model, found: list[Candidate], old: ReferenceCollection, report: BuildReport,
                     batch_size: int = 8, max_pixels: int = DEFAULT_MAX_PIXELS, progress: Progress | None = None,
                     is_canceled: IsCanceled | None = None) -> list[ReferenceRow]:
    """The candidates that have a position and could be read, each with its embedding (from ``old`` when it
    holds the same content, else computed now); everything left out is recorded in ``report``."""
    rows = _check(found, old, report, _staged(progress, 0.0, HASH_SHARE), is_canceled)
    _embed(model, rows, report, batch_size, max_pixels, _staged(progress, HASH_SHARE, 1.0), is_canceled)
    return [r for r in rows if r.embedding is not None]


def collection_from_rows(rows: list[ReferenceRow], key: str, info: dict) -> ReferenceCollection:
    return ReferenceCollection(
        paths=tuple(r.path for r in rows), latlon=np.array([(r.lat, r.lon) for r in rows], dtype=np.float64),
        embeddings=np.stack([r.embedding for r in rows]).astype(np.float32),
        digests=np.frombuffer(b"".join(r.digest for r in rows), dtype=np.uint8).reshape(-1, 32),
        stats=np.array([r.stat for r in rows], dtype=np.int64), model=key, info=info)


def _fit(model, collection: ReferenceCollection, report: BuildReport) -> ReferenceCollection:
    from .fit import fit_or_reason

    report.fit, report.fit_error = fit_or_reason(model, collection)
    return collection.with_fit(report.fit.to_dict()) if report.fit else collection


def _why_empty(report: BuildReport, n_found: int) -> str:
    if n_found == 0:
        return "it holds no photos. Check the folder or table."
    return (f"of {n_found} photos, {len(report.without_position)} have no position (EXIF GPS or coordinates) and "
            f"{len(report.failed)} cannot be read. Add GPS positions (a table of path, lat, lon) or other photos.")


def _check(found: list[Candidate], old: ReferenceCollection, report: BuildReport, progress: Progress | None,
           is_canceled) -> list[ReferenceRow]:
    """Each candidate's position and content digest; its embedding when the index already has that content."""
    old_paths = {p: i for i, p in enumerate(old.paths)}
    old_digests = old.digest_rows()
    seen: dict[bytes, str] = {}
    rows = []
    for i, cand in enumerate(found):
        if is_canceled is not None and is_canceled():
            from ..errors import Canceled

            raise Canceled("Canceled while checking the reference photos")
        try:
            position = cand.position or read_exif_gps(cand.path)
            if position is None:
                report.without_position.append(cand.path)
                continue
            stat, digest = _digest(cand.path, old, old_paths.get(cand.path), report)
        except PhotoError as exc:
            report.failed.append((cand.path, str(exc)))
            continue
        if digest in seen:
            report.duplicates.append((cand.path, seen[digest]))
            continue
        seen[digest] = cand.path
        row = ReferenceRow(cand.path, position[0], position[1], digest, stat)
        if digest in old_digests:
            row.embedding = old.embeddings[old_digests[digest]]
            report.reused += 1
        rows.append(row)
        if progress is not None and (i % 200 == 0 or i + 1 == len(found)):
            progress((i + 1) / len(found), f"Checked {i + 1}/{len(found)} reference photos")
    return rows


def _digest(path: str, old: ReferenceCollection, old_row: int | None, report: BuildReport) -> tuple[tuple, bytes]:
    """((size, mtime_ns), SHA-256 of the bytes): from the index when the file's size and mtime are unchanged."""
    try:
        st = os.stat(path)
        stat = (int(st.st_size), int(st.st_mtime_ns))
        if old_row is not None and tuple(int(v) for v in old.stats[old_row]) == stat:
            return stat, bytes(old.digests[old_row])
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
    except OSError as exc:
        raise PhotoError.from_os_error(exc, f"Photo '{path}'", "read", "read",
                                       "Check the file and folder permissions.") from None
    report.hashed += 1
    return stat, digest.digest()


def _embed(model, rows: list[ReferenceRow], report: BuildReport, batch_size: int, max_pixels: int,
           progress: Progress | None, is_canceled) -> None:
    """Embed the rows the index did not have, through the predictions' image pipeline; failures are named."""
    from ..model.predictor import iter_batches

    todo = [r for r in rows if r.embedding is None]
    if not todo:
        return
    for batch in iter_batches([r.path for r in todo], model.image_encoder(max_pixels), batch_size, progress,
                              is_canceled, verb="embedded"):
        report.failed += [(todo[index].path, message) for index, _, message in batch.bad]
        if batch.feats is not None:
            feats = batch.feats.float().cpu().numpy().reshape(-1, EMBED_DIM)
            for (index, _, _), vector in zip(batch.good, feats):
                todo[index].embedding = vector
        report.embedded += len(batch.good)


def _staged(progress: Progress | None, start: float, stop: float) -> Progress | None:
    """``progress`` mapped onto [start, stop] of the whole bar."""
    if progress is None:
        return None
    return lambda fraction, message: progress(start + (stop - start) * fraction, message)
