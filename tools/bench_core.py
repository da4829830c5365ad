"""Benchmark section ``core``: the model core and photo geolocation on this CPU.

Both GeoCLIPs use the SAME random CLIP with the exact ViT-L/14 shape (the real one cannot be
downloaded here), built once into ``bench/.clip-vit-l-14/`` and loaded from that folder by each.
Random weights cost exactly what real ones cost: timings and memory depend on shapes, not values.

Measured in one process, interleaved so that load from other work on the machine hits every
variant alike: the official ``GeoCLIP.predict`` vs ours (one photo per call, gallery cache warm),
ours vs the bare vision-tower forward, the gallery cache build and load, photos per second for a
folder of 32 camera-sized photos with and without decode/inference overlap, and the 0.1 degree
world probability raster. Peak RSS of each model is measured in its own subprocess.

Run it through ``python -m tools.bench --only core``; the memory measurement runs ``tools.bench_rss`` in a
subprocess per model.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tools.bench import add_metric, bench_dir, log
from tools.bench_rss import measure_rss

ROOT = Path(__file__).resolve().parents[1]

CLIP_SIZE = "vit-l-14"
CLIP_DIR = ".clip-vit-l-14"
PHOTOS_DIR = ".photos-32-4000x3000"
MARKER = ".bench-complete.json"
FOLDER_PHOTOS = 32
FOLDER_PHOTO_SIZE = (4000, 3000)  # a 12 MP phone camera: decoding is a real share of the work
BATCH_SIZE = 8
TOP_K = 5
OFFICIAL_IMAGES = 2  # official predict() takes ~12 s per call here
PAIRS = 3  # (ours, bare) pairs before and after each official call
RASTER_REPS = 3
RASTER_CELL_DEG = 0.1

TARGET_SPEEDUP = (">=", 8.0)
TARGET_OVERHEAD = ("<=", 15.0)
TARGET_CACHE_LOAD = ("<", 1.0)
TARGET_RASTER = ("<", 2.0)


# ---------------------------------------------------------------------------- persistent inputs
def _complete(folder: Path) -> bool:
    """True when ``folder`` was finished by :func:`_persistent` and no file changed size since."""
    try:
        meta = json.loads((folder / MARKER).read_text(encoding="utf-8"))
        return bool(meta["files"]) and all((folder / name).is_file() and (folder / name).stat().st_size == size
                                           for name, size in meta["files"].items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def _persistent(folder: Path, build: Callable[[Path], object], info: dict) -> float | None:
    """Build ``folder`` once (into a temp folder, renamed when complete); seconds spent, None if reused."""
    if _complete(folder):
        return None
    tmp = folder.with_name(f"{folder.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    t0 = time.perf_counter()
    try:
        build(tmp)
        files = {p.name: p.stat().st_size for p in sorted(tmp.iterdir()) if p.is_file()}
        (tmp / MARKER).write_text(json.dumps({**info, "files": files}, indent=1), encoding="utf-8")
        if _complete(folder):  # another run finished it meanwhile
            return time.perf_counter() - t0
        shutil.rmtree(folder, ignore_errors=True)  # an incomplete leftover
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return time.perf_counter() - t0


def ensure_clip(root: Path | None = None) -> tuple[Path, float | None]:
    """The random ViT-L/14-shaped CLIP folder (built on first use, ~1.7 GB) and its build time."""
    import transformers

    from tools.samples.clip_factory import build_clip

    folder = (root or bench_dir()) / CLIP_DIR
    if not _complete(folder):
        log(f"building the random ViT-L/14-shaped CLIP into {folder} (once, ~1.7 GB)")
    built = _persistent(folder, lambda tmp: build_clip(tmp, size=CLIP_SIZE, seed=0),
                        {"size": CLIP_SIZE, "seed": 0, "transformers": transformers.__version__})
    return folder, built


def ensure_folder_photos(root: Path | None = None) -> tuple[list[Path], float | None]:
    """32 synthetic camera-sized JPEGs (tools/samples/photos.py), written once."""
    from tools.samples.photos import write_photos

    folder = (root or bench_dir()) / PHOTOS_DIR
    if not _complete(folder):
        log(f"writing {FOLDER_PHOTOS} photos of {FOLDER_PHOTO_SIZE[0]}x{FOLDER_PHOTO_SIZE[1]} into {folder} (once)")
    built = _persistent(folder, lambda tmp: write_photos(tmp, n=FOLDER_PHOTOS, seed=0, size=FOLDER_PHOTO_SIZE),
                        {"n": FOLDER_PHOTOS, "size": list(FOLDER_PHOTO_SIZE)})
    return sorted(folder.glob("*.jpg")), built


# ---------------------------------------------------------------------------- helpers
def _timed(fn: Callable, *args, **kwargs) -> tuple[float, object]:
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - t0, result


def _clock(fn: Callable, *args, **kwargs) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds of this process, all threads, result)."""
    w0, c0 = time.perf_counter(), time.process_time()
    result = fn(*args, **kwargs)
    return time.perf_counter() - w0, time.process_time() - c0, result


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


