"""One temperature on GeoCLIP's logits, fitted on geotagged photos, so its probabilities (and the credible
regions drawn from them) mean what they say on a user's own collection.

``tempered(p, T)`` is the gallery distribution with logits divided by ``T`` (``p**(1/T)`` renormalised):
above 1 it spreads the probability (the model was over-confident), below 1 it sharpens it. The fit maximises
the likelihood of the photos' true positions under the same smoothed maps the user sees: the density at the
truth of the gallery probabilities spread with a Gaussian kernel of ``bandwidth_km``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..geo import geodesic_km

T_RANGE = (0.05, 20.0)
KERNEL_REACH = 5.0  # gallery points further than this many bandwidths from the truth add nothing


def tempered(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``probs`` with the logits divided by ``temperature`` (computed in log space: no underflow)."""
    if not temperature > 0:
        raise ValueError(f"the temperature must be > 0, got {temperature}")
    p = np.asarray(probs, dtype=np.float64)
    if temperature == 1.0:
        return (p / p.sum()).astype(np.float32)
    with np.errstate(divide="ignore"):
        logp = np.log(p) / temperature
    logp -= logp.max()
    out = np.exp(logp)
    return (out / out.sum()).astype(np.float32)


@dataclass(frozen=True)
class TemperatureFit:
    temperature: float
    n_used: int  # photos that informed the fit
    n_skipped: int  # photos with no gallery point within reach of their truth
    log_likelihood: float  # at the fitted temperature (mean per photo)
    log_likelihood_at_1: float


def fit_temperature(gallery_probs: Sequence[np.ndarray], truths: Sequence[tuple[float, float]],
                    gallery_latlon: np.ndarray, bandwidth_km: float = 50.0) -> TemperatureFit:
    """The maximum-likelihood temperature for photos with known positions (``truths`` [lat, lon]) and their
    gallery probabilities (each (N,) over ``gallery_latlon``)."""
    if len(gallery_probs) != len(truths):
        raise ValueError(f"{len(gallery_probs)} probability vectors for {len(truths)} true positions")
    if bandwidth_km <= 0:
        raise ValueError("the kernel bandwidth must be > 0 km to fit a temperature")
    terms, skipped = [], 0
    norm = 1.0 / (2 * math.pi * bandwidth_km**2)
    for probs, (lat, lon) in zip(gallery_probs, truths):
        d = geodesic_km(lat, lon, gallery_latlon[:, 0], gallery_latlon[:, 1])
        near = d < KERNEL_REACH * bandwidth_km
        if not near.any():
            skipped += 1
            continue
        with np.errstate(divide="ignore"):
            logp = np.log(np.asarray(probs, dtype=np.float64))
        kernel = norm * np.exp(-0.5 * (d[near] / bandwidth_km) ** 2)
        terms.append((logp, np.flatnonzero(near), kernel))
    if not terms:
        raise ValueError(f"none of the {len(truths)} photos has a gallery point within "
                         f"{KERNEL_REACH * bandwidth_km:g} km of its true position: nothing to fit")

    def mean_log_likelihood(temperature: float) -> float:
        total = 0.0
        for logp, near, kernel in terms:
            scaled = logp / temperature
            top = scaled.max()
            log_norm = top + math.log(np.exp(scaled - top).sum())
            density = float((np.exp(scaled[near] - log_norm) * kernel).sum())
            total += math.log(max(density, 1e-300))
        return total / len(terms)

    best = _golden_max(lambda log_t: mean_log_likelihood(math.exp(log_t)), *map(math.log, T_RANGE))
    return TemperatureFit(temperature=float(math.exp(best)), n_used=len(terms), n_skipped=skipped,
                          log_likelihood=mean_log_likelihood(math.exp(best)),
                          log_likelihood_at_1=mean_log_likelihood(1.0))


def _golden_max(f, low: float, high: float, tolerance: float = 1e-3) -> float:
    """The arg max of a unimodal ``f`` on [low, high] (golden-section search)."""
    ratio = (math.sqrt(5) - 1) / 2
    a, b = low, high
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = f(c), f(d)
    while b - a > tolerance:
        if fc >= fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = f(d)
    return (a + b) / 2
