"""``embed-photos``: a reference collection embedded on a Ray cluster, written as the index ``build_collection``
reads and updates locally (what ``geolocate --references`` does with one is in ``reference_matches``).

Each worker embeds whole shards through ``reference.build.embed_candidates`` (the local build's own code:
positions from the table or EXIF, content digests, the image pipeline), reusing the embeddings of an earlier
index (``--reuse``) for content it already holds. A shard is a GeoParquet file, one row per photo (the
left-out ones with their reason); when every shard is done the driver joins them into
``reference_index.safetensors`` (a second file with the same content is left out, as locally) and fits the
fusion there: the fit needs GeoCLIP's gallery and head, not the backbone.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..reference.index import INDEX_FILE
from ..reference.sources import Candidate
from ..safe_files import write_texts
from .plan import Plan, prepare_output, shard_path
from .reference_matches import driver_model_key

FIT_FILE = "reference_fit.txt"
NO_POSITION = "no position: no EXIF GPS and no coordinates in the table"


def embed_photos(photos: str, opts, reuse: str | None = None):
    """Embed every photo of ``photos`` (folder, glob, .parquet manifest, or a .csv/.parquet table with lat/lon)
    into ``opts.out``: shards, then the index and its fit. ``reuse``: an earlier index whose embeddings are kept."""
    from ..model.geoclip import GeoCLIP
    from .job import Summary, _connect, _count_resumed, _device, _finish, _model_args, _run_pool, say

    start = time.monotonic()
    found = reference_candidates(photos)
    model = GeoCLIP.from_pretrained(**_model_args(opts, "cpu"))  # location side only: the fit, the model's key
    key = driver_model_key(model)
    items = [f"{c.path}\t{c.lat!r}\t{c.lon!r}" for c in found]
    plan = Plan.make("embed-photos", items, opts.shard_size, {"model": key, "reuse": str(reuse or "")})
    todo = prepare_output(Path(opts.out), plan, opts.resume)
    summary = Summary("embed-photos", total=len(found), shards=plan.n_shards,
                      resumed_shards=plan.n_shards - len(todo))
    if todo:
        ray = _connect(opts)
        rows = [{"shard": s, "items": items[slice(*plan.bounds(s))]} for s in todo]
        worker_args = {"out": str(Path(opts.out).absolute()), "model_args": _model_args(opts, _device(opts)),
                       "key": key, "reuse": str(Path(reuse).absolute()) if reuse else "",
                       "batch_size": opts.batch_size, "threads": max(1, int(opts.cpus_per_worker))}
        _run_pool(ray, rows, EmbedPhotoShards, worker_args, opts, summary, plan)
    _count_resumed(plan, opts, summary, todo)
    index, fit_text = join_shards(model, plan, Path(opts.out), key, source=photos)
    summary.outputs.update(index=str(index), fit=str(Path(opts.out) / FIT_FILE))
    say(fit_text)
    return _finish(summary, opts, start)


def reference_candidates(photos: str) -> list[Candidate]:
    """A table (.csv, or .parquet with lat/lon columns) gives positions; a folder, glob or path manifest does not
    (EXIF then)."""
    from ..reference.sources import candidates
    from .sources import list_photos

    path = Path(photos).expanduser()
    if path.suffix.lower() == ".csv" or (path.suffix.lower() == ".parquet" and _has_positions(path)):
        return candidates(path)[0]
    return [Candidate(p) for p in list_photos(photos)]


def _has_positions(path: Path) -> bool:
    import pyarrow.parquet as pq

    from ..reference.sources import LAT_NAMES

    try:
        names = {n.lower() for n in pq.read_schema(path).names}
    except (OSError, ValueError):
        return False  # list_photos says what is wrong with it
    return bool(names & set(LAT_NAMES))


def reference_schema():
    import pyarrow as pa

    return pa.schema([("photo", pa.string()), ("lat", pa.float64()), ("lon", pa.float64()),
                      ("digest", pa.binary(32)), ("size", pa.int64()), ("mtime_ns", pa.int64()),
                      ("embedding", pa.list_(pa.float32())), ("error", pa.string()), ("geometry", pa.binary())])


def shard_columns(rows, report) -> dict[str, list]:
    """The embedded rows, then one row per photo left out (no position, unreadable, duplicate) with its reason."""
    from .geoparquet import wkb_point

    cols: dict[str, list] = {name: [] for name in reference_schema().names}
    left_out = [(p, NO_POSITION) for p in report.without_position] + list(report.failed) + \
        [(p, f"same content as {kept}") for p, kept in report.duplicates]
    for r in rows:
        values = (r.path, r.lat, r.lon, r.digest, r.stat[0], r.stat[1], r.embedding.tolist(), None,
                  wkb_point(r.lon, r.lat))
        for name, value in zip(cols, values):
            cols[name].append(value)
    for path, why in left_out:
        for name in cols:
            cols[name].append(path if name == "photo" else why if name == "error" else None)
    return cols


class EmbedPhotoShards:
    """A Ray actor: loads the model once, checks it embeds as the driver's key says, embeds whole shards."""

    def __init__(self, out: str, model_args: dict, key: str, reuse: str = "", batch_size: int = 8,
                 threads: int = 0) -> None:
        from ..reference.index import CollectionError, empty_collection, model_key, read_index
        from .workers import _load_model

        self.out, self.batch_size = Path(out), int(batch_size)
        self.model = _load_model(model_args, [], threads)
        self.model.load_backbone()
        if model_key(self.model) != key:
            raise CollectionError("This worker's CLIP backbone or GeoCLIP head differs from the driver's: give every "
                                  "node the same --clip-model folder and weights.")
        self.old = (read_index(reuse, key)[0] if reuse else None) or empty_collection(key)
        self.pid = os.getpid()

    def __call__(self, batch: dict) -> dict:
        from .workers import run_shards

        return run_shards(batch, self.run_shard, self.pid, self.out)

    def run_shard(self, shard: int, items: list[str]) -> tuple[int, int, str]:
        from ..reference.build import BuildReport, embed_candidates
        from .geoparquet import write_table
        from .workers import _reason, reason_text

        found = [_candidate(item) for item in items]
        report = BuildReport(self.old, Path(""), f"shard {shard}")
        rows = embed_candidates(self.model, found, self.old, report, self.batch_size)
        cols = shard_columns(rows, report)
        write_table(cols, reference_schema(), shard_path(self.out, shard))
        reasons = [_reason(e, p) for p, e in zip(cols["photo"], cols["error"]) if e]
        return len(rows), len(reasons), reason_text(reasons)


