"""The temperature fit (``model_utils.evaluation.calibration``) on a synthetic collection whose right
temperature is known: the model's logits are twice what they should be, so T = 2 undoes it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from model_utils.evaluation.calibration import fit_temperature, tempered
from model_utils.geo import geodesic_km

BANDWIDTH_KM = 50.0


def _collection(n: int, scale: float, seed: int = 0):
    """(gallery latlon, reported probabilities per photo, true positions): the truth is drawn from the
    well-calibrated distribution (logits s) smoothed with the kernel; the model reports logits scale * s."""
    rng = np.random.default_rng(seed)
    lat, lon = np.meshgrid(np.arange(-10.0, 10.01, 0.5), np.arange(-10.0, 10.01, 0.5), indexing="ij")
    gallery = np.column_stack([lat.ravel(), lon.ravel()])
    probs, truths = [], []
    for _ in range(n):
        centre = rng.uniform(-6, 6, size=2)
        d = geodesic_km(centre[0], centre[1], gallery[:, 0], gallery[:, 1])
        logits = -0.5 * (d / 300.0) ** 2
        calibrated = np.exp(logits - logits.max())
        calibrated /= calibrated.sum()
        i = rng.choice(len(gallery), p=calibrated)
        dy, dx = rng.normal(0, BANDWIDTH_KM, size=2)  # the kernel: a Gaussian of the bandwidth, in km
        truth = (gallery[i, 0] + dy / 111.2, gallery[i, 1] + dx / (111.2 * math.cos(math.radians(gallery[i, 0]))))
        reported = np.exp(scale * (logits - logits.max()))
        probs.append(reported / reported.sum())
        truths.append(truth)
    return gallery, probs, truths


def test_tempering_divides_the_logits():
    p = np.array([0.7, 0.2, 0.1])
    assert np.allclose(tempered(p, 1.0), p)
    assert np.allclose(tempered(p, 2.0), np.sqrt(p) / np.sqrt(p).sum(), atol=1e-6)
    assert tempered(p, 0.1).argmax() == 0 and tempered(p, 0.1)[0] > 0.99
    with pytest.raises(ValueError, match="> 0"):
        tempered(p, 0.0)


@pytest.mark.parametrize("scale", [2.0, 0.5])
def test_the_fit_recovers_the_known_temperature(scale):
    gallery, probs, truths = _collection(250, scale)
    fit = fit_temperature(probs, truths, gallery, bandwidth_km=BANDWIDTH_KM)
    assert fit.temperature == pytest.approx(scale, rel=0.15)
    assert fit.n_used == 250 and fit.n_skipped == 0
    assert fit.log_likelihood > fit.log_likelihood_at_1  # it found something better than leaving it


def test_photos_far_from_every_gallery_point_are_skipped_and_no_data_is_an_error():
    gallery, probs, truths = _collection(20, 2.0)
    fit = fit_temperature(probs + [probs[0]], truths + [(60.0, 100.0)], gallery, bandwidth_km=BANDWIDTH_KM)
    assert fit.n_skipped == 1 and fit.n_used == 20
    with pytest.raises(ValueError, match="nothing to fit"):
        fit_temperature([probs[0]], [(60.0, 100.0)], gallery, bandwidth_km=BANDWIDTH_KM)
    with pytest.raises(ValueError, match="probability vectors"):
        fit_temperature(probs, truths[:3], gallery)
