"""Distances and the accuracy table: the numbers users compare with the GeoCLIP paper."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from model_utils.constants import ACCURACY_THRESHOLDS_KM, THRESHOLD_NAMES
from model_utils.evaluation.accuracy import AccuracyReport, accuracy_at_thresholds
from model_utils.geo import geodesic_km, haversine_km, validate_latlon

PARIS = (48.8566, 2.3522)
LONDON = (51.5072, -0.1276)


def test_paris_london_geodesic():
    d = geodesic_km(*PARIS, *LONDON)
    assert isinstance(d, np.ndarray) and d.dtype == np.float64
    assert float(d) == pytest.approx(343.9, abs=1.0)


def test_one_degree_of_longitude_on_the_equator():
    # On the equator the WGS84 geodesic follows the equator: a * pi / 180.
    assert float(geodesic_km(0, 0, 0, 1)) == pytest.approx(6378.137 * math.pi / 180, abs=1e-3)
    assert float(geodesic_km(0, 0, 0, 1)) == pytest.approx(111.32, abs=0.01)


def test_antipodes_and_poles():
    assert float(geodesic_km(0, 0, 0, 180)) == pytest.approx(20003.93, abs=0.1)
    assert float(geodesic_km(90, 0, -90, 0)) == pytest.approx(20003.93, abs=0.1)
    assert float(geodesic_km(10, 20, 10, 20)) == 0.0


def test_geodesic_broadcasts_scalars_and_arrays():
    lats = np.array([[0.0, 10.0, 20.0], [30.0, 40.0, 50.0]])
    d = geodesic_km(lats, 0.0, 0.0, 0.0)
    assert d.shape == (2, 3)
    assert np.all(np.diff(d.ravel()) > 0)
    # The same pairs one by one give the same answer.
    assert d[1, 2] == pytest.approx(float(geodesic_km(50.0, 0.0, 0.0, 0.0)))
    assert geodesic_km([], [], 0.0, 0.0).shape == (0,)


def test_geodesic_nan_propagates_and_bad_latitude_raises():
    d = geodesic_km([np.nan, 0.0], [0.0, 0.0], 0.0, 1.0)
    assert np.isnan(d[0]) and d[1] == pytest.approx(111.32, abs=0.01)
    with pytest.raises(ValueError, match="outside \\[-90, 90\\]"):
        geodesic_km(95.0, 0.0, 0.0, 0.0)


def test_haversine_close_to_geodesic():
    rng = np.random.default_rng(1)
    lat1, lat2 = rng.uniform(-89, 89, (2, 2000))
    lon1, lon2 = rng.uniform(-180, 180, (2, 2000))
    g = geodesic_km(lat1, lon1, lat2, lon2)
    h = haversine_km(lat1, lon1, lat2, lon2)
    keep = g > 1.0
    rel = np.abs(h[keep] - g[keep]) / g[keep]
    # The sphere is ~0.5% off on average for long north-south lines, a bit more near the equator.
    assert np.median(rel) < 0.005 and np.max(rel) < 0.006
    assert float(haversine_km(*PARIS, *LONDON)) == pytest.approx(float(geodesic_km(*PARIS, *LONDON)),
                                                                 rel=0.005)
    # Antipodes must not turn into NaN through rounding.
    assert float(haversine_km(0, 0, 0, 180)) == pytest.approx(math.pi * 6371.0088)


def test_accuracy_on_a_hand_made_list():
    errors = [0.5, 1.0, 10.0, 30.0, 199.0, 500.0, 1000.0, 3000.0]
    report = accuracy_at_thresholds(errors)
    assert isinstance(report, AccuracyReport)
    assert report.n == 8 and report.n_ignored == 0
    assert report.thresholds_km == ACCURACY_THRESHOLDS_KM
    # 1 km counts as within 1 km (<=).
    assert report.share_within == pytest.approx((2 / 8, 3 / 8, 5 / 8, 6 / 8, 7 / 8))
    assert report.median_km == pytest.approx((30.0 + 199.0) / 2)
    assert report.mean_km == pytest.approx(sum(errors) / 8)

    rows = report.as_rows()
    assert [r["name"] for r in rows] == list(THRESHOLD_NAMES)
    assert rows[0] == {"threshold_km": 1.0, "name": "street", "share": 0.25, "percent": 25.0}
    assert rows[-1]["percent"] == pytest.approx(87.5)


def test_accuracy_ignores_nan_and_custom_thresholds():
    report = accuracy_at_thresholds([np.nan, 5.0, 50.0, np.nan], thresholds_km=[10, 100])
    assert report.n == 2 and report.n_ignored == 2
    assert report.share_within == (0.5, 1.0)
    assert [r["name"] for r in report.as_rows()] == ["10 km", "100 km"]


def test_accuracy_rejects_empty_and_bad_input():
    with pytest.raises(ValueError, match="no errors to evaluate"):
        accuracy_at_thresholds([])
    with pytest.raises(ValueError, match="all NaN"):
        accuracy_at_thresholds([np.nan, np.nan])
    with pytest.raises(ValueError, match=r"1 row \(1\)"):
        accuracy_at_thresholds([1.0, -2.0])
    with pytest.raises(ValueError, match="thresholds_km"):
        accuracy_at_thresholds([1.0], thresholds_km=())


def test_validate_latlon_returns_float64():
    out = validate_latlon([[10, 20], [-90, 180], [90, -180]])
    assert out.dtype == np.float64 and out.shape == (3, 2)
    assert validate_latlon(np.zeros((0, 2))).shape == (0, 2)


def test_validate_latlon_names_the_rows():
    latlon = np.zeros((5, 2))
    latlon[1, 0] = np.nan
    latlon[3, 0] = 91.0
    latlon[4, 1] = -181.0
    with pytest.raises(ValueError) as info:
        validate_latlon(latlon)
    msg = str(info.value)
    assert "NaN or infinite values in 1 row (1)" in msg
    assert "latitude outside [-90, 90] in 1 row (3)" in msg
    assert "longitude outside [-180, 180] in 1 row (4)" in msg


def test_validate_latlon_lists_first_ten_and_the_count():
    latlon = np.zeros((30, 2))
    latlon[5:30, 0] = np.inf
    with pytest.raises(ValueError, match=r"25 rows \(first 10: 5, 6, 7, 8, 9, 10, 11, 12, 13, 14\)"):
        validate_latlon(latlon)


@pytest.mark.parametrize("bad", [np.zeros((3,)), np.zeros((3, 3)), np.zeros((2, 2, 2))])
def test_validate_latlon_says_the_shape(bad):
    with pytest.raises(ValueError, match=re.escape(f"got shape {bad.shape}")):
        validate_latlon(bad)


def test_validate_latlon_rejects_text():
    with pytest.raises(ValueError, match="numbers"):
        validate_latlon([["a", "b"]])
