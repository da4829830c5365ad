"""Benchmark section ``precision``: bf16 autocast against fp32 for the CLIP backbone on this CPU (#15).

The same random ViT-L/14-shaped CLIP as section ``core`` (``bench/.clip-vit-l-14``) and its 32 camera-sized
photos. Measured in one process, alternating fp32 and bf16 so that other load on the machine hits both:
one photo's latency (best of three), a folder of 32 photos per second, and the agreement of the answers
(image embedding cosine, top-1 and top-5 gallery agreement, the largest probability difference). The
tiny random CLIP's agreement is measured too. Peak RSS of each precision comes from its own subprocess.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.bench import add_metric, bench_dir, log  # noqa: E402 - needs ROOT on sys.path

BATCH = 8
TOP_K = 5


def _agreement(a, b, ea: np.ndarray, eb: np.ndarray) -> dict[str, float]:
    cosine = (ea * eb).sum(axis=1) / np.linalg.norm(ea, axis=1) / np.linalg.norm(eb, axis=1)
    return {"cosine_min": float(cosine.min()), "cosine_mean": float(cosine.mean()),
            "top1_agree": float(np.mean([x.indices[0] == y.indices[0] for x, y in zip(a, b)])),
            "top5_agree": float(np.mean([list(x.indices) == list(y.indices) for x, y in zip(a, b)])),
            "max_prob_diff": float(max(np.abs(x.gallery_probs - y.gallery_probs).max() for x, y in zip(a, b)))}


def _embeddings(model, photos) -> np.ndarray:
    from PIL import Image

    pixels = model.processor(images=[Image.open(p).convert("RGB") for p in photos], return_tensors="pt")
    return model.embed_pixels(pixels["pixel_values"]).numpy()


def _compare(clip: Path, photos: list[Path], cache: Path, timing: bool) -> dict:
    from model_utils import GeoCLIP

    models = {name: GeoCLIP.from_pretrained(clip_model=str(clip), device="cpu", precision=name, cache_dir=cache)
              for name in ("fp32", "bf16")}
    for model in models.values():
        model.load_backbone()
        model.gallery_embeddings()
        model.predict([str(photos[0])], top_k=TOP_K)  # warm
    out: dict = {}
    if timing:
        single = {name: [] for name in models}
        for _ in range(3):  # alternating, best of three
            for name, model in models.items():
                t0 = time.perf_counter()
                model.predict([str(photos[0])], top_k=TOP_K)
                single[name].append(time.perf_counter() - t0)
        out["single_s"] = {name: min(times) for name, times in single.items()}
        folder = {}
        for name, model in models.items():
            t0 = time.perf_counter()
            folder[name] = model.predict([str(p) for p in photos], top_k=TOP_K, batch_size=BATCH)
            out.setdefault("folder_photos_per_s", {})[name] = len(photos) / (time.perf_counter() - t0)
    else:
        folder = {name: model.predict([str(p) for p in photos], top_k=TOP_K, batch_size=BATCH)
                  for name, model in models.items()}
    sample = photos[:8]
    out["agreement"] = _agreement(folder["fp32"], folder["bf16"], _embeddings(models["fp32"], sample),
                                  _embeddings(models["bf16"], sample))
    return out


def bench_precision(out: dict) -> None:
    from model_utils.model.device import cpu_has_native_bf16
    from tools.bench_core import ensure_clip, ensure_folder_photos
    from tools.bench_rss import measure_rss
    from tools.samples.clip_factory import build_clip

    native = cpu_has_native_bf16()
    out["cpu_native_bf16"] = native
    clip, _ = ensure_clip()
    photos, _ = ensure_folder_photos()
    cache = bench_dir() / ".cache"
    log("precision: ViT-L/14-shaped backbone, fp32 and bf16 alternating")
    vit = _compare(clip, photos, cache, timing=True)
    single, folder, agree = vit["single_s"], vit["folder_photos_per_s"], vit["agreement"]
    add_metric(out, "single photo, fp32", single["fp32"], "s")
    add_metric(out, "single photo, bf16", single["bf16"], "s")
    add_metric(out, "single photo speed-up bf16 / fp32", single["fp32"] / single["bf16"], "x",
               (">", 1.0) if native else None, note="native bf16" if native else "no native bf16 on this CPU")
    add_metric(out, "folder of 32, fp32", folder["fp32"], "photos/s")
    add_metric(out, "folder of 32, bf16", folder["bf16"], "photos/s")
    add_metric(out, "folder speed-up bf16 / fp32", folder["bf16"] / folder["fp32"], "x")
    for key, label in (("cosine_min", "image embedding cosine, lowest of 8"), ("top1_agree", "top-1 agreement, 32"),
                       ("top5_agree", "top-5 identical, 32"), ("max_prob_diff", "largest probability difference")):
        add_metric(out, f"ViT-L/14 bf16 vs fp32: {label}", agree[key], "",
                   (">=", 0.9999) if key == "cosine_min" else None)
    log("precision: tiny backbone agreement")
    tiny = _compare(build_clip(cache / "tiny-clip", size="tiny", seed=0), photos, cache, timing=False)["agreement"]
    add_metric(out, "tiny bf16 vs fp32: image embedding cosine, lowest of 8", tiny["cosine_min"], "", (">=", 0.9999))
    add_metric(out, "tiny bf16 vs fp32: top-5 identical, 32", tiny["top5_agree"])
    log("precision: peak RSS per precision (subprocesses)")
    for name in ("fp32", "bf16"):
        rss = measure_rss("ours", clip, photos[0], cache, precision=name)
        add_metric(out, f"peak RSS, {name} (load + one photo)", rss["peak_rss_mb"], "MB",
                   note="autocast keeps fp32 weights: bf16 saves no weight memory")
    out["vit_l14"] = vit
    out["tiny_agreement"] = tiny
