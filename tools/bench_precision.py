"""Benchmark section ``precision``: fp32, bf16 autocast and int8 dynamic quantization of the CLIP backbone on
this CPU.

The same random ViT-L/14-shaped CLIP as section ``core`` (``bench/.clip-vit-l-14``) and its camera-sized
photos. Measured in one process, alternating the variants so that other load on the machine hits all of them:
one photo's latency (best of three), a folder of photos per second, and the agreement of each variant's
answers with fp32 (image embedding 1 - cosine over every photo, top-1 and top-5 gallery agreement, top-5
agreement where fp32's top-5 is untied by ``UNTIED_GAP``, the largest probability difference). The tiny
random CLIP's agreement is measured over all 32 photos. Peak RSS of each variant comes from its own
subprocess. int8 is the ``int8`` precision: ``torch.ao.quantization.quantize_dynamic`` on the backbone's Linear
layers, offered as a choice (never by auto) because it pays on CPUs without native bf16. The CPU flags that
decide bf16 are recorded, and the previous run's figures are kept when they came from a CPU with other flags.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from tools.bench import add_metric, bench_dir, log

ROOT = Path(__file__).resolve().parents[1]

BATCH = 8
TOP_K = 5
VARIANTS = ("fp32", "bf16", "int8")
UNTIED_GAP = 1e-4  # fp32 probability gap between consecutive ranks 1..6 for a top-5 to count as untied


def folder_size() -> int:
    """The ViT-L folder: the issue's 32 photos where bf16 runs natively; 8 elsewhere, where bf16 costs 20-65 s a
    photo (32 would add about half an hour to make bench). GEOCLIP_BENCH_PRECISION_PHOTOS overrides."""
    from model_utils.model.device import cpu_has_native_bf16

    return int(os.environ.get("GEOCLIP_BENCH_PRECISION_PHOTOS") or (32 if cpu_has_native_bf16() else 8))


def cpu_flags() -> list[str]:
    """The /proc/cpuinfo flags that matter for bf16 / int8 matrix maths (avx2, avx512*, amx*)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    flags = {f for line in text.splitlines() if line.startswith("flags") for f in line.split(":", 1)[1].split()}
    return sorted(f for f in flags if f == "avx2" or f.startswith(("avx512", "amx", "avx_vnni")))


def _untied(probs: np.ndarray, gap: float) -> bool:
    top = np.sort(probs)[::-1][:TOP_K + 1]
    return bool(np.all(-np.diff(top) > gap))


def _agreement(a, b, ea: np.ndarray, eb: np.ndarray) -> dict[str, float]:
    cosine = (ea * eb).sum(axis=1) / np.linalg.norm(ea, axis=1) / np.linalg.norm(eb, axis=1)
    untied = [i for i, x in enumerate(a) if _untied(x.gallery_probs, UNTIED_GAP)]
    same5 = [list(x.indices) == list(y.indices) for x, y in zip(a, b)]
    return {"photos": len(a), "one_minus_cosine_max": float(1 - cosine.min()), "cosine_mean": float(cosine.mean()),
            "top1_agree": float(np.mean([x.indices[0] == y.indices[0] for x, y in zip(a, b)])),
            "top5_agree": float(np.mean(same5)), "untied_photos": len(untied),
            "top5_agree_untied": float(np.mean([same5[i] for i in untied])) if untied else float("nan"),
            "max_prob_diff": float(max(np.abs(x.gallery_probs - y.gallery_probs).max() for x, y in zip(a, b)))}


def _models(clip: Path, cache: Path, names=VARIANTS) -> dict:
    from model_utils import GeoCLIP

    models = {}
    for name in names:
        models[name] = GeoCLIP.from_pretrained(clip_model=str(clip), device="cpu", precision=name, cache_dir=cache)
        models[name].load_backbone()
        models[name].gallery_embeddings()
    return models


def _recording(model) -> list:
    """Record the image embeddings a predict computes, so agreement needs no second forward pass."""
    seen: list = []
    forward = type(model).embed_pixels.__get__(model)

    def embed(pixels):
        out = forward(pixels)
        seen.append(out.numpy().copy())
        return out

    model.embed_pixels = embed
    return seen


