"""Which files are photos, which decoders are installed, and why a file that is not a photo is skipped.

iPhones save HEIC by default and many Android phones HEIF: Pillow reads them only through the
``pillow-heif`` plugin (its wheels bundle libheif), registered here once, before ``images`` asks Pillow
which formats it can open. AVIF comes with Pillow itself from 11.2 on. A folder scan never drops a
file in silence: every file that is not a photo gets one of the reasons below, counted per suffix.

Pure Python: no Qt, no qgis.
"""

from __future__ import annotations

import functools

HEIF_SUFFIXES = (".heic", ".heif")
AVIF_SUFFIXES = (".avif",)
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".3gp", ".3g2", ".mts", ".m2ts",
                            ".mpg", ".mpeg", ".wmv", ".flv", ".vob", ".insv", ".lrv"})
RAW_SUFFIXES = frozenset({".dng", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".orf", ".rw2",
                          ".raf", ".pef", ".srw", ".x3f", ".3fr", ".erf", ".kdc", ".mrw", ".iiq", ".rwl"})
SIDECAR_SUFFIXES = frozenset({".aae", ".xmp", ".thm", ".json", ".xml", ".txt", ".csv", ".ini", ".db", ".pp3",
                              ".dop", ".on1", ".lrcat", ".pdf"})

HEIF_MISSING = ("the HEIC/HEIF decoder (pillow-heif) is not installed - the Setup tab of the GeoCLIP panel "
                "installs it (or: pip install pillow-heif)")
AVIF_MISSING = "this Pillow cannot decode AVIF (Pillow 11.2 or newer can) - convert them to JPEG"
VIDEO = "videos are not photos"
RAW = "camera RAW files are not decoded - export them as JPEG"
SIDECAR = "not photos (edit, metadata or text files)"
UNKNOWN = "not a photo format this plugin reads"
NO_SUFFIX = "no file type (no suffix): rename them with their photo type, e.g. .jpg"


@functools.lru_cache(maxsize=1)
def register_optional_decoders() -> tuple[str, ...]:
    """Register pillow-heif's HEIF opener with Pillow when it is installed (once per process); the
    optional decoders now available."""
    try:
        from pillow_heif import register_heif_opener
    except ImportError:  # not installed: HEIC files are skipped with HEIF_MISSING as their reason
        return ()
    try:
        register_heif_opener()
    except Exception:  # a broken install must not stop JPEGs: HEIC is then reported as not decodable
        return ()
    return ("HEIF",)


def skip_reason(suffix: str) -> str:
    """Why a file with ``suffix`` (lower case, with the dot) that is not in IMAGE_EXTENSIONS is skipped."""
    if not suffix:
        return NO_SUFFIX
    if suffix in HEIF_SUFFIXES:
        return HEIF_MISSING
    if suffix in AVIF_SUFFIXES:
        return AVIF_MISSING
    if suffix in VIDEO_SUFFIXES:
        return VIDEO
    if suffix in RAW_SUFFIXES:
        return RAW
    if suffix in SIDECAR_SUFFIXES:
        return SIDECAR
    return UNKNOWN