def _candidate(item: str) -> Candidate:
    path, lat, lon = item.rsplit("\t", 2)
    return Candidate(path, None if lat == "None" else float(lat), None if lon == "None" else float(lon))


def join_shards(model, plan: Plan, out: Path, key: str, source: str) -> tuple[Path, str]:
    """Every shard's embedded rows into one index (first of each content kept), fitted; (its path, the fit's table)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from ..reference.build import ReferenceRow, collection_from_rows
    from ..reference.fit import fit_or_reason
    from ..reference.index import write_index

    table = pq.read_table([shard_path(out, s) for s in range(plan.n_shards)])
    table = table.filter(pc.is_null(table.column("error")))
    emb = table.column("embedding").combine_chunks().flatten().to_numpy(zero_copy_only=False).reshape(-1, 512)
    seen: set[bytes] = set()
    rows = []
    for i, (path, lat, lon, digest, size, mtime) in enumerate(zip(*(table.column(c).to_pylist() for c in (
            "photo", "lat", "lon", "digest", "size", "mtime_ns")))):
        if digest not in seen:
            seen.add(digest)
            rows.append(ReferenceRow(path, lat, lon, digest, (size, mtime), emb[i]))
    if not rows:
        write_texts({out / FIT_FILE: "No photo with a position could be embedded: no index was written.\n"})
        return out / INDEX_FILE, "No photo with a position could be embedded: see the shards' error column."
    collection = collection_from_rows(rows, key, {"source": str(source), "backbone": str(model.clip_model),
                                                  "batch job": str(out)})
    fit, why = fit_or_reason(model, collection)
    collection = collection.with_fit(fit.to_dict()) if fit else collection
    text = fit.table() if fit else f"Not fitted: {why}"
    write_index(collection, out / INDEX_FILE)
    write_texts({out / FIT_FILE: text + "\n"})
    return out / INDEX_FILE, text