def _compare(clip: Path, photos: list[Path], cache: Path, timing: bool, names=VARIANTS) -> dict:
    models = _models(clip, cache, names)
    out: dict = {}
    for model in models.values():
        model.predict([str(photos[0])], top_k=TOP_K)  # warm
    if timing:
        single: dict = {name: [] for name in models}
        for _ in range(3):  # alternating, best of three
            for name, model in models.items():
                t0 = time.perf_counter()
                model.predict([str(photos[0])], top_k=TOP_K)
                single[name].append(time.perf_counter() - t0)
        out["single_s"] = {name: min(times) for name, times in single.items()}
    folder, emb, rates = {}, {}, {name: [] for name in models}
    for _ in range(2 if timing else 1):  # alternating, best of two: load from other work hits every variant
        for name, model in models.items():
            seen = _recording(model)
            t0 = time.perf_counter()
            folder[name] = model.predict([str(p) for p in photos], top_k=TOP_K, batch_size=BATCH)
            rates[name].append(len(photos) / (time.perf_counter() - t0))
            emb[name] = np.concatenate(seen)
            log(f"precision: folder of {len(photos)} in {name} done")
    out["folder_photos_per_s"] = {name: max(r) for name, r in rates.items()}
    out["agreement"] = {name: _agreement(folder["fp32"], folder[name], emb["fp32"], emb[name])
                        for name in models if name != "fp32"}
    return out


