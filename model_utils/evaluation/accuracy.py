"""The GeoCLIP paper's accuracy table: the share of predictions within 1 / 25 / 200 / 750 / 2500 km (street, city,
region, country, continent), with the median and mean error."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..constants import ACCURACY_THRESHOLDS_KM, THRESHOLD_NAMES
from ..geo import describe_rows


@dataclass(frozen=True)
class AccuracyReport:
    """Share of predictions within each distance threshold, as in the GeoCLIP paper's table.

    ``n`` counts the errors that were used; ``n_ignored`` the NaN ones (e.g. photos without
    EXIF GPS) left out of every figure.
    """

    n: int
    thresholds_km: tuple[float, ...]
    share_within: tuple[float, ...]
    median_km: float
    mean_km: float
    n_ignored: int = 0

    def as_rows(self) -> list[dict[str, Any]]:
        """One dict per threshold, ready for a table, a CSV writer or a QGIS attribute table."""
        return [
            {
                "threshold_km": float(t),
                "name": threshold_name(t),
                "share": float(s),
                "percent": 100.0 * float(s),
            }
            for t, s in zip(self.thresholds_km, self.share_within)
        ]


def threshold_name(threshold_km: float) -> str:
    """The paper's name for a threshold ("city" for 25 km), else a plain "12.5 km"."""
    for value, name in zip(ACCURACY_THRESHOLDS_KM, THRESHOLD_NAMES):
        if float(threshold_km) == value:
            return name
    return f"{float(threshold_km):g} km"


def accuracy_at_thresholds(
    errors_km: Any, thresholds_km: tuple[float, ...] | list[float] = ACCURACY_THRESHOLDS_KM
) -> AccuracyReport:
    """Summarise geolocation errors (km) the way the GeoCLIP paper does.

    NaN errors (no ground truth) are ignored and counted in ``n_ignored``; an error exactly
    on a threshold counts as within it. Raises ValueError when no usable error is left, or
    for negative or infinite errors, which mean a bug upstream rather than a bad guess.
    """
    errors = np.asarray(errors_km, dtype=np.float64).ravel()
    thresholds = tuple(float(t) for t in thresholds_km)
    if not thresholds:
        raise ValueError("thresholds_km is empty: give at least one distance in km")
    if any(not np.isfinite(t) or t < 0 for t in thresholds):
        raise ValueError(f"thresholds_km must be finite and >= 0 km, got {thresholds}")
    missing = np.isnan(errors)
    valid = errors[~missing]
    if valid.size == 0:
        raise ValueError(
            f"no errors to evaluate: got {errors.size} value(s), all NaN or none at all "
            "(do the photos have EXIF GPS or ground-truth coordinates?)"
        )
    bad = np.flatnonzero(~missing & ~((errors >= 0) & np.isfinite(errors)))
    if bad.size:
        raise ValueError(f"errors must be finite and >= 0 km; {describe_rows(bad)} are not "
                         f"(first value: {errors[bad[0]]!r})")
    shares = tuple(float(np.count_nonzero(valid <= t)) / valid.size for t in thresholds)
    return AccuracyReport(
        n=int(valid.size),
        thresholds_km=thresholds,
        share_within=shares,
        median_km=float(np.median(valid)),
        mean_km=float(np.mean(valid)),
        n_ignored=int(np.count_nonzero(missing)),
    )
