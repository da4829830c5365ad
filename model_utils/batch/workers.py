"""The per-worker side of a batch job: an actor that loads the model once and does whole shards.

Ray Data keeps a pool of these (``map_batches`` with a class); each call gets a few shard rows,
writes each shard's GeoParquet file (and, for photos, its density vector) and returns counts
only, so nothing per photo travels back to the driver or piles up in the worker.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import numpy as np

from ..constants import DEFAULT_CELL_DEG, EMBED_DIM, WORLD_BANDWIDTH_KM
from ..safe_files import atomic_path
from .geoparquet import (
    embedding_schema,
    prediction_rows,
    prediction_schema,
    region_rows,
    wkb_point,
    write_regions,
    write_table,
)
from .plan import density_path, regions_path, shard_path

# Rehearsing failures: seconds each shard waits before it starts, so a test (or an operator trying
# the cluster's fault handling) can kill a worker, node or driver while the job is surely running.
REHEARSAL_DELAY_ENV = "GEOCLIP_BATCH_SHARD_DELAY_S"


def _load_model(model_args: dict, gallery_ref: list, threads: int):
    import torch

    from ..model.geoclip import GeoCLIP

    if threads > 0:
        torch.set_num_threads(threads)
    model = GeoCLIP.from_pretrained(**model_args)
    if gallery_ref:
        model.use_gallery_embeddings(_shared(gallery_ref[0]))
    return model


def _shared(value):
    """A value the driver put in Ray's object store (or, in tests without Ray, the value itself)."""
    import ray

    return ray.get(value) if isinstance(value, ray.ObjectRef) else value


def _delay() -> None:
    seconds = float(os.environ.get(REHEARSAL_DELAY_ENV, "0") or 0)
    if seconds > 0:
        time.sleep(seconds)


class GeolocateShards:
    """Photos -> top-k rows and a per-shard density vector (the sum of the photos' gallery probabilities);
    with ``levels``, each photo's credible regions too (from its raster on the world grid of ``cell_deg``)."""

    def __init__(self, out: str, model_args: dict, gallery_ref: list, top_k: int, batch_size: int,
                 threads: int = 0, levels: tuple = (), cell_deg: float = DEFAULT_CELL_DEG,
                 bandwidth_km: float = WORLD_BANDWIDTH_KM, references: dict | None = None,
                 land_ref: list = (), temperature: float = 1.0) -> None:
        self.out = Path(out)
        self.model = _load_model(model_args, gallery_ref, threads)
        self.model.load_backbone()
        self.references = None  # with a reference collection: fused predictions, their matches beside the shard
        if references:
            from .reference_matches import shard_geolocator

            self.references = shard_geolocator(self.model, references)
        self.top_k, self.batch_size = int(top_k), int(batch_size)
        self.pid = os.getpid()
        self.levels = tuple(levels)
        self.options = analysis_options(levels, cell_deg, bandwidth_km, temperature,
                                        _shared(land_ref[0]) if land_ref else None)

    def __call__(self, batch: dict) -> dict:
        return run_shards(batch, self.run_shard, self.pid)

    def run_shard(self, shard: int, paths: list[str]) -> tuple[int, int, str]:
        from ..analysis import analyse_all
        from ..maps.regions import region_polygon
        from .reference_matches import add_density, write_matches

        n_refs = len(self.references.collection) if self.references else 0
        density = np.zeros(len(self.model.gallery) + n_refs, dtype=np.float64)  # the gallery, then the references
        preds, reasons, regions = [], Counter(), []
        predictions = (self.references or self.model).iter_predict(paths, top_k=self.top_k, batch_size=self.batch_size)
        for analysis in analyse_all(predictions, self.model.gallery.latlon, self.options):  # as the QGIS run does
            pred = analysis.prediction
            if analysis.ok:
                add_density(density, pred, len(self.model.gallery))
                regions += region_rows(pred.source, [region_polygon(cells) for cells in analysis.regions])
                pred.gallery_probs = np.empty(0, dtype=np.float32)  # keep only the top-k
            else:
                reasons[_reason(pred.error, pred.source)] += 1
            preds.append(pred)
        with atomic_path(density_path(self.out, shard)) as tmp, open(tmp, "wb") as fh:
            np.save(fh, density)
        if self.levels:
            write_regions(regions, regions_path(self.out, shard))
        if self.references:
            write_matches(preds, self.out, shard)
        write_table(prediction_rows(preds), prediction_schema(), shard_path(self.out, shard))  # last: marks done
        failed = sum(reasons.values())
        return len(paths) - failed, failed, "; ".join(f"{n} x {why}" for why, n in reasons.most_common())