def _earlier(flags: list[str], native: bool) -> dict | None:
    """The previous run's precision record, when it was measured on a CPU with other bf16 support."""
    try:
        prev = json.loads((bench_dir() / "results.json").read_text(encoding="utf-8"))["sections"]["precision"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    res = prev.get("results") or {}
    if res.get("earlier_machine"):
        return res["earlier_machine"]
    if res.get("cpu_native_bf16") == native and res.get("cpu_flags", flags) == flags:
        return None
    return {"started": prev.get("started"), "load_average": prev.get("load_average"),
            "cpu_native_bf16": res.get("cpu_native_bf16"), "cpu_flags": res.get("cpu_flags"),
            "metrics": res.get("metrics")}


def _report_earlier(out: dict, earlier: dict) -> None:
    flags = earlier.get("cpu_flags") or ["avx512_bf16", "avx512_vnni (the full list of that machine was not recorded)"]
    rows = {r["name"]: r["value"] for r in earlier.get("metrics") or []}

    def get(name: str) -> float:
        value = rows.get(name)
        return float("nan") if value is None else float(value)

    cos = get("ViT-L/14 bf16 vs fp32: image embedding cosine, lowest of 8")
    out.setdefault("notes", []).append(
        f"Earlier machine (measured {earlier.get('started')}, load {earlier.get('load_average')}), CPU flags "
        f"{', '.join(flags)}, native bf16 {'yes' if earlier.get('cpu_native_bf16') else 'no'}: single photo fp32 "
        f"{get('single photo, fp32'):.3g} s, bf16 {get('single photo, bf16'):.3g} s (bf16 "
        f"{get('single photo speed-up bf16 / fp32'):.3g}x faster); folder of 32 {get('folder of 32, fp32'):.3g} vs "
        f"{get('folder of 32, bf16'):.3g} photos/s; ViT-L bf16 vs fp32 1 - cosine, largest of 8 {1 - cos:.2e}, "
        f"top-5 identical {get('ViT-L/14 bf16 vs fp32: top-5 identical, 32'):.3g} of 32; int8 not measured there. "
        "Its full rows are under earlier_machine in results.json.")
    out["earlier_machine"] = earlier


def _agreement_rows(out: dict, label: str, agree: dict) -> None:
    for name, a in agree.items():
        n = a["photos"]
        add_metric(out, f"{label} {name} vs fp32: image embedding 1 - cosine, largest of {n}",
                   a["one_minus_cosine_max"], "", ("<=", 1e-4) if name == "bf16" else ("<=", 1e-2))
        add_metric(out, f"{label} {name} vs fp32: top-1 agreement, {n}", a["top1_agree"])
        add_metric(out, f"{label} {name} vs fp32: top-5 identical, {n}", a["top5_agree"])
        add_metric(out, f"{label} {name} vs fp32: top-5 identical where fp32's is untied (gap > {UNTIED_GAP:g}), "
                        f"{a['untied_photos']} of {n}", a["top5_agree_untied"])
        add_metric(out, f"{label} {name} vs fp32: largest probability difference", a["max_prob_diff"])


def bench_precision(out: dict) -> None:
    from model_utils.model.device import cpu_has_native_bf16
    from tools.bench_core import ensure_clip, ensure_folder_photos
    from tools.bench_rss import measure_rss
    from tools.samples.clip_factory import build_clip

    native, flags = cpu_has_native_bf16(), cpu_flags()
    earlier = _earlier(flags, native)
    out["cpu_native_bf16"], out["cpu_flags"] = native, flags
    out["load_average_at_start"] = list(np.round(os.getloadavg(), 2))
    clip, _ = ensure_clip()
    photos, _ = ensure_folder_photos()
    cache = bench_dir() / ".cache"
    n = min(folder_size(), len(photos))
    log(f"precision: ViT-L/14-shaped backbone, {', '.join(VARIANTS)} alternating; folder of {n}")
    vit = _compare(clip, photos[:n], cache, timing=True)
    single, folder = vit["single_s"], vit["folder_photos_per_s"]
    for name in VARIANTS:
        add_metric(out, f"single photo, {name}", 1 / single[name], "photos/s", note=f"{single[name]:.3g} s")
    add_metric(out, "single photo speed-up bf16 / fp32", single["fp32"] / single["bf16"], "x",
               (">", 1.0) if native else None,
               note="native bf16" if native else f"no native bf16 on this CPU ({', '.join(flags)}): auto picks fp32")
    add_metric(out, "single photo speed-up int8 / fp32", single["fp32"] / single["int8"], "x")
    for name in VARIANTS:
        add_metric(out, f"folder of {n}, {name}", folder[name], "photos/s")
    add_metric(out, "folder speed-up bf16 / fp32", folder["bf16"] / folder["fp32"], "x")
    add_metric(out, "folder speed-up int8 / fp32", folder["int8"] / folder["fp32"], "x")
    _agreement_rows(out, "ViT-L/14", vit["agreement"])
    log("precision: tiny backbone agreement, all photos")
    tiny = _compare(build_clip(cache / "tiny-clip", size="tiny", seed=0), photos, cache, timing=False)
    _agreement_rows(out, "tiny", tiny["agreement"])
    log("precision: peak RSS per variant (subprocesses)")
    notes = {"bf16": "autocast keeps fp32 weights: bf16 saves no weight memory",
             "int8": "fp32 weights are loaded, then quantized in place"}
    for name in VARIANTS:
        rss = measure_rss("ours", clip, photos[0], cache, precision=name)
        add_metric(out, f"peak RSS, {name} (load + one photo)", rss["peak_rss_mb"], "MB", note=notes.get(name, ""))
    out.setdefault("notes", []).append(
        f"This machine's CPU flags for bf16 / int8 maths: {', '.join(flags) or 'none'}; native bf16 "
        f"{'yes' if native else 'no'}.")
    out["notes"].append(
        f"The ViT-L/14 folder is {n} photos (GEOCLIP_BENCH_PRECISION_PHOTOS), not 32: on a CPU without native bf16 "
        "the bf16 forward is several times slower than fp32; the tiny backbone's agreement covers all "
        f"{len(photos)}. Embeddings are those of the timed folder run. Load average at start: "
        f"{out['load_average_at_start']}.")
    out["notes"].append("int8 is the 'int8' precision (model_utils.model.device.quantize_int8): "
                        "torch.ao.quantization.quantize_dynamic on the backbone's Linear layers, in place. torch 2.13 "
                        "marks it deprecated (a warning, silenced there; torchao succeeds it); it still works.")
    if earlier:
        _report_earlier(out, earlier)
    out["vit_l14"], out["tiny"] = vit, tiny