def _rounded(values: list[float]) -> list[float]:
    return [round(v, 4) for v in values]


def _pixels(processor, path: Path):
    """Decode + preprocess one photo exactly as our predictor does (EXIF orientation included)."""
    from model_utils.photos.images import load_photo

    return processor(images=[load_photo(path).image], return_tensors="pt")["pixel_values"]


# ---------------------------------------------------------------------------- the section
def bench_core(out: dict) -> None:
    """Fill ``out`` with the core measurements (see the module docstring)."""
    root = bench_dir()
    root.mkdir(parents=True, exist_ok=True)
    clip, clip_built = ensure_clip(root)
    folder_photos, photos_built = ensure_folder_photos(root)
    out["setup"] = {
        "backbone": f"random CLIPModel with the {CLIP_SIZE} shape (tools/samples/clip_factory.py), fp32, CPU",
        "backbone_folder": str(clip),
        "backbone_build_s": "reused" if clip_built is None else round(clip_built, 1),
        "folder_photos": f"{len(folder_photos)} JPEGs of {FOLDER_PHOTO_SIZE[0]}x{FOLDER_PHOTO_SIZE[1]} "
                         f"(tools/samples/photos.py) in {clip.parent / PHOTOS_DIR}",
        "folder_photos_build_s": "reused" if photos_built is None else round(photos_built, 1),
    }
    work = Path(tempfile.mkdtemp(prefix="core-", suffix=".tmp", dir=root))
    try:
        _run(out, clip, folder_photos, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(out: dict, clip: Path, folder_photos: list[Path], work: Path) -> None:
    import numpy as np
    import torch

    from model_utils import GeoCLIP
    from model_utils.maps.heatmap import GridSpec, probability_grid
    from tools.samples.official import official_model_package
    from tools.samples.photos import write_photos

    out["setup"]["torch_threads"] = torch.get_num_threads()
    samples: dict = {}
    out["samples"] = samples
    notes: list[str] = out.setdefault("notes", [])

    # -- gallery cache: cold build into a fresh folder, then a fresh model reads it -------------
    cache = work / "cache"
    log("core: gallery cache, cold build (encodes 100K GPS points)")
    builder = GeoCLIP.from_pretrained(clip_model=str(clip), device="cpu", cache_dir=cache)
    t_csv_cold, _ = _timed(lambda: builder.gallery)
    t_build, built_emb = _timed(builder.gallery_embeddings)
    cache_files = sorted(cache.glob("*.safetensors"))
    built_emb = built_emb.clone()
    builder = None  # free it (a fresh model reads the cache below)
    gc.collect()
    # fp32 like the official model and the bare forward: on a CPU with native bf16, "auto" would give ours bf16
    # autocast and compare precisions, not the work around the backbone (section precision measures bf16)
    t_construct, model = _timed(GeoCLIP.from_pretrained, clip_model=str(clip), device="cpu", precision="fp32",
                                cache_dir=cache)
    t_csv, _ = _timed(lambda: model.gallery)
    t_read, emb = _timed(model.gallery_embeddings)
    t_load = t_csv + t_read
    add_metric(out, "Gallery cache build (100K points, cold, fresh cache dir)", t_build, "s",
               note=f"encode + hash + atomic write; CSV parse {t_csv_cold:.2f} s before it; "
                    f"file {cache_files[0].stat().st_size / 2**20:.0f} MB" if cache_files else "no cache file written")
    add_metric(out, "Gallery cache load (fresh model)", t_load, "s", TARGET_CACHE_LOAD,
               note=f"gallery CSV parse {t_csv:.2f} s + cache read and SHA-256 check {t_read:.2f} s "
                    f"(file in the OS page cache); identical to built: {bool(torch.equal(emb, built_emb))}")
    del built_emb

    # -- both models on the same backbone folder ------------------------------------------------
    log("core: loading our vision tower and the official model (full CLIPModel)")
    t_backbone, _ = _timed(model.load_backbone)
    vision = model._vision  # the very module our predict() runs: the bare-backbone baseline
    pkg = official_model_package()
    torch.manual_seed(0)
    t_official_load, official = _timed(lambda: pkg.GeoCLIP(from_pretrained=True, clip_path=str(clip)).eval())
    add_metric(out, "Our model: construct (location side) + load vision tower", t_construct + t_backbone, "s",
               note=f"construct {t_construct:.2f} s, vision tower {t_backbone:.2f} s")
    add_metric(out, "Official model load (full CLIPModel)", t_official_load, "s",
               note="both load safetensors memory-mapped: pages are read on the first forward")

    photos = write_photos(work / "photos", n=OFFICIAL_IMAGES)  # 320x240-ish, as in the fidelity tests
    pixels = [_pixels(model.processor, p) for p in photos]

    def bare(px):
        with torch.inference_mode():
            return vision(pixel_values=px).image_embeds

    # warm-ups (first calls allocate and pick kernels); the official one without its gallery re-encode
    model.predict([str(photos[0])], top_k=TOP_K)
    bare(pixels[0])
    with torch.no_grad():
        official.image_encoder(pixels[0])
        official.location_encoder(official.gps_gallery[:2048])

    # -- latency: official vs ours vs bare backbone, interleaved --------------------------------
    # Per photo: PAIRS x (ours, bare), one official call, PAIRS x (bare, ours). Each official call is
    # compared with the median of ours around it, and each call of ours with the bare forward next to
    # it, so load from other work, which drifts over seconds, weighs on both sides of every ratio.
    log(f"core: latency, official predict() x{len(photos)} (~12 s each) between {2 * PAIRS} calls each "
        f"of ours and of the bare backbone")
    t_off, t_ours, t_bare, c_off, c_ours, c_bare = [], [], [], [], [], []
    speedups, overheads = [], []
    max_prob_diff, same_top = 0.0, True
    first_probs = None
    for i, path in enumerate(photos):
        steps = [("ours", "bare"), ("bare", "ours")] * PAIRS
        plan = [s for pair in steps[:PAIRS] for s in pair] + ["official"] + [s for pair in steps[PAIRS:] for s in pair]
        around, pair = [], {}
        for step in plan:
            if step == "official":
                wall, cpu, (ref_gps, ref_prob) = _clock(official.predict, str(path), top_k=TOP_K)
                t_off.append(wall)
                c_off.append(cpu)
                continue
            if step == "ours":
                wall, cpu, preds = _clock(model.predict, [str(path)], top_k=TOP_K)
                t_ours.append(wall)
                c_ours.append(cpu)
                around.append(wall)
            else:
                wall, cpu, _ = _clock(bare, pixels[i])
                t_bare.append(wall)
                c_bare.append(cpu)
            pair[step] = wall
            if len(pair) == 2:
                overheads.append(pair["ours"] / pair["bare"] - 1.0)
                pair = {}
        speedups.append(t_off[-1] / _median(around))
        pred = preds[0]
        if i == 0:
            first_probs = pred.gallery_probs
        max_prob_diff = max(max_prob_diff, float(np.abs(pred.prob - ref_prob.numpy()).max()))
        same_top &= bool(np.allclose(np.column_stack([pred.lat, pred.lon]), ref_gps.numpy(), atol=1e-4))
    samples.update(official_predict_s=_rounded(t_off), ours_predict_s=_rounded(t_ours),
                   bare_backbone_s=_rounded(t_bare), official_predict_cpu_s=_rounded(c_off),
                   ours_predict_cpu_s=_rounded(c_ours), bare_backbone_cpu_s=_rounded(c_bare))
    add_metric(out, "Official GeoCLIP.predict, per image", _median(t_off), "s",
               note=f"{', '.join(f'{t:.2f}' for t in t_off)} s; re-encodes the 100K gallery every call")
    add_metric(out, "Ours predict([path], top_k=5), per image", _median(t_ours), "s",
               note=f"median of {len(t_ours)}, best {min(t_ours):.2f} s; gallery cache warm")
    add_metric(out, "Speed-up, official / ours", _median(speedups), "x", TARGET_SPEEDUP,
               note=f"each official call over the median of ours around it: "
                    f"{', '.join(f'{r:.1f}' for r in speedups)}; best of each {min(t_off) / min(t_ours):.1f}x; "
                    f"CPU time {_median(c_off) / _median(c_ours):.1f}x. Same photos and backbone: top-5 "
                    f"locations equal {'yes' if same_top else 'NO'}, max top-5 probability difference "
                    f"{max_prob_diff:.1e}")
    add_metric(out, "Bare backbone forward (vision tower + projection, batch 1)", _median(t_bare), "s",
               note=f"median of {len(t_bare)}, best {min(t_bare):.2f} s; preprocessed pixels of the same photos")
    add_metric(out, "Ours beyond the backbone (decode, preprocess, MLP, 100K scores, top-k)",
               100.0 * _median(overheads), "%", TARGET_OVERHEAD,
               note=f"median over {len(overheads)} adjacent (ours, bare) pairs (spread "
                    f"{100 * min(overheads):.0f} to {100 * max(overheads):.0f}%); best of each "
                    f"{100.0 * (min(t_ours) / min(t_bare) - 1.0):.1f}%; 320x240-ish JPEGs")
    official = pkg = None  # free the full CLIPModel before the folder run
    gc.collect()

    # -- photos per second for a folder ------------------------------------------------
    paths = [str(p) for p in folder_photos]
    log(f"core: folder of {len(paths)} photos, batch {BATCH_SIZE}, with and without decode overlap")
    t_batch_prep, _ = _timed(lambda: [_pixels(model.processor, Path(p)) for p in paths[:BATCH_SIZE]])

    def sequential() -> list:
        res = []
        for start in range(0, len(paths), BATCH_SIZE):  # one batch per call: nothing to overlap with
            res += model.predict(paths[start:start + BATCH_SIZE], top_k=TOP_K, batch_size=BATCH_SIZE)
        return res

    runs = {}
    for name, fn in (("overlapped", lambda: model.predict(paths, top_k=TOP_K, batch_size=BATCH_SIZE)),
                     ("sequential", sequential)):
        gc.collect()
        load = os.getloadavg()[0]
        wall, cpu, res = _clock(fn)
        runs[name] = {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "load_average": round(load, 2),
                      "errors": sum(not r.ok for r in res)}
    samples["folder"] = runs
    samples["decode_preprocess_one_batch_s"] = round(t_batch_prep, 3)
    ov, sq = runs["overlapped"], runs["sequential"]
    add_metric(out, f"Folder of {len(paths)} photos, predict(paths, batch_size={BATCH_SIZE}), overlapped",
               len(paths) / ov["wall_s"], "photos/s",
               note=f"{ov['wall_s']:.1f} s, CPU time {ov['cpu_s']:.1f} s, load {ov['load_average']}; "
                    f"12 MP JPEGs, decode + preprocess in a worker thread"
                    + (f"; {ov['errors']} photo errors" if ov["errors"] else ""))
    add_metric(out, "Same folder, batch by batch without overlap (comparison)", len(paths) / sq["wall_s"],
               "photos/s",
               note=f"{sq['wall_s']:.1f} s, CPU time {sq['cpu_s']:.1f} s, load {sq['load_average']}; "
                    f"decode + preprocess of one batch of {BATCH_SIZE} alone: {t_batch_prep:.2f} s; one run each")

    # -- the probability raster from real gallery probabilities ------------------------
    log("core: 0.1 degree world probability raster")
    lat, lon = model.gallery.latlon[:, 0], model.gallery.latlon[:, 1]
    spec = GridSpec.world(RASTER_CELL_DEG)
    t_raster, grid = [], None
    for _ in range(RASTER_REPS):
        gc.collect()
        t, grid = _timed(probability_grid, lat, lon, first_probs, spec)
        t_raster.append(t)
    samples["raster_s"] = _rounded(t_raster)
    add_metric(out, f"Probability raster, {RASTER_CELL_DEG} degree world from 100K probabilities",
               _median(t_raster), "s", TARGET_RASTER,
               note=f"median of {RASTER_REPS} (min {min(t_raster):.2f} s); {spec.width}x{spec.height} cells, "
                    f"default bandwidth; raster sum {float(grid.values.sum(dtype=np.float64)):.6f}")

    # -- peak RSS, one fresh interpreter per model -----------------------------------------------
    model = vision = None
    gc.collect()
    log("core: peak RSS of ours and of the official model, each in its own subprocess")
    rss = {which: measure_rss(which, clip, photos[0], cache) for which in ("ours", "official")}
    out["rss"] = rss
    for which, label in (("ours", "Ours (vision tower only)"), ("official", "Official (full CLIPModel)")):
        r = rss[which]
        add_metric(out, f"Peak RSS, {label}, one prediction", r["peak_rss_mb"], "MB",
                   note=f"{r['after_imports_mb']:.0f} MB after imports, {r['after_load_mb']:.0f} MB after loading; "
                        f"load {r['load_s']:.1f} s, predict {r['predict_s']:.1f} s")
    add_metric(out, "Peak RSS, official / ours", rss["official"]["peak_rss_mb"] / rss["ours"]["peak_rss_mb"], "x")

    busiest = max(os.getloadavg()[0], *(r["load_average"] for r in runs.values()))
    cores = os.cpu_count() or 1
    if busiest > cores:
        notes.append(f"The machine was busy during this run (1-min load average up to {busiest:.1f} on {cores} "
                     f"cores, from other work): wall-clock times are inflated and noisy; the 'best' figures in "
                     f"the notes are closer to what an idle machine gives.")
    notes += [
        "Official, ours and the bare backbone are interleaved photo by photo so background load weighs on "
        "both sides of each ratio; medians are judged. The photo-folder runs are one run each.",
        "The official predict() encodes all 100K gallery points on every call; ours reads them once from "
        "the on-disk cache, so the speed-up is about (gallery encode + backbone) / backbone.",
        "Ours runs at precision fp32 here, like the official model and the bare forward (the plugin's 'auto' "
        "picks bf16 autocast on a CPU with native bf16: section precision).",
    ]
