"""Fitting a temperature on a run's geotagged photos and checking it where it counts: on photos the fit did not see,
how many true positions fall inside the credible regions before and after.

Two thirds of the photos (by name) fit the temperature by maximum likelihood; every third one is held out and
analysed at the run's temperature and at the fitted one, with the run's own raster options (``analyse``), so the
coverage reported is that of the maps the user gets.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..analysis import AnalysisOptions, analyse
from ..constants import FIT_MIN_PHOTOS
from ..maps.grid import GridSpec
from .calibration import TemperatureFit, fit_temperature

FIT_LEVELS = (0.5, 0.9)  # coverage is checked at these when the run asks for no credible regions
FIT_CELL_DEG = 0.5  # the check's raster when the run writes none


@dataclass(frozen=True)
class FitSample:
    """A geotagged photo kept for the fit: its name, the model's own probabilities and its true position."""

    source: str
    probs: np.ndarray
    gps: tuple[float, float]


@dataclass(frozen=True)
class TemperatureCheck:
    fit: TemperatureFit
    held_out: int
    temperature_before: float
    bandwidth_km: float
    coverage_before: dict[str, float]  # level ("0.9") -> share of held-out true positions inside
    coverage_after: dict[str, float]

    def record(self) -> dict:
        """What calibration.json holds."""
        return {"temperature": self.fit.temperature, "fitted_on": self.fit.n_used, "skipped": self.fit.n_skipped,
                "held_out": self.held_out, "bandwidth_km": self.bandwidth_km,
                "temperature_before": self.temperature_before, "coverage_before": self.coverage_before,
                "coverage_after": self.coverage_after,
                "mean_log_likelihood": {"before": self.fit.log_likelihood_at_1, "after": self.fit.log_likelihood}}


def check_temperature(samples: Sequence[FitSample], support_latlon: np.ndarray,
                      options: AnalysisOptions) -> TemperatureCheck:
    """Fit on two thirds of ``samples``, measure coverage on the rest before and after; ValueError (saying why)
    when there are too few photos or nothing to fit."""
    if len(samples) < FIT_MIN_PHOTOS:
        raise ValueError(f"fitting a temperature needs at least {FIT_MIN_PHOTOS} photos with EXIF GPS; this run "
                         f"has {len(samples)}")
    ordered = sorted(samples, key=lambda s: s.source)
    held_out, train = ordered[2::3], [s for i, s in enumerate(ordered) if i % 3 != 2]
    fit = fit_temperature([s.probs for s in train], [s.gps for s in train], support_latlon,
                          bandwidth_km=options.bandwidth_km)
    checked = dataclasses.replace(options, spec=options.spec or GridSpec.world(cell_size=FIT_CELL_DEG),
                                  levels=options.levels or FIT_LEVELS,
                                  land=options.land if options.spec is not None else None)

    def coverage(temperature: float) -> dict[str, float]:
        at = dataclasses.replace(checked, temperature=temperature)
        inside = {level: 0 for level in at.levels}
        for sample in held_out:
            analysis = analyse(_Sample(sample.source, sample.probs, sample.gps), support_latlon, at)
            for region, holds in zip(analysis.regions, analysis.truth_inside):
                inside[region.level] += bool(holds)
        return {f"{level:g}": inside[level] / len(held_out) for level in at.levels}

    return TemperatureCheck(fit, len(held_out), options.temperature, options.bandwidth_km,
                            coverage(options.temperature), coverage(fit.temperature))


@dataclass(frozen=True)
class _Sample:
    """A held-out photo as ``analyse`` reads a prediction (its top-k is not needed for a region)."""

    source: str
    gallery_probs: np.ndarray
    gps: tuple[float, float]
    error: None = None
    indices: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    prob: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(1, dtype=np.float32))
