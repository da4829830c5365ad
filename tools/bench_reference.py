"""Benchmark section ``reference``: reference photo collections.

* Incremental indexing: 10,000 small JPEGs with EXIF GPS, built into an index with the tiny test backbone (the
  indexing machinery: EXIF, hashing, the image pipeline, the index file), then the same list plus 50 new
  photos (only those 50 may be embedded), then an unchanged re-run.
* Matching: top-10 over 100,000 random unit references for one photo (median of 30), and per photo in a batch.
* Index RAM: a 100,000-photo index file loaded by ``load_collection`` in a fresh interpreter (RSS growth).
* Leave-one-out fit on 1,000 references (100 synthetic scenes x 10 variants, tiny backbone embeddings).
* Accuracy on the synthetic collection (tools/samples/scenes.py): 24 scenes x 6 reference variants, the 48
  held-out variants as queries; fused top-1 within 25 km against GeoCLIP alone; queries of 6 scenes that are
  not in the collection and 3 photos unlike every scene (does the answer stay GeoCLIP's?); and the same
  collection with harsher variants (+-30% exposure, 75% crops), which the untrained backbone cannot see
  through, for the record.

The 10,050 indexing photos and the tiny CLIP are written once into ``$TMPDIR/geoclip-bench-reference/`` (outside
the repository) and reused; the scenes and every index are made afresh in a temporary folder on each run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tools.bench import add_metric, log

ROOT = Path(__file__).resolve().parents[1]

N_INDEX, N_ADDED, N_KNN, N_FIT = 10_000, 50, 100_000, 1_000
VIT_L_SECONDS = 1.1  # a ViT-L/14 forward per photo on this CPU (README, Known ground)


def inputs_dir() -> Path:
    folder = Path(tempfile.gettempdir()) / "geoclip-bench-reference"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def tiny_model(cache: Path):
    """A GeoCLIP on the tests' tiny random CLIP (built once here)."""
    from model_utils import GeoCLIP
    from tools.samples.clip_factory import build_clip

    clip = inputs_dir() / "clip-tiny"
    if not (clip / "config.json").is_file():
        build_clip(clip, size="tiny", seed=0, tokenizer=False)
    model = GeoCLIP.from_pretrained(clip_model=str(clip), device="cpu", precision="fp32", cache_dir=cache)
    model.load_backbone()
    model.gallery_embeddings()
    return model


def small_photos(folder: Path, n: int, seed: int) -> list[str]:
    """``n`` 96x72 JPEGs with EXIF GPS at seeded random positions (written once)."""
    from PIL import Image

    from tools.samples.photos import gps_exif

    paths = [folder / f"ref_{seed}_{i:05d}.jpg" for i in range(n)]
    if all(p.is_file() for p in paths[-3:]) and len(list(folder.glob(f"ref_{seed}_*.jpg"))) == n:
        return [str(p) for p in paths]
    log(f"reference: writing {n} photos into {folder} (once)")
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for path in paths:
        lat, lon = rng.uniform(-55, 70), rng.uniform(-180, 180)
        pixels = rng.integers(0, 256, (9, 12, 3), dtype=np.uint8)
        Image.fromarray(pixels).resize((96, 72), Image.BILINEAR).save(path, quality=85, exif=gps_exif(lat, lon))
    return [str(p) for p in paths]


def bench_indexing(out: dict, model, work: Path) -> None:
    import torch

    from model_utils.reference import build_collection

    base = small_photos(inputs_dir() / "index-base", N_INDEX, seed=1)
    added = small_photos(inputs_dir() / "index-added", N_ADDED, seed=2)
    index = work / "index.safetensors"
    runs = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the tiny backbone's forward is too small to split: two threads beside the decoding
    try:                      # thread and other load ran it 4x slower here
        for name, items in (("first", base), ("added", base + added), ("unchanged", base + added)):
            t0 = time.perf_counter()
            report = build_collection(model, items, index=index, fit=False)
            runs[name] = {"seconds": time.perf_counter() - t0, "embedded": report.embedded, "hashed": report.hashed,
                          "photos": len(report.collection)}
            log(f"reference: {name} build {runs[name]}")
    finally:
        torch.set_num_threads(threads)
    vit_hours = N_INDEX * VIT_L_SECONDS / 3600
    add_metric(out, f"index {N_INDEX:,} photos from scratch (tiny backbone)", runs["first"]["seconds"], "s",
               note=f"{N_INDEX / runs['first']['seconds']:.0f} photos/s (1 torch thread): EXIF, SHA-256, decode, "
                    f"embed, write; with ViT-L/14 add ~{VIT_L_SECONDS} s a photo (~{vit_hours:.1f} h)")
    add_metric(out, f"add {N_ADDED} photos to {N_INDEX:,}: photos embedded", runs["added"]["embedded"], "",
               ("<=", N_ADDED), note=f"{runs['added']['hashed']} files hashed")
    add_metric(out, f"add {N_ADDED} photos to {N_INDEX:,}: time", runs["added"]["seconds"], "s",
               note=f"checks {N_INDEX + N_ADDED:,} files (stat, EXIF header); with ViT-L/14 add "
                    f"~{N_ADDED * VIT_L_SECONDS:.0f} s")
    add_metric(out, f"unchanged re-run of {N_INDEX + N_ADDED:,}: photos embedded", runs["unchanged"]["embedded"], "",
               ("<=", 0), note=f"{runs['unchanged']['seconds']:.1f} s, {runs['unchanged']['hashed']} files hashed")
    out["indexing"] = runs
    out["index_file_mb_10k"] = index.stat().st_size / 2**20


