"""EXIF of a photo: when it was taken and where (GPS), read defensively.

Split from ``images`` so photo loading stays short. Malformed EXIF never costs the photo: every
reader here returns None instead of raising.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any

from PIL import Image

TAG_EXIF_IFD = 0x8769
TAG_GPS_IFD = 0x8825
TAG_DATETIME_ORIGINAL = 0x9003
GPS_LAT_REF, GPS_LAT, GPS_LON_REF, GPS_LON = 1, 2, 3, 4


def safe_exif(im: Image.Image) -> Image.Exif | None:
    """The image's EXIF, or None when it is absent or too broken to parse."""
    try:
        return im.getexif()
    except Exception:  # malformed EXIF must not cost us the photo
        return None


def _sub_ifd(exif: Image.Exif | None, tag: int) -> dict:
    if exif is None:
        return {}
    try:
        ifd = exif.get_ifd(tag)
    except Exception:
        return {}
    return ifd if isinstance(ifd, dict) else {}


def taken_from_exif(exif: Image.Exif | None) -> str | None:
    value = _sub_ifd(exif, TAG_EXIF_IFD).get(TAG_DATETIME_ORIGINAL)
    if value is None and exif is not None:
        try:
            value = exif.get(TAG_DATETIME_ORIGINAL)  # a few writers put it in IFD0
        except Exception:
            value = None
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    if not isinstance(value, str):
        return None
    value = value.strip("\x00 ")
    return value or None


def gps_from_exif(exif: Image.Exif | None) -> tuple[float, float] | None:
    """GPS IFD -> (lat, lon), or None unless every part is present and makes sense.

    A missing hemisphere ref gives None rather than a guess: a wrong sign moves a photo to the
    other side of the planet. Exactly (0, 0) is treated as the "no fix" placeholder that many
    devices write, not as a position.
    """
    gps = _sub_ifd(exif, TAG_GPS_IFD)
    if not gps:
        return None
    lat = _signed_degrees(gps.get(GPS_LAT), gps.get(GPS_LAT_REF), "N", "S", 90.0)
    lon = _signed_degrees(gps.get(GPS_LON), gps.get(GPS_LON_REF), "E", "W", 180.0)
    if lat is None or lon is None or (lat == 0.0 and lon == 0.0):
        return None
    return lat, lon


def _signed_degrees(value: Any, ref: Any, positive: str, negative: str, limit: float) -> float | None:
    ref = _ref_letter(ref)
    if ref not in (positive, negative):
        return None
    degrees = _dms_to_degrees(value)
    if degrees is None or degrees > limit:
        return None
    return -degrees if ref == negative else degrees


def _ref_letter(ref: Any) -> str | None:
    if isinstance(ref, bytes):
        ref = ref.decode("ascii", errors="replace")
    if not isinstance(ref, str):
        return None
    ref = ref.strip("\x00 ").upper()
    return ref or None


def _dms_to_degrees(value: Any) -> float | None:
    """(deg, min, sec), (deg, min), (deg,) or a lone number -> degrees >= 0; None if malformed."""
    if isinstance(value, (list, tuple)):
        parts = [_number(part) for part in value]
    else:
        parts = [_number(value)]
    if not 1 <= len(parts) <= 3 or any(part is None for part in parts):
        return None
    degrees, minutes, seconds = (parts + [0.0, 0.0])[:3]
    if degrees < 0 or not 0 <= minutes <= 60 or not 0 <= seconds <= 60:
        return None
    return degrees + minutes / 60.0 + seconds / 3600.0


def _number(value: Any) -> float | None:
    """A finite float from an EXIF rational, a (num, den) pair or a plain number."""
    if isinstance(value, (tuple, list)) and len(value) == 2:
        num, den = _number(value[0]), _number(value[1])
        if num is None or den is None or den == 0:
            return None
        result = num / den
    elif isinstance(value, Real) and not isinstance(value, bool):
        try:
            result = float(value)  # IFDRational with a zero denominator gives NaN
        except (ValueError, ZeroDivisionError, OverflowError):
            return None
    else:
        return None
    return result if math.isfinite(result) else None
