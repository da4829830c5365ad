"""A synthetic reference collection whose truth is known: seeded scenes, each photographed as variants.

A scene is a made-up picture (smooth colour field, a few shapes, fine texture) with a GPS position; its
variants are what a second photographer would bring back from the same spot: a crop, another exposure,
a mirror image, another JPEG quality. Variants of one scene share the scene's position exactly (written
as EXIF GPS, so a folder of them is a collection as a user's camera would make it). Tests and the
``reference`` benchmark both draw from here, so they measure the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

from .photos import gps_exif

SCENE_SIZE = (320, 240)

# Places far apart (every pair > 300 km), so "within 25 km" can only mean "the right scene".
PLACES: tuple[tuple[str, float, float], ...] = (
    ("Paris", 48.8566, 2.3522), ("Cairo", 30.0444, 31.2357), ("Tokyo", 35.6762, 139.6503),
    ("Lima", -12.0464, -77.0428), ("Nairobi", -1.2921, 36.8219), ("Sydney", -33.8688, 151.2093),
    ("Reykjavik", 64.1466, -21.9426), ("Denver", 39.7392, -104.9903), ("Mumbai", 19.0760, 72.8777),
    ("Cape Town", -33.9249, 18.4241), ("Moscow", 55.7558, 37.6173), ("Anchorage", 61.2181, -149.9003),
    ("Buenos Aires", -34.6037, -58.3816), ("Singapore", 1.3521, 103.8198), ("Madrid", 40.4168, -3.7038),
    ("Mexico City", 19.4326, -99.1332), ("Perth", -31.9505, 115.8605), ("Lagos", 6.5244, 3.3792),
    ("Ulaanbaatar", 47.8864, 106.9057), ("Honolulu", 21.3069, -157.8583), ("Oslo", 59.9139, 10.7522),
    ("Tehran", 35.6892, 51.3890), ("Santiago", -33.4489, -70.6693), ("Montreal", 45.5017, -73.5673),
)


@dataclass(frozen=True)
class ScenePhoto:
    """One written variant: its file, its scene, where the scene is and whether it is a query."""

    path: Path
    scene: int
    lat: float
    lon: float
    query: bool


def scene_image(seed: int, size: tuple[int, int] = SCENE_SIZE) -> Image.Image:
    """A seeded picture: a smooth field of three colour blobs, a few filled shapes and fine noise."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    field = np.zeros((h, w, 3), np.float32)
    for _ in range(3):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.3, 0.8) * w
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
        field += blob[..., None] * rng.uniform(0, 255, 3)
    field = 255 * field / max(float(field.max()), 1.0)
    image = Image.fromarray(np.clip(field + rng.normal(0, 8, field.shape), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(3, 7))):
        x0, y0 = rng.uniform(0, w * 0.8), rng.uniform(0, h * 0.8)
        x1, y1 = x0 + rng.uniform(20, w * 0.5), y0 + rng.uniform(20, h * 0.5)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x0, y0, x1, y1], fill=colour)
    return image


# How far a variant strays from its scene. The tiny random test backbone tells scenes apart under these (an
# untrained ViT's embedding moves with brightness about as much as from one scene to the next: at +-30%
# exposure and 75% crops it finds a variant's own scene first only 69-77% of the time); a trained CLIP
# shrugs off far more.
CROP = (0.85, 0.97)  # share of each side kept
EXPOSURE = 0.10  # brightness x (1 +- this)
QUALITY = (40, 96)  # JPEG quality, upper bound excluded


def variant(image: Image.Image, rng: np.random.Generator, crop: tuple[float, float] = CROP,
            exposure: float = EXPOSURE) -> tuple[Image.Image, int]:
    """(a crop, another exposure, mirrored half the time; a JPEG quality to save it with)."""
    w, h = image.size
    cw, ch = int(w * rng.uniform(*crop)), int(h * rng.uniform(*crop))
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    gain = float(rng.uniform(1 - exposure, 1 + exposure))
    out = ImageEnhance.Brightness(image.crop((x0, y0, x0 + cw, y0 + ch))).enhance(gain)
    if rng.random() < 0.5:
        out = ImageOps.mirror(out)
    return out, int(rng.integers(*QUALITY))


def write_scenes(folder: Path, n_scenes: int, n_refs: int, n_queries: int, seed: int = 0,
                 first_scene: int = 0, crop: tuple[float, float] = CROP, exposure: float = EXPOSURE
                 ) -> list[ScenePhoto]:
    """Scenes ``first_scene`` .. ``first_scene + n_scenes - 1``, each as ``n_refs`` reference variants (in
    ``folder/refs``, with EXIF GPS) and ``n_queries`` held-out variants (in ``folder/queries``, without)."""
    out = []
    for scene in range(first_scene, first_scene + n_scenes):
        name, lat, lon = PLACES[scene % len(PLACES)]
        lat, lon = lat + 0.5 * (scene // len(PLACES)), lon  # more scenes than places: half a degree apart
        base = scene_image(seed * 10_000 + scene)
        rng = np.random.default_rng([seed, scene])
        for i in range(n_refs + n_queries):
            query = i >= n_refs
            image, quality = variant(base, rng, crop, exposure)
            path = folder / ("queries" if query else "refs") / f"scene{scene:03d}_{i:02d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            image.save(path, quality=quality, **({} if query else {"exif": gps_exif(lat, lon)}))
            out.append(ScenePhoto(path, scene, lat, lon, query))
    return out


def unlike_photos(folder: Path) -> list[str]:
    """A night shot, a red wall and a striped awning: unlike every scene, even to the untrained tiny backbone
    (whose embedding of a flat mid-grey picture is, by contrast, close to everything)."""
    yy, xx = np.mgrid[0:240, 0:320]
    stripes = np.stack([np.sin(xx / 3) * 127 + 128, np.zeros_like(xx), np.cos(yy / 5) * 127 + 128], -1)
    images = {"night": Image.new("RGB", (320, 240), (3, 3, 8)), "red_wall": Image.new("RGB", (320, 240), (220, 20, 20)),
              "awning": Image.fromarray(stripes.astype(np.uint8))}
    folder.mkdir(parents=True, exist_ok=True)
    for name, image in images.items():
        image.save(folder / f"{name}.jpg", quality=90)
    return [str(folder / f"{name}.jpg") for name in images]
