"""The driver of a batch job: plan, gallery once into Ray's object store, a Ray Data actor pool, a summary.

Everything here runs where the job is started (a laptop, or the head node through Ray's Job
Submission API). Work and results stay with the workers: the driver sees one small row per
shard, and the archive density raster is a sum of per-shard vectors read one at a time.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..constants import DEFAULT_CELL_DEG, WORLD_BANDWIDTH_KM
from ..safe_files import write_texts
from .plan import Plan, density_path, prepare_output, remove_partial_files, shard_path
from .sources import photo_source, read_points

PROGRESS_PREFIX = "geoclip-batch:"  # lines the QGIS algorithm reads for its progress bar
DENSITY_FILE = "density.tif"
SUMMARY_FILE = "summary.json"


@dataclass
class JobOptions:
    out: str
    address: str | None = None
    workers: int = 1
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0
    batch_size: int = 8
    shard_size: int = 64
    resume: bool = False
    clip_model: str | None = None
    weights: str | None = None
    precision: str = "auto"
    cache_dir: str | None = None


@dataclass
class Summary:
    kind: str
    total: int
    done: int = 0
    failed: int = 0
    resumed_shards: int = 0
    shards: int = 0
    elapsed_s: float = 0.0
    reasons: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)
    worker_processes: int = 0  # distinct worker processes that did shards: the pool size, plus any restarts
    not_photos: list = field(default_factory=list)  # what the photo folder held besides photos, by reason

    @property
    def rate(self) -> float:
        return (self.done + self.failed) / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def text(self) -> str:
        noun = "points" if self.kind == "embed" else "photos"
        lines = [f"{self.kind}: {self.done} {noun} done, {self.failed} skipped, in {self.elapsed_s:.1f} s "
                 f"({self.rate:.2f} {noun}/s this run; {self.resumed_shards} of {self.shards} shards already done)"]
        lines += [f"  skipped: {n} x {why}" for why, n in sorted(self.reasons.items(), key=lambda kv: -kv[1])]
        lines += [f"  not photos: {line}" for line in self.not_photos]
        lines += [f"  {name}: {path}" for name, path in self.outputs.items()]
        return "\n".join(lines)


def say(text: str) -> None:
    print(text, flush=True)


def _model_args(opts: JobOptions, device: str) -> dict:
    return {"clip_model": opts.clip_model, "weights": opts.weights, "device": device, "precision": opts.precision,
            "cache_dir": opts.cache_dir}


# Environment the job's workers need as the driver has it: offline switches, caches, test rehearsals.
FORWARDED_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME", "HF_ENDPOINT", "PROJ_DATA")


def runtime_env() -> dict:
    """This ``model_utils`` shipped to every worker (a cluster's nodes need not have the plugin), plus
    the environment above and every GEOCLIP_* variable."""
    import os

    package = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k in FORWARDED_ENV or k.startswith("GEOCLIP_")}
    return {"py_modules": [str(package)], "env_vars": env}


def _connect(opts: JobOptions):
    import ray

    if not ray.is_initialized():
        import os

        # submitted as a Ray job, the job's runtime env (set by the submitter) already reaches the workers
        in_job = "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ
        ray.init(address=opts.address or None, runtime_env=None if in_job else runtime_env(),
                 logging_level="WARNING")
    return ray


def geolocate(photos: str, opts: JobOptions, top_k: int = 5, cell_deg: float = DEFAULT_CELL_DEG,
              bandwidth_km: float = WORLD_BANDWIDTH_KM, credible_levels: tuple = (),
              references: str | None = None, on_land: bool = True, temperature: float = 1.0) -> Summary:
    """Geolocate every photo of ``photos`` (folder, glob, manifest); GeoParquet shards + density.tif in ``out``;
    with ``credible_levels``, each photo's credible regions in regions-*.parquet beside its shard; with
    ``references`` (a reference index), fused predictions and each photo's matches in matches-*.parquet.
    ``on_land``: the density raster and the regions keep each point's mass on land cells (off: photos taken at
    sea). ``temperature`` divides the logits first: the kept probabilities, the density and the regions follow it.
    Each photo's answer is ``model_utils.analysis.analyse``'s, as in QGIS."""
    from ..maps.land import land_mask_or_none
    from ..model.device import pick_precision
    from ..model.geoclip import GeoCLIP
    from .workers import GeolocateShards

    if not temperature > 0:
        raise ValueError(f"--temperature must be above 0 (1: as trained), got {temperature:g}")
    start = time.monotonic()
    paths, not_photos = photo_source(photos)
    for line in not_photos:
        say(f"not photos: {line}")
    land = land_mask_or_none(on_land, cell_deg, say)
    model = GeoCLIP.from_pretrained(**_model_args(opts, "cpu"))
    options = {"top_k": int(top_k), "clip_model": model.clip_model, "weights": model._fingerprint,
               "precision": opts.precision}
    if temperature != 1.0:  # only then: plans of jobs at the trained temperature stay as they were (resume)
        options.update(temperature=float(temperature))
    if credible_levels:  # only then: plans of jobs without regions stay as they were (resume)
        options.update(credible_levels=list(credible_levels), cell_deg=float(cell_deg),
                       bandwidth_km=float(bandwidth_km), on_land=bool(on_land))
    refs_args, refs_latlon = None, None
    if references:  # only then: plans of jobs without references stay as they were (resume)
        from .reference_matches import references_for_job

        refs_args, refs_options, refs_latlon = references_for_job(model, references)
        options.update(refs_options)
    plan = Plan.make("geolocate", paths, opts.shard_size, options)
    todo = prepare_output(Path(opts.out), plan, opts.resume)
    summary = Summary("geolocate", total=len(paths), shards=plan.n_shards, resumed_shards=plan.n_shards - len(todo),
                      not_photos=list(not_photos))
    if todo:
        ray = _connect(opts)
        say(f"{PROGRESS_PREFIX} gallery: {len(model.gallery)} points, embedded once, shared through the object store")
        say(f"{PROGRESS_PREFIX} workers: {pick_precision(_device(opts), opts.precision).note}")
        gallery_ref = ray.put(model.gallery_embeddings().cpu().numpy())
        rows = [{"shard": s, "items": paths[slice(*plan.bounds(s))]} for s in todo]
        worker_args = {"out": str(Path(opts.out).absolute()), "model_args": _model_args(opts, _device(opts)),
                       "gallery_ref": [gallery_ref], "top_k": top_k, "batch_size": opts.batch_size,
                       "threads": max(1, int(opts.cpus_per_worker)), "levels": tuple(credible_levels),
                       "cell_deg": cell_deg, "bandwidth_km": bandwidth_km, "references": refs_args,
                       "temperature": float(temperature),
                       # the driver's mask, through the object store: the nodes need neither QGIS nor the package
                       "land_ref": [ray.put(land)] if credible_levels and land is not None else []}
        _run_pool(ray, rows, GeolocateShards, worker_args, opts, summary, plan)
    _count_resumed(plan, opts, summary, todo)
    summary.outputs["density"] = str(write_density(model, plan, Path(opts.out), cell_deg, bandwidth_km, refs_latlon,
                                                   land))
    return _finish(summary, opts, start)


def embed(points: str, opts: JobOptions) -> Summary:
    """GeoCLIP GPS embeddings of every row of a CSV / Parquet table with lat/lon: GeoParquet shards in ``out``."""
    from ..model.weights import find_weights
    from .workers import EmbedShards

    start = time.monotonic()
    ids, latlon = read_points(points)
    items = [f"{int(i)},{float(lat)!r},{float(lon)!r}" for i, (lat, lon) in zip(ids, latlon)]  # same on numpy 1 and 2
    plan = Plan.make("embed", items, opts.shard_size, {"weights": find_weights(opts.weights).fingerprint()})
    todo = prepare_output(Path(opts.out), plan, opts.resume)
    summary = Summary("embed", total=len(ids), shards=plan.n_shards, resumed_shards=plan.n_shards - len(todo))
    if todo:
        ray = _connect(opts)
        rows = []
        for s in todo:
            part = slice(*plan.bounds(s))
            rows.append({"shard": s, "items": ids[part], "lat": latlon[part, 0], "lon": latlon[part, 1]})
        worker_args = {"out": str(Path(opts.out).absolute()), "model_args": _model_args(opts, _device(opts)),
                       "threads": max(1, int(opts.cpus_per_worker))}
        _run_pool(ray, rows, EmbedShards, worker_args, opts, summary, plan)
    _count_resumed(plan, opts, summary, todo)
    return _finish(summary, opts, start)


def _device(opts: JobOptions) -> str:
    return "cuda" if opts.gpus_per_worker > 0 else "cpu"


def _run_pool(ray, rows: list[dict], worker_cls, worker_args: dict, opts: JobOptions, summary: Summary,
              plan: Plan) -> None:
    """One actor per worker, each loading the model once; a shard lost with its worker or node is retried."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = sys.stderr.isatty()
    ds = ray.data.from_items(rows, override_num_blocks=len(rows))
    # Ray Data restarts a lost actor and retries its shards (max_restarts / max_task_retries -1 by default);
    # two shards in flight per actor keeps each worker busy and its memory bounded.
    pool = ray.data.ActorPoolStrategy(size=max(1, int(opts.workers)), max_tasks_in_flight_per_actor=2)
    ds = ds.map_batches(worker_cls, fn_constructor_kwargs=worker_args, batch_size=1, batch_format="numpy",
                        compute=pool, num_cpus=opts.cpus_per_worker, num_gpus=opts.gpus_per_worker or None)
    finished = summary.resumed_shards
    done_items = plan.n_items - sum(plan.bounds(r["shard"])[1] - plan.bounds(r["shard"])[0] for r in rows)
    reasons: Counter = Counter(summary.reasons)
    pids: set[int] = set()
    for row in ds.iter_rows():
        finished += 1
        pids.add(int(row["pid"]))
        summary.done += int(row["done"])
        summary.failed += int(row["failed"])
        for part in filter(None, str(row["reasons"]).split("; ")):
            count, _, why = part.partition(" x ")
            reasons[why] += int(count) if count.isdigit() else 1
        first, last = plan.bounds(int(row["shard"]))
        done_items += last - first
        say(f"{PROGRESS_PREFIX} progress {done_items}/{plan.n_items} (shard {finished}/{plan.n_shards})")
    summary.reasons = dict(reasons)
    summary.worker_processes = len(pids)