def analysis_options(levels: tuple, cell_deg: float, bandwidth_km: float, temperature: float, land):
    """A worker's per-photo analysis: the run's temperature, and with credible levels their raster on the world
    grid of ``cell_deg`` (no raster otherwise: a worker writes none)."""
    from ..analysis import AnalysisOptions
    from ..maps.grid import GridSpec

    spec = GridSpec.world(cell_size=float(cell_deg)) if levels else None
    return AnalysisOptions(temperature=float(temperature), spec=spec, bandwidth_km=float(bandwidth_km),
                           levels=tuple(levels), land=land)


def run_shards(batch: dict, run_shard, pid: int) -> dict:
    """An actor's call: each shard row of ``batch`` through ``run_shard(shard, items)`` -> (done, failed,
    reasons); back to the driver go these counts only."""
    done, failed, reasons = [], [], []
    for shard, items in zip(batch["shard"], batch["items"]):
        _delay()
        ok, bad, why = run_shard(int(shard), [str(p) for p in items])
        done.append(ok)
        failed.append(bad)
        reasons.append(why)
    return {"shard": np.asarray(batch["shard"]), "done": np.asarray(done), "failed": np.asarray(failed),
            "reasons": np.asarray(reasons, dtype=object), "pid": np.full(len(done), pid)}


def reason_text(reasons: list[str]) -> str:
    """Alike reasons counted together, the commonest first: '3 x no position; 1 x ...'."""
    return "; ".join(f"{n} x {why}" for why, n in Counter(reasons).most_common())


def _reason(error: str | None, source: str) -> str:
    """A per-photo error without its file name, so the summary can count alike failures together."""
    text = (error or "unknown error").replace(source, "<photo>").replace(Path(source).name, "<photo>")
    return text if len(text) <= 120 else text[:117] + "..."


class EmbedShards:
    """Points -> GeoCLIP GPS embeddings (512 floats each), one row per input row."""

    def __init__(self, out: str, model_args: dict, threads: int = 0) -> None:
        self.out = Path(out)
        self.model = _load_model(model_args, [], threads)
        self.pid = os.getpid()

    def __call__(self, batch: dict) -> dict:
        done, failed = [], []
        for shard, ids, lat, lon in zip(batch["shard"], batch["items"], batch["lat"], batch["lon"]):
            _delay()
            ok, bad = self.run_shard(int(shard), np.asarray(ids), np.asarray(lat, float), np.asarray(lon, float))
            done.append(ok)
            failed.append(bad)
        n = len(done)
        return {"shard": np.asarray(batch["shard"]), "done": np.asarray(done), "failed": np.asarray(failed),
                "reasons": np.asarray(["invalid coordinates" if f else "" for f in failed], dtype=object),
                "pid": np.full(n, self.pid)}

    def run_shard(self, shard: int, ids: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> tuple[int, int]:
        from ..geo import invalid_latlon

        latlon = np.column_stack([lat, lon])
        bad = invalid_latlon(latlon)
        emb = np.zeros((len(ids), EMBED_DIM), dtype=np.float32)
        if (~bad).any():
            emb[~bad] = self.model.encode_locations(latlon[~bad])
        cols = {"id": [int(i) for i in ids], "lat": [None if b else float(v) for v, b in zip(lat, bad)],
                "lon": [None if b else float(v) for v, b in zip(lon, bad)],
                "embedding": _float_lists(emb, bad),
                "error": [f"row {int(i)}: lat {la}, lon {lo} is not a valid position (lat -90..90, lon -180..180)"
                          if b else None for i, la, lo, b in zip(ids, lat, lon, bad)],
                "geometry": [None if b else wkb_point(lo, la) for la, lo, b in zip(lat, lon, bad)]}
        write_table(cols, embedding_schema(), shard_path(self.out, shard))
        return int((~bad).sum()), int(bad.sum())



def _float_lists(values: np.ndarray, missing: np.ndarray):
    """(N, 512) float32 -> an Arrow list column, null where ``missing``. A plain list, not a fixed-size
    one: pyarrow 25/26 writes nulls of a fixed-size list to Parquet that it cannot read back."""
    import pyarrow as pa

    flat = pa.array(values[~missing].reshape(-1), type=pa.float32())
    offsets = np.zeros(len(values) + 1, dtype=np.int32)
    offsets[1:] = np.cumsum(np.where(missing, 0, values.shape[1]))
    return pa.ListArray.from_arrays(pa.array(offsets), flat, mask=pa.array(missing, type=pa.bool_()))
