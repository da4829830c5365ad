"""Batches of photos -> probabilities over a GPS gallery -> top-k, with decoding overlapped.

Photo decoding and CLIP preprocessing of batch i+1 run in a worker thread (PIL releases the GIL)
while the backbone runs batch i. Bad photos become results with ``error`` set; the rest go on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import Canceled
from ..photos.images import DEFAULT_MAX_PIXELS, PhotoError, load_photo
from ..progress import IsCanceled, Progress


@dataclass
class Prediction:
    """One photo's answer: top-k gallery locations (best first) and the full probability vector."""

    source: str
    lat: np.ndarray = field(default_factory=lambda: np.empty(0))
    lon: np.ndarray = field(default_factory=lambda: np.empty(0))
    prob: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.float32))
    indices: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    gallery_probs: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.float32))
    gps: tuple[float, float] | None = None  # EXIF ground truth, when the photo has it
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def errors_km(self) -> np.ndarray | None:
        """Each guess's geodesic distance (km) to the EXIF position, best guess first; None without one."""
        if self.gps is None:
            return None
        from ..geo import geodesic_km

        return np.asarray(geodesic_km(self.gps[0], self.gps[1], self.lat, self.lon), dtype=np.float64).reshape(-1)


def _source_name(item, index: int) -> str:
    return str(item) if not hasattr(item, "size") else f"<PIL image #{index}>"


def _prepare(items: Sequence, start: int, processor, max_pixels: int):
    """Decode and preprocess one batch: (pixel tensor or None, [(index, name, gps)], [(index, name, error)])."""
    good, bad, images = [], [], []
    for offset, item in enumerate(items):
        index = start + offset
        try:
            photo = load_photo(item, max_pixels=max_pixels)
        except PhotoError as exc:
            bad.append((index, _source_name(item, index), str(exc)))
            continue
        good.append((index, _source_name(item, index), photo.gps))
        images.append(photo.image)
    if not images:
        return None, good, bad
    pixels = processor(images=images, return_tensors="pt")["pixel_values"]
    return pixels, good, bad


@dataclass(frozen=True)
class ImageEncoder:
    """The image side of a model: CLIP's preprocessing (``processor``) and pixels -> unit-length GeoCLIP
    embeddings (``embed_pixels``); photos above ``max_pixels`` are refused before decoding (decompression bombs)."""

    embed_pixels: Callable[[torch.Tensor], torch.Tensor]
    processor: Any
    max_pixels: int = DEFAULT_MAX_PIXELS


@dataclass(frozen=True)
class GallerySearch:
    """What a query embedding is ranked against: the gallery's positions, their unit-length embeddings on the
    model's device and GeoCLIP's logit scale."""

    latlon: np.ndarray
    embeddings: torch.Tensor
    logit_scale: float

    def rank(self, feats: torch.Tensor, sources: Sequence[str], top_k: int,
             gps: Sequence | None = None) -> list[Prediction]:
        """Unit-length query embeddings (B, 512) -> one Prediction each: softmax over the gallery, top-k
        (``top_k`` clamped to 1..gallery size)."""
        top_k = int(min(max(top_k, 1), len(self.latlon)))
        with torch.inference_mode():
            probs = (self.logit_scale * (feats @ self.embeddings.T)).float().softmax(dim=-1)
            top = torch.topk(probs, top_k, dim=1)
        probs_np, idx_np, val_np = probs.cpu().numpy(), top.indices.cpu().numpy(), top.values.cpu().numpy()
        out = []
        for row, source in enumerate(sources):
            idx = idx_np[row]
            out.append(Prediction(source=source, lat=self.latlon[idx, 0].astype(np.float64),
                                  lon=self.latlon[idx, 1].astype(np.float64), prob=val_np[row], indices=idx,
                                  gallery_probs=probs_np[row], gps=gps[row] if gps is not None else None))
        return out


@dataclass
class EmbeddedBatch:
    """One batch after the backbone: the photos that decoded (input index, name, EXIF GPS) with their unit-length
    GeoCLIP embeddings (one row each, or None when none decoded), and the ones that failed (index, name, message)."""

    good: list[tuple[int, str, tuple[float, float] | None]]
    feats: torch.Tensor | None
    bad: list[tuple[int, str, str]]