def synthetic_index(path: Path, n: int) -> None:
    """An index of ``n`` made-up photos (random unit embeddings, camera-like paths), as big as a real one."""
    from model_utils.reference.index import ReferenceCollection, write_index

    rng = np.random.default_rng(0)
    emb = rng.standard_normal((n, 512)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    paths = tuple(f"/data/field_campaign_2024/day_{i // 500:03d}/IMG_{i:06d}.JPG" for i in range(n))
    write_index(ReferenceCollection(paths, np.column_stack([rng.uniform(-60, 70, n), rng.uniform(-180, 180, n)]),
                                    emb, rng.integers(0, 256, (n, 32), dtype=np.uint8),
                                    np.zeros((n, 2), np.int64), "synthetic"), path)


def bench_matching(out: dict, work: Path) -> None:
    from model_utils.reference.index import load_collection
    from model_utils.reference.match import top_matches

    index = work / "knn.safetensors"
    synthetic_index(index, N_KNN)
    refs = load_collection(index).embeddings
    queries = refs[:64] + np.float32(0.05) * np.random.default_rng(1).standard_normal((64, 512)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    times = []
    for i in range(30):
        t0 = time.perf_counter()
        idx, _ = top_matches(queries[i:i + 1], refs, 10)
        times.append(time.perf_counter() - t0)
        assert idx[0, 0] == i
    t0 = time.perf_counter()
    top_matches(queries[:32], refs, 10)
    batch = (time.perf_counter() - t0) / 32
    add_metric(out, f"top-10 over {N_KNN:,} references, one photo (median of 30)", 1000 * float(np.median(times)),
               "ms", ("<", 50), note="exact brute force: one float32 matrix product (numpy BLAS) + argpartition")
    add_metric(out, f"top-10 over {N_KNN:,} references, per photo in a batch of 32", 1000 * batch, "ms")
    rss = json.loads(subprocess.run([sys.executable, str(Path(__file__).resolve()), "--rss-child", str(index)],
                                    capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
    add_metric(out, f"index RAM, {N_KNN:,} references (RSS growth on load)", rss["growth_mb"], "MB", ("<", 300),
               note=f"file {index.stat().st_size / 2**20:.0f} MB; 512 float32 + position + digest per photo")


def rss_child(index: str) -> None:
    """In a fresh interpreter: RSS before and after load_collection (imports done before)."""
    import psutil

    from model_utils.reference.index import load_collection

    before = psutil.Process().memory_info().rss
    collection = load_collection(index)
    after = psutil.Process().memory_info().rss
    print(json.dumps({"photos": len(collection), "growth_mb": (after - before) / 2**20}))


def scene_collection(model, folder: Path, n_scenes: int, n_refs: int, n_queries: int, **variant):
    """Write and build the scenes' collection (fitted); (its BuildReport, the query photos)."""
    from model_utils.reference import build_collection
    from tools.samples.scenes import write_scenes

    photos = write_scenes(folder, n_scenes, n_refs, n_queries, seed=0, **variant)
    report = build_collection(model, folder / "refs", index=folder / "index.safetensors")
    return report, [p for p in photos if p.query]


def bench_fit(out: dict, model, work: Path) -> None:
    report, _ = scene_collection(model, work / "fit-1000", 100, 10, 0)
    fit = report.fit
    add_metric(out, f"leave-one-out fit on {len(report.collection):,} references", fit.seconds, "s", ("<", 60),
               note="both leave-one-out sets, top-10 each, GeoCLIP's answer for every photo over the 100K gallery")
    out["fit_1000"] = fit.to_dict()
    out["fit_1000_table"] = fit.table().splitlines()  # a list: kept in results.json, not flattened into the details
    out.setdefault("notes", []).append(_fit_note("Fit report on the 1,000 references (100 scenes x 10)", fit))


def bench_accuracy(out: dict, model, work: Path) -> None:
    from model_utils.geo import geodesic_km
    from model_utils.reference import ReferenceGeolocator
    from tools.samples import scenes

    root = work / "accuracy"
    report, queries = scene_collection(model, root, 24, 6, 2)
    geolocator = ReferenceGeolocator(model, report.collection)
    preds = geolocator.predict([str(q.path) for q in queries])
    fused = [float(geodesic_km(q.lat, q.lon, p.lat[0], p.lon[0])) for q, p in zip(queries, preds)]
    alone = [float(geodesic_km(q.lat, q.lon, p.geoclip.lat[0], p.geoclip.lon[0])) for q, p in zip(queries, preds)]
    add_metric(out, f"synthetic collection: fused top-1 within 25 km ({len(queries)} held-out variants)",
               float(np.mean(np.array(fused) <= 25)), "", (">=", 0.9),
               note=f"24 scenes x 6 reference variants; variants: crop {scenes.CROP}, exposure +-{scenes.EXPOSURE}, "
                    f"mirrored half the time, JPEG quality {scenes.QUALITY[0]}-{scenes.QUALITY[1] - 1}")
    add_metric(out, "synthetic collection: GeoCLIP alone within 25 km (tiny backbone: near chance)",
               float(np.mean(np.array(alone) <= 25)), "", note=f"median error {np.median(alone):,.0f} km")
    unseen = scenes.write_scenes(root / "unseen", 6, 0, 2, seed=0, first_scene=30)
    others = geolocator.predict([str(p.path) for p in unseen])
    add_metric(out, "queries of scenes not in the collection: answer stays GeoCLIP's", _kept(others), "",
               note="the untrained backbone finds some of them as similar as the collection's own variants")
    add_metric(out, "photos unlike every scene (night, red wall, awning): answer stays GeoCLIP's",
               _kept(geolocator.predict(scenes.unlike_photos(root / "unlike"))), "", (">=", 1.0))
    out["fit_accuracy_table"] = report.fit.table().splitlines()
    out.setdefault("notes", []).append(_fit_note("Fit report on the synthetic collection (24 scenes x 6)", report.fit))
    spaces = retrieval_by_space(model, report.collection, queries)
    for space, share in spaces.items():
        add_metric(out, f"a held-out variant's most similar reference is of its scene: {space}", share, "",
                   note="the embedding space choice (README): GeoCLIP's image embedding is what is indexed")
    harsh, harsh_queries = scene_collection(model, work / "accuracy-harsh", 24, 6, 2, crop=(0.75, 0.95),
                                            exposure=0.3)
    hp = ReferenceGeolocator(model, harsh.collection).predict([str(q.path) for q in harsh_queries])
    add_metric(out, "harsher variants (exposure +-30%, 75-95% crops): fused top-1 within 25 km",
               float(np.mean([geodesic_km(q.lat, q.lon, p.lat[0], p.lon[0]) <= 25 for q, p in zip(harsh_queries, hp)])),
               "", note="for the record: the untrained tiny backbone cannot tell these scenes apart")


def retrieval_by_space(model, collection, queries) -> dict[str, float]:
    """Share of queries whose most similar reference shows their scene, in GeoCLIP's image embedding (512, what
    the index holds) and in CLIP's own image embedding (768, the backbone's output before GeoCLIP's head)."""
    import torch
    from PIL import Image

    def embed(paths):
        pixels = model.processor(images=[Image.open(p).convert("RGB") for p in paths], return_tensors="pt")
        with torch.inference_mode():
            clip = model._vision(pixel_values=pixels["pixel_values"]).image_embeds.float()
            return (torch.nn.functional.normalize(model.mlp(clip), dim=1).numpy(),
                    torch.nn.functional.normalize(clip, dim=1).numpy())

    ref_geo, ref_clip = embed(collection.paths)
    q_geo, q_clip = embed([q.path for q in queries])
    scene = np.array([int(Path(p).name[5:8]) for p in collection.paths])
    truth = np.array([q.scene for q in queries])
    return {"GeoCLIP image embedding (512)": float(np.mean(scene[(q_geo @ ref_geo.T).argmax(1)] == truth)),
            "CLIP image embedding (768)": float(np.mean(scene[(q_clip @ ref_clip.T).argmax(1)] == truth))}


def _fit_note(title: str, fit) -> str:
    """One sentence of a fit report: top-1 within 25 km for each row, and the fitted weight."""
    rows = [("GeoCLIP alone", fit.geoclip), ("fused", fit.fused), ("fused with its own place left out",
                                                                     fit.place_left_out)]
    shares = ", ".join(f"{name} {100 * rep.share_within[1]:.1f}%" for name, rep in rows if rep is not None)
    return (f"{title}, top-1 within 25 km: {shares}; half the weight at similarity {fit.params.threshold:.4f} "
            f"(slope {fit.params.slope:.0f}), temperature {fit.params.temperature:.2g}.")


def _kept(preds) -> float:
    return float(np.mean([p.weight < 1e-3 and p.lat[0] == p.geoclip.lat[0] and p.lon[0] == p.geoclip.lon[0]
                          for p in preds]))


def bench_reference(out: dict) -> None:
    with tempfile.TemporaryDirectory(prefix="geoclip-bench-ref-") as tmp:
        work = Path(tmp)
        model = tiny_model(inputs_dir() / "cache")
        log("reference: matching and index RAM")
        bench_matching(out, work)
        log("reference: incremental indexing")
        bench_indexing(out, model, work)
        log("reference: leave-one-out fit on 1,000")
        bench_fit(out, model, work)
        log("reference: synthetic accuracy")
        bench_accuracy(out, model, work)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rss-child", required=True)
    rss_child(parser.parse_args().rss_child)