def _count_resumed(plan: Plan, opts: JobOptions, summary: Summary, todo: list[int]) -> None:
    """Counts of shards finished by an earlier run, read back from their files."""
    import pyarrow.parquet as pq

    reasons: Counter = Counter(summary.reasons)
    for s in sorted(set(range(plan.n_shards)) - set(todo)):
        table = pq.read_table(shard_path(Path(opts.out), s), columns=["error"] if plan.kind == "embed"
                              else ["photo", "error"])
        errors = [e for e in table.column("error").to_pylist() if e]
        n = plan.bounds(s)[1] - plan.bounds(s)[0]
        summary.failed += len(errors)
        summary.done += n - len(errors)
        if errors:
            reasons["(earlier run) failed"] += len(errors)
    summary.reasons = dict(reasons)


def write_density(model, plan: Plan, out: Path, cell_deg: float, bandwidth_km: float,
                  references_latlon: np.ndarray | None = None, land=None) -> Path:
    """The archive density raster: every photo's gallery probabilities summed (shard by shard), then
    spread with the per-photo rasters' kernel (on ``land``'s land cells when given: the kernel is linear, so this
    is the sum of the photos' land-aware rasters). A cell holds the expected number of photos taken in it.
    With references, the shards' vectors also hold the mass on each reference photo, after the gallery's."""
    from ..maps.geotiff import write_wgs84_geotiff
    from ..maps.grid import GridSpec
    from ..maps.heatmap import probability_grid

    latlon = model.gallery.latlon
    if references_latlon is not None:
        latlon = np.concatenate([latlon, references_latlon])
    total = np.zeros(len(latlon), dtype=np.float64)
    for s in range(plan.n_shards):
        total += np.load(density_path(out, s))
    grid = probability_grid(latlon[:, 0], latlon[:, 1], total, GridSpec.world(cell_deg), bandwidth_km, land=land)
    return write_wgs84_geotiff(grid.values, grid.spec.geotransform, out / DENSITY_FILE,
                               description="expected photos per cell (sum of every photo's probability)")


def _finish(summary: Summary, opts: JobOptions, start: float) -> Summary:
    summary.elapsed_s = time.monotonic() - start
    out = Path(opts.out)
    remove_partial_files(out)
    summary.outputs["shards"] = str(out / "part-*.parquet")
    write_texts({out / SUMMARY_FILE: json.dumps({**asdict(summary), "rate_per_s": summary.rate}, indent=1)})
    say(f"{PROGRESS_PREFIX} done")
    say(summary.text())
    return summary
