"""Features of a downstream linear probe: GeoCLIP GPS embeddings, raw lat/lon, photo embeddings, fused.

Split from ``downstream`` (labels, split, training): this module turns rows into feature matrices
and says which rows could not be used (e.g. an unreadable photo) instead of failing the whole probe.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import Canceled
from ..geo import validate_latlon
from ..photos.images import DEFAULT_MAX_PIXELS, PhotoError, load_photo
from ..progress import IsCanceled, Progress

LISTED = 5  # rows or classes named in a message before "..."

FEATURE_KINDS: tuple[str, ...] = ("gps", "latlon", "image", "gps+image")
FEATURE_NAMES: dict[str, str] = {
    "gps": "GeoCLIP GPS embedding (512-d, L2-normalised)",
    "latlon": "raw latitude/longitude (standardised baseline)",
    "image": "GeoCLIP image embedding (512-d, L2-normalised)",
    "gps+image": "GPS + image embeddings (1024-d, both L2-normalised)",
}

@dataclass
class FeatureSet:
    """Per-row features; rows without usable features (a bad photo) have ``ok`` False."""

    kind: str
    values: np.ndarray
    ok: np.ndarray
    problems: list[tuple[Any, str]] = field(default_factory=list)
    """(row name such as "row 3" or "fid 7", message) for rows that were skipped, e.g. unreadable photos."""



def cell_text(value: Any) -> str | None:
    """One raw attribute value (a label or a photo path) as text, or None when empty."""
    if value is None:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer():
            value = int(value)
    text = str(value).strip()
    return text or None


def _unit(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norm, 1e-12)).astype(np.float32)


def row_list(items: Sequence[tuple[Any, str]]) -> str:
    listed = "; ".join(f"{row}: {msg}" for row, msg in items[:LISTED])
    more = f"; … and {len(items) - LISTED} more" if len(items) > LISTED else ""
    return listed + more


def check_photo_paths(paths: Sequence[Any], row_ids: Sequence[Any] | None = None,
                      photo_name: str = "photo") -> tuple[np.ndarray, list[tuple[Any, str]]]:
    """Cheap existence check before any model is loaded: (exists mask, [(row id, problem)]).

    Raises ValueError, naming the first rows and paths, when no row points to an existing file.
    """
    ids = list(row_ids) if row_ids is not None else [f"row {i}" for i in range(len(paths))]
    exists = np.zeros(len(paths), dtype=bool)
    problems: list[tuple[Any, str]] = []
    for i, raw in enumerate(paths):
        text = cell_text(raw)
        if text is None:
            problems.append((ids[i], f"empty {photo_name} path"))
        elif not os.path.isfile(text):
            problems.append((ids[i], f"no file at '{text}'"))
        else:
            exists[i] = True
    if len(paths) and not exists.any():
        raise ValueError(f"the photo field '{photo_name}' points to no existing file in any of the {len(paths)} "
                         f"rows ({row_list(problems)}). Check the field and that the photos' folder is reachable "
                         f"(relative paths are resolved against the layer's folder).")
    return exists, problems


def image_embeddings(model, paths: Sequence[Any], row_ids: Sequence[Any] | None = None, batch_size: int = 8,
                     max_pixels: int = DEFAULT_MAX_PIXELS, progress: Progress | None = None,
                     is_canceled: IsCanceled | None = None) -> FeatureSet:
    """GeoCLIP image embeddings (unit length) of the photo at each path; bad photos are skipped rows."""
    ids = list(row_ids) if row_ids is not None else [f"row {i}" for i in range(len(paths))]
    n = len(paths)
    values = np.zeros((n, 512), dtype=np.float32)
    ok = np.zeros(n, dtype=bool)
    problems: list[tuple[Any, str]] = []
    processor = model.processor  # loads the backbone (BackboneUnavailable has the user message)
    for start in range(0, n, batch_size):
        if is_canceled is not None and is_canceled():
            raise Canceled("Canceled by the user while embedding photos")
        images, rows = [], []
        for i in range(start, min(start + batch_size, n)):
            text = cell_text(paths[i])
            if text is None:
                problems.append((ids[i], "empty photo path"))
                continue
            try:
                images.append(load_photo(text, max_pixels=max_pixels).image)
                rows.append(i)
            except PhotoError as exc:
                problems.append((ids[i], str(exc)))
        if images:
            pixels = processor(images=images, return_tensors="pt")["pixel_values"]
            values[rows] = model.embed_pixels(pixels).float().cpu().numpy()
            ok[rows] = True
        if progress is not None:
            done = min(start + batch_size, n)
            progress(done / max(n, 1), f"Embedded {done}/{n} photos")
    return FeatureSet("image", values, ok, problems)


def build_features(kind: str, latlon=None, photos: Sequence[Any] | None = None, model=None,
                   row_ids: Sequence[Any] | None = None, photo_name: str = "photo",
                   progress: Progress | None = None, is_canceled: IsCanceled | None = None) -> FeatureSet:
    """One feature set for all rows. "latlon" needs no model; "gps" needs only the location encoder."""
    if kind not in FEATURE_KINDS:
        raise ValueError(f"features must be one of {', '.join(FEATURE_KINDS)}; got {kind!r}")
    gps = None
    if kind in ("gps", "latlon", "gps+image"):
        if latlon is None:
            raise ValueError(f"'{kind}' features need coordinates")
        arr = validate_latlon(latlon)
        if kind == "latlon":
            return FeatureSet(kind, arr.astype(np.float64), np.ones(len(arr), dtype=bool))
        if model is None:
            raise ValueError(f"'{kind}' features need a GeoCLIP model")
        gps = _unit(model.encode_locations(arr, normalize=False))
        if kind == "gps":
            return FeatureSet(kind, gps, np.ones(len(arr), dtype=bool))
    if photos is None:
        raise ValueError(f"'{kind}' features need a photo path field")
    if model is None:
        raise ValueError(f"'{kind}' features need a GeoCLIP model with its CLIP backbone")
    check_photo_paths(photos, row_ids, photo_name)
    images = image_embeddings(model, photos, row_ids, progress=progress, is_canceled=is_canceled)
    if not images.ok.any():
        raise ValueError(f"none of the photos in the field '{photo_name}' could be read "
                         f"({row_list(images.problems)})")
    if gps is None:
        return images
    if len(gps) != len(images.values):
        raise ValueError(f"{len(gps)} coordinates but {len(images.values)} photos")
    return FeatureSet(kind, np.hstack([gps, images.values]), images.ok, images.problems)