def iter_batches(
    items: Sequence,
    encoder: ImageEncoder,
    batch_size: int = 8,
    progress: Progress | None = None,
    is_canceled: IsCanceled | None = None,
    verb: str = "geolocated",
) -> Iterator[EmbeddedBatch]:
    """Decode (one batch ahead, in a worker thread) and embed ``items``; one EmbeddedBatch per batch.

    The one image pipeline: predictions and reference collections both embed photos through it. Progress is
    reported once the caller has taken a batch (``verb`` says what was done to the photos that decoded).
    """
    n = len(items)
    starts = list(range(0, n, batch_size))
    failed = 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="geoclip-decode") as pool:
        processor, max_pixels = encoder.processor, encoder.max_pixels
        pending = pool.submit(_prepare, items[0:batch_size], 0, processor, max_pixels) if starts else None
        for i, start in enumerate(starts):
            if is_canceled is not None and is_canceled():
                pending.cancel()
                raise Canceled("Canceled by the user between batches")
            pixels, good, bad = pending.result()
            if i + 1 < len(starts):
                nxt = starts[i + 1]
                pending = pool.submit(_prepare, items[nxt:nxt + batch_size], nxt, processor, max_pixels)
            yield EmbeddedBatch(good, encoder.embed_pixels(pixels) if pixels is not None else None, bad)
            failed += len(bad)
            if progress is not None:
                done = min(start + batch_size, n)
                progress(done / n, progress_message(done, n, failed, "photo", verb))


def iter_predictions(
    items: Sequence,
    encoder: ImageEncoder,
    search: GallerySearch,
    top_k: int = 5,
    batch_size: int = 8,
    progress: Progress | None = None,
    is_canceled: IsCanceled | None = None,
    post: Callable[[list[Prediction], torch.Tensor], list] | None = None,
) -> Iterator[Prediction]:
    """Yield one Prediction per item, in input order, batch by batch.

    ``post(predictions, embeddings)`` may turn a batch's predictions into others (e.g. fused with a reference
    collection) while their embeddings are at hand.
    """
    for batch in iter_batches(items, encoder, batch_size, progress, is_canceled):
        results: dict[int, Prediction] = {index: Prediction(source=name, error=msg) for index, name, msg in batch.bad}
        if batch.feats is not None:
            ranked = search.rank(batch.feats, [name for _, name, _ in batch.good], top_k,
                                 gps=[gps for _, _, gps in batch.good])
            if post is not None:
                ranked = post(ranked, batch.feats)
            results.update(zip([index for index, _, _ in batch.good], ranked))
        for index in sorted(results):
            yield results[index]


def progress_message(done: int, total: int, failed: int, noun: str, verb: str = "geolocated") -> str:
    """'12/40 photos done: 11 geolocated, 1 skipped': counts that never call a failure a success."""
    plural = "queries" if noun == "query" else f"{noun}s"
    text = f"{done}/{total} {plural} done: {done - failed} {verb}"
    return text + (f", {failed} skipped" if failed else "")


def iter_text_predictions(
    texts: Sequence[str],
    embed_texts: Callable[[list[str]], torch.Tensor],
    search: GallerySearch,
    top_k: int = 5,
    batch_size: int = 32,
    progress: Progress | None = None,
    is_canceled: IsCanceled | None = None,
) -> Iterator[Prediction]:
    """Yield one Prediction per text query, in input order; an empty query gets ``error`` set."""
    n = len(texts)
    failed = 0
    for start in range(0, n, batch_size):
        if is_canceled is not None and is_canceled():
            raise Canceled("Canceled by the user between batches")
        chunk = [str(t) for t in texts[start:start + batch_size]]
        good = [i for i, text in enumerate(chunk) if text.strip()]
        ranked = dict(zip(good, search.rank(embed_texts([chunk[i].strip() for i in good]), [chunk[i] for i in good],
                                            top_k))) if good else {}
        for i, text in enumerate(chunk):
            yield ranked.get(i) or Prediction(source=text, error=f"Query {start + i + 1} is empty: type a place, "
                                                                 "landmark or scene description.")
        failed += len(chunk) - len(good)
        if progress is not None:
            done = min(start + batch_size, n)
            progress(done / n, progress_message(done, n, failed, "query"))


def as_list(images: Iterable | str) -> list:
    """Accept one path/PIL image or an iterable of them."""
    if isinstance(images, (str, bytes)) or hasattr(images, "size") or hasattr(images, "__fspath__"):
        return [images]
    return list(images)
