"""Distances on the Earth and checks of latitude/longitude input.

Pure numpy + pyproj, so evaluation code and tests run without Qt, QGIS or torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pyproj import Geod

__all__ = [
    "EARTH_RADIUS_KM",
    "describe_rows",
    "geodesic_km",
    "haversine_km",
    "validate_latlon",
]


# IUGG mean Earth radius: the sphere that best matches WGS84 on average.
EARTH_RADIUS_KM = 6371.0088

_WGS84 = Geod(ellps="WGS84")
_MAX_LISTED_ROWS = 10


def _as_float_arrays(*values: Any) -> list[np.ndarray]:
    """Broadcast inputs against each other as float64 so scalars and arrays mix freely."""
    arrays = [np.asarray(v, dtype=np.float64) for v in values]
    return list(np.broadcast_arrays(*arrays))


def geodesic_km(lat1: Any, lon1: Any, lat2: Any, lon2: Any) -> np.ndarray:
    """Distance in km on the WGS84 ellipsoid (Karney's algorithm via pyproj).

    This is the distance to report to users (errors, accuracy tables): it is exact to
    millimetres, where the sphere is off by up to ~0.5%. Inputs broadcast like numpy
    arrays; NaN coordinates give NaN (a photo without GPS), latitudes beyond +-90 raise.
    """
    la1, lo1, la2, lo2 = _as_float_arrays(lat1, lon1, lat2, lon2)
    for name, lat in (("lat1", la1), ("lat2", la2)):
        if np.any(np.abs(lat) > 90.0):  # NaN compares False, so it passes through
            raise ValueError(f"{name} has values outside [-90, 90] degrees (max |lat| = "
                             f"{np.nanmax(np.abs(lat)):g}); are latitude and longitude swapped?")
    shape = la1.shape
    if la1.size == 0:
        return np.zeros(shape, dtype=np.float64)
    if la1.size == 1:  # pyproj's scalar fast path; size-1 arrays there trigger numpy warnings
        _, _, dist_m = _WGS84.inv(lo1.item(), la1.item(), lo2.item(), la2.item())
    else:
        flat = [np.array(a.ravel(), dtype=np.float64) for a in (lo1, la1, lo2, la2)]  # writable copies
        _, _, dist_m = _WGS84.inv(*flat)
    km = np.array(dist_m, dtype=np.float64).reshape(shape)
    km /= 1000.0  # in place, so a 0-d array stays an array instead of becoming a numpy scalar
    return km


def haversine_km(lat1: Any, lon1: Any, lat2: Any, lon2: Any) -> np.ndarray:
    """Great-circle distance in km on a sphere of radius ``EARTH_RADIUS_KM``.

    Much faster than :func:`geodesic_km` and within ~0.6% of it, which is what kernels
    and nearest-neighbour style computations need; use the geodesic for reported errors.
    """
    la1, lo1, la2, lo2 = (np.radians(a) for a in _as_float_arrays(lat1, lon1, lat2, lon2))
    h = np.sin((la2 - la1) / 2.0) ** 2 + np.cos(la1) * np.cos(la2) * np.sin((lo2 - lo1) / 2.0) ** 2
    # Rounding can push h a hair above 1 for antipodes; arcsin would then return NaN.
    return np.asarray(2.0 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0))))


def describe_rows(rows: np.ndarray) -> str:
    """Name offending rows for an error message: enough to find them, never a flood.

    Gives '3 rows (0, 4, 7)' or '25 rows (first 10: 0, 1, ...)'.
    """
    rows = np.asarray(rows).ravel()
    listed = ", ".join(str(int(r)) for r in rows[:_MAX_LISTED_ROWS])
    noun = "row" if rows.size == 1 else "rows"
    if rows.size > _MAX_LISTED_ROWS:
        return f"{rows.size} {noun} (first {_MAX_LISTED_ROWS}: {listed})"
    return f"{rows.size} {noun} ({listed})"


def latlon_problems(latlon: np.ndarray, max_lon: float = 180.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row masks of an (N, 2) [lat, lon] array: (not finite, latitude beyond +-90, longitude outside
    [-180, ``max_lon``]); each row is in at most one. The one range rule every caller applies."""
    arr = np.asarray(latlon, dtype=np.float64).reshape(-1, 2)
    not_finite = ~np.isfinite(arr).all(axis=1)
    with np.errstate(invalid="ignore"):
        bad_lat = ~not_finite & (np.abs(arr[:, 0]) > 90.0)
        bad_lon = ~not_finite & ~bad_lat & ((arr[:, 1] < -180.0) | (arr[:, 1] > max_lon))
    return not_finite, bad_lat, bad_lon


def invalid_latlon(latlon: np.ndarray) -> np.ndarray:
    """Row mask: not a usable [lat, lon] (not finite or out of range)."""
    not_finite, bad_lat, bad_lon = latlon_problems(latlon)
    return not_finite | bad_lat | bad_lon


def validate_latlon(latlon: Any) -> np.ndarray:
    """Return ``latlon`` as an (N, 2) float64 array of [lat, lon] degrees, or raise.

    Every entry point that takes coordinates from users (layers, CSVs, galleries) goes
    through here, so a swapped column or a NaN fails early with the rows to fix instead of
    producing a silently wrong embedding or heatmap.
    """
    try:
        arr = np.asarray(latlon, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"latlon must be numbers in an (N, 2) array of [lat, lon]: {exc}") from exc
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"latlon must have shape (N, 2) as [lat, lon] rows; got shape {arr.shape}")
    problems = []
    not_finite, bad_lat, bad_lon = latlon_problems(arr)
    if not_finite.any():
        problems.append(f"NaN or infinite values in {describe_rows(np.flatnonzero(not_finite))}")
    if bad_lat.any():
        problems.append(f"latitude outside [-90, 90] in {describe_rows(np.flatnonzero(bad_lat))}"
                        " (are latitude and longitude swapped?)")
    if bad_lon.any():
        problems.append(f"longitude outside [-180, 180] in {describe_rows(np.flatnonzero(bad_lon))}")
    if problems:
        raise ValueError("invalid coordinates: " + "; ".join(problems))
    return arr
