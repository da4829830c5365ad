"""Safe photo loading: one bad file is a per-file error with a useful message, never a crash.

Everything the model sees goes through :func:`load_photo`, so this is the one place that decides
what "an RGB photo" means: EXIF orientation applied, transparency flattened onto white, 16-bit
and float rasters scaled (not clipped) to 8 bits, truncated files rejected instead of decoded
half-grey, and the pixel count checked from the header before anything is decoded. PIL's global
switches (``ImageFile.LOAD_TRUNCATED_IMAGES``, ``Image.MAX_IMAGE_PIXELS``) are read by PIL but
never changed here, because other code in the same QGIS process may depend on them.

Pure Python (PIL + numpy): no Qt, no qgis.
"""

from __future__ import annotations

import io
import logging
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import GeoClipError
from .exif import gps_from_exif, safe_exif, taken_from_exif
from .formats import register_optional_decoders

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "Photo",
    "PhotoError",
    "iter_photos",
    "load_photo",
    "read_exif_gps",
]

PhotoSource = Union[str, bytes, "os.PathLike[str]", Image.Image]

DEFAULT_MAX_PIXELS: int = 100_000_000
"""Largest photo (width x height) decoded by default: ~100 MP covers every camera, and decoding
stops a tiny file that claims a gigantic size (a decompression bomb) from eating all memory."""

# PIL format ids we are willing to decode, with the suffixes find_photos() collects for them.
# Opening with an explicit allow-list keeps exotic decoders (e.g. EPS, which runs Ghostscript)
# away from files that merely claim to be photos.
_BASE_FORMATS: dict[str, tuple[str, ...]] = {
    "JPEG": (".jpg", ".jpeg"),
    "PNG": (".png",),
    "TIFF": (".tif", ".tiff"),
    "WEBP": (".webp",),
    "BMP": (".bmp",),
    "GIF": (".gif",),
}
# Only offered when the installed Pillow (or a plugin such as pillow-heif) can really open them.
_OPTIONAL_FORMATS: dict[str, tuple[str, ...]] = {
    "HEIF": (".heic", ".heif"),
    "AVIF": (".avif",),
}


def _available_formats() -> dict[str, tuple[str, ...]]:
    register_optional_decoders()  # pillow-heif's HEIC/HEIF opener, when installed
    Image.init()  # registers every bundled plugin, so Image.OPEN is complete
    formats = dict(_BASE_FORMATS)
    formats.update({fid: exts for fid, exts in _OPTIONAL_FORMATS.items() if fid in Image.OPEN})
    return formats


_FORMATS = _available_formats()
_OPEN_FORMATS: tuple[str, ...] = tuple(_FORMATS)
IMAGE_EXTENSIONS: frozenset[str] = frozenset(ext for exts in _FORMATS.values() for ext in exts)
"""Lower-case suffixes (with the dot) that find_photos() treats as photos."""

_FORMAT_NAMES = ", ".join(_OPEN_FORMATS)

# EXIF tag numbers (EXIF 2.32 / TIFF 6.0).

_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_WHITE = (255, 255, 255)


class PhotoError(GeoClipError):
    """A photo that cannot be used; the message names the file, the problem and what to do."""

    @classmethod
    def from_os_error(cls, exc: OSError, subject: str, denied: str, failed: str, fix: str) -> PhotoError:
        """The one wording of a file-system failure: ``"{subject} cannot be {denied} (permission denied).
        {fix}"`` for a permission error, else ``"{subject} cannot be {failed} ({the system's reason})."``."""
        if isinstance(exc, PermissionError):
            return cls(f"{subject} cannot be {denied} (permission denied). {fix}")
        return cls(f"{subject} cannot be {failed} ({exc.strerror or exc}).")


@dataclass(frozen=True)
class Photo:
    """A decoded photo ready for the model, plus the EXIF facts the evaluation needs."""

    source: str
    """The path as given, or ``"<PIL image #i>"`` for an in-memory image."""
    image: Image.Image
    """RGB, EXIF orientation applied, fully loaded (no open file behind it)."""
    gps: tuple[float, float] | None
    """(lat, lon) in degrees from EXIF GPS, or None when absent or unusable."""
    taken: str | None
    """EXIF DateTimeOriginal as stored (e.g. ``"2021:05:06 07:08:09"``), or None."""


# --------------------------------------------------------------------------------------------
# public API


