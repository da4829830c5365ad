"""Synthetic test photos written to disk (no binary files in the repository)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_photos(folder: Path, n: int = 4, seed: int = 0, size=(320, 240)) -> list[Path]:
    """``n`` distinct JPEG photos with smooth colour fields and noise."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        h, w = size[1] + 16 * i, size[0] - 8 * i
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([(xx * (i + 1)) % 256, (yy * 2 + 40 * i) % 256, (xx + yy + 80 * i) % 256], -1)
        noise = rng.integers(0, 40, size=(h, w, 3))
        arr = np.clip(base + noise, 0, 255).astype(np.uint8)
        path = folder / f"photo_{i:02d}.jpg"
        Image.fromarray(arr).save(path, quality=90)
        paths.append(path)
    return paths


def write_photo_set(folder: Path, n: int, seed: int = 0, size=(160, 120), gps_every: int = 0) -> list[Path]:
    """``n`` distinct small JPEGs (``photo_0000.jpg``...), every ``gps_every``-th with EXIF GPS at a random place
    on land or sea: a run of any size for benchmarks and the desktop test (written only where missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        colour = rng.integers(0, 256, 3)
        noise = rng.integers(0, 60, size=(size[1], size[0], 3))
        place = (float(rng.uniform(-60, 70)), float(rng.uniform(-180, 180)))
        path = folder / f"photo_{i:04d}.jpg"
        paths.append(path)
        if path.is_file():
            continue
        image = Image.fromarray(np.clip(colour + noise, 0, 255).astype(np.uint8))
        with_gps = gps_every and i % gps_every == 0
        image.save(path, quality=85, **({"exif": gps_exif(*place)} if with_gps else {}))
    return paths


def gps_exif(lat: float, lon: float, orientation: int | None = None) -> Image.Exif:
    """EXIF holding a GPS position as cameras write it (degrees, minutes, seconds and N/S/E/W) and, if given, an
    orientation."""
    exif = Image.Exif()

    def dms(value: float):
        value = abs(value)
        d = int(value)
        m = int((value - d) * 60)
        s = (value - d - m / 60) * 3600
        return (d, m, round(s, 4))

    exif[0x8825] = {1: "N" if lat >= 0 else "S", 2: dms(lat), 3: "E" if lon >= 0 else "W", 4: dms(lon)}
    if orientation is not None:
        exif[0x0112] = orientation
    return exif


def write_gps_photo(path: Path, lat: float, lon: float, size=(256, 192), seed: int = 1,
                    orientation: int | None = None) -> Path:
    """A photo with EXIF GPS (and an orientation flag if given), in the format of ``path``'s suffix: JPEG, or
    HEIC / HEIF written by pillow-heif as an iPhone does (the orientation becomes the file's rotation)."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8)
    if orientation is not None:  # a red top-left corner shows where the orientation put it
        arr[: size[1] // 4, : size[0] // 4] = (255, 0, 0)
    img = Image.fromarray(arr)
    path.parent.mkdir(parents=True, exist_ok=True)
    exif = gps_exif(lat, lon, orientation)
    if path.suffix.lower() in (".heic", ".heif"):
        from pillow_heif import register_heif_opener

        register_heif_opener()
        img.save(path, format="HEIF", exif=exif.tobytes(), quality=90)
    else:
        img.save(path, exif=exif, quality=90)
    return path


def rgb_at(photo, x: int, y: int) -> tuple[int, int, int]:
    return tuple(int(v) for v in np.asarray(photo.image)[y, x])


def assert_close(actual, expected, tol: int) -> None:
    diff = np.abs(np.asarray(actual, dtype=int) - np.asarray(expected, dtype=int))
    assert diff.max() <= tol, f"{actual} is not within {tol} of {expected}"


def noisy_rgb(width: int = 64, height: int = 64, seed: int = 0) -> Image.Image:
    """Random pixels compress badly, so a truncated file really misses image data."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