def load_photo(src: PhotoSource, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Photo:
    """Decode one photo (path or PIL image) into an RGB :class:`Photo`.

    Raises :class:`PhotoError`, and only that, for anything wrong with the input: missing,
    folder, empty, unreadable, not an image, truncated or damaged, or more than ``max_pixels``.
    """
    return _load(src, max_pixels=max_pixels, index=0)


def read_exif_gps(src: PhotoSource) -> tuple[float, float] | None:
    """(lat, lon) in decimal degrees from EXIF GPS, or None when missing, malformed or out of range.

    Only the header is read for JPEG/TIFF/WebP, so this is cheap. A file that cannot be opened
    as a photo at all (missing, empty, not an image, over DEFAULT_MAX_PIXELS) raises
    :class:`PhotoError` like :func:`load_photo`; bad EXIF never raises.
    """
    if isinstance(src, Image.Image):
        return gps_from_exif(safe_exif(src))
    source = _source_label(src, 0)
    with _open_file(source) as fp:
        with _open_image(fp, source) as im:
            _check_size(im, source, DEFAULT_MAX_PIXELS)
            return gps_from_exif(safe_exif(im))


def iter_photos(
    sources: Iterable[PhotoSource] | PhotoSource, *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Iterator[tuple[int, Photo | None, str | None]]:
    """Yield ``(index, photo, None)`` or ``(index, None, message)`` per input, in input order.

    A bad file becomes an error message and the batch goes on. One path or image on its own is
    treated as a batch of one (a bare string is not iterated character by character).
    """
    if isinstance(sources, (str, bytes, os.PathLike, Image.Image)):
        sources = [sources]
    for index, src in enumerate(sources):
        try:
            photo = _load(src, max_pixels=max_pixels, index=index)
        except PhotoError as exc:
            yield index, None, str(exc)
        else:
            yield index, photo, None


# --------------------------------------------------------------------------------------------
# loading


def _load(src: Any, *, max_pixels: int, index: int) -> Photo:
    """load_photo() with the batch index used to label in-memory images."""
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
        raise ValueError(f"max_pixels must be a positive integer, got {max_pixels!r}")
    source = _source_label(src, index)
    if isinstance(src, Image.Image):
        return _decode(src, source, max_pixels)
    with _open_file(source) as fp:
        with _open_image(fp, source) as im:
            return _decode(im, source, max_pixels)


def _source_label(src: Any, index: int) -> str:
    if isinstance(src, Image.Image):
        return f"<PIL image #{index}>"
    if isinstance(src, (str, bytes, os.PathLike)):
        try:
            return os.fsdecode(os.fspath(src))
        except (TypeError, ValueError):
            pass
    raise PhotoError(
        f"Input #{index} is a {type(src).__name__}, not a photo: pass a file path or a PIL image."
    )


_PERMISSIONS = "Check the file and folder permissions."


def _open_file(source: str) -> BinaryIO:
    """Open a regular, non-empty file, turning every OS problem into a PhotoError."""
    try:
        st = os.stat(source)
    except (FileNotFoundError, NotADirectoryError, ValueError):
        if os.path.islink(source):
            raise PhotoError(
                f"Photo '{source}' is a link to '{os.readlink(source)}', which does not exist (moved or deleted?). "
                "Fix or remove the link."
            ) from None
        raise PhotoError(
            f"Photo not found: '{source}'. Check the path and that the drive is mounted."
        ) from None
    except OSError as exc:
        raise PhotoError.from_os_error(exc, f"Photo '{source}'", "read", "accessed", _PERMISSIONS) from None
    if stat.S_ISDIR(st.st_mode):
        raise PhotoError(
            f"'{source}' is a folder, not a photo. Pick image files, or use the folder option."
        )
    if not stat.S_ISREG(st.st_mode):
        raise PhotoError(f"'{source}' is not a regular file (device, pipe or socket). Pick an image file.")
    if st.st_size == 0:
        raise PhotoError(
            f"Photo '{source}' is empty (0 bytes): it was probably not fully copied or downloaded. "
            "Copy it again."
        )
    try:
        return open(source, "rb")  # closed by the caller's with-block
    except OSError as exc:
        raise PhotoError.from_os_error(exc, f"Photo '{source}'", "read", "opened", _PERMISSIONS) from None


def _open_image(fp: BinaryIO, source: str) -> Image.Image:
    """Read just the header (no pixels yet) with our allow-listed formats."""
    try:
        return Image.open(fp, formats=_OPEN_FORMATS)
    except UnidentifiedImageError:
        raise PhotoError(
            f"'{source}' is not an image this plugin can read (supported: {_FORMAT_NAMES}). "
            "Check it is a photo and not another file renamed, or re-export it as JPEG or PNG."
        ) from None
    except Image.DecompressionBombError as exc:
        raise PhotoError(
            f"Photo '{source}' is too large to decode safely ({exc}). Downscale it first."
        ) from None
    except Exception as exc:  # any decoder failure is a property of the file
        raise PhotoError(
            f"Photo '{source}' is damaged: its header cannot be read ({_describe(exc)}). "
            "Copy or export it again."
        ) from None


def _check_size(im: Image.Image, source: str, max_pixels: int) -> None:
    """Refuse from the header alone, before a single pixel is decoded."""
    width, height = im.size
    if width <= 0 or height <= 0:
        raise PhotoError(f"Photo '{source}' has no pixels ({width} x {height}). Export it again.")
    if width * height > max_pixels:
        raise PhotoError(
            f"Photo '{source}' is {width} x {height} = {width * height:,} pixels, more than the limit "
            f"of {max_pixels:,}. Downscale it, or raise max_pixels if you trust the file."
        )


def _decode(im: Image.Image, source: str, max_pixels: int) -> Photo:
    _check_size(im, source, max_pixels)
    try:
        # With LOAD_TRUNCATED_IMAGES left False (PIL's default), a file that ends early raises
        # here instead of being padded with grey.
        im.load()
    except Exception as exc:  # any decoder failure is a property of the file
        raise PhotoError(
            f"Photo '{source}' is truncated or damaged ({_describe(exc)}). "
            "Copy or download it again, or re-export it."
        ) from None
    exif = safe_exif(im)
    try:
        oriented = ImageOps.exif_transpose(im)
    except Exception:  # broken orientation tag: keep the pixels as stored
        oriented = im.copy()
    try:
        rgb = _to_rgb(oriented)
    except Exception as exc:
        raise PhotoError(
            f"Photo '{source}' uses colour mode {im.mode!r}, which cannot be converted to RGB "
            f"({_describe(exc)}). Re-export it as an 8-bit RGB JPEG or PNG."
        ) from None
    return Photo(source=source, image=rgb, gps=gps_from_exif(exif), taken=taken_from_exif(exif))


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --------------------------------------------------------------------------------------------
# colour


def _to_rgb(im: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB that looks like the photo does in a viewer.

    Never returns ``im`` itself unless it already is an RGB image without transparency.
    """
    mode = im.mode
    if mode in _ALPHA_MODES or (mode in ("P", "L", "RGB") and "transparency" in im.info):
        return _flatten_on_white(im.convert("RGBA"))
    if mode == "RGB":
        return im
    if mode == "CMYK":
        return _cmyk_to_rgb(im)
    if mode == "I" or mode.startswith("I;16"):
        return _grey_to_rgb(_integer_to_8bit(np.asarray(im)))
    if mode == "F":
        return _grey_to_rgb(_stretch_to_8bit(np.asarray(im, dtype=np.float64)))
    return im.convert("RGB")  # 1, L, P, YCbCr, RGBX, ...


def _flatten_on_white(rgba: Image.Image) -> Image.Image:
    # Transparent areas are white in most viewers; black would be a strong, false cue for CLIP.
    out = Image.new("RGB", rgba.size, _WHITE)
    out.paste(rgba, mask=rgba.getchannel("A"))
    return out


def _cmyk_to_rgb(im: Image.Image) -> Image.Image:
    """Use the embedded ICC profile when it works; otherwise PIL's plain conversion.

    PIL already undoes the inversion of Adobe (Photoshop) CMYK JPEGs while decoding.
    """
    icc = im.info.get("icc_profile")
    if icc:
        try:
            from PIL import ImageCms

            converted = ImageCms.profileToProfile(
                im,
                ImageCms.ImageCmsProfile(io.BytesIO(icc)),
                ImageCms.createProfile("sRGB"),
                outputMode="RGB",
            )
            if converted is not None and converted.mode == "RGB":
                return converted
        except Exception as exc:  # noqa: BLE001 - a broken or mismatched profile: the plain conversion below
            log.debug("ICC profile not applied (%s); converting to RGB without it", exc)
    return im.convert("RGB")


def _integer_to_8bit(values: np.ndarray) -> np.ndarray:
    """Scale by the container's bit range (16-bit: 0..65535 -> 0..255), keeping relative contrast."""
    if values.dtype.kind == "u" and values.dtype.itemsize == 2:
        wide = values.astype(np.uint32)
        return ((wide * 255 + 32767) // 65535).astype(np.uint8)
    if values.dtype.kind == "i" and values.dtype.itemsize == 2:
        wide = values.astype(np.int32) + 32768
        return ((wide * 255 + 32767) // 65535).astype(np.uint8)
    wide = values.astype(np.int64)
    if wide.size and wide.min() >= 0 and wide.max() <= 65535:
        return ((wide * 255 + 32767) // 65535).astype(np.uint8)
    return _stretch_to_8bit(wide.astype(np.float64))  # real 32-bit data: use what is there


def _stretch_to_8bit(values: np.ndarray) -> np.ndarray:
    """Map min..max of the finite values to 0..255 (NaN/inf -> 0; a flat image -> 0)."""
    finite = np.isfinite(values)
    out = np.zeros(values.shape, dtype=np.uint8)
    if not finite.any():
        return out
    lo = float(values[finite].min())
    hi = float(values[finite].max())
    if hi > lo:
        scaled = (values[finite] - lo) * (255.0 / (hi - lo))
        out[finite] = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return out


def _grey_to_rgb(grey: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(grey)).convert("RGB")
