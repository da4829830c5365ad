"""Probability rasters from gallery probabilities: mass, kernel width, wrap-around, poles, grids."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from model_utils.geo import EARTH_RADIUS_KM
from model_utils.maps.heatmap import (
    KM_PER_DEGREE,
    MAX_CELLS,
    Canceled,
    GridSpec,
    ProbabilityGrid,
    cell_areas_km2,
    probability_grid,
)

EUROPE = (-25.0, 34.0, 45.0, 72.0)


def random_gallery(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points uniform on the sphere with random probabilities summing to 1."""
    rng = np.random.default_rng(seed)
    lat = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))
    lon = rng.uniform(-180.0, 180.0, n)
    probs = rng.random(n)
    return lat, lon, probs / probs.sum()


def spread_km(grid: ProbabilityGrid, lat0: float) -> tuple[float, float]:
    """Standard deviation of the raster in km along meridians and along the parallel at lat0."""
    values = grid.values.astype(np.float64)
    w_lat, w_lon = values.sum(axis=1), values.sum(axis=0)
    lat, lon = grid.spec.lat_centers, grid.spec.lon_centers

    def std(weights: np.ndarray, x: np.ndarray) -> float:
        mean = np.sum(weights * x) / weights.sum()
        return float(np.sqrt(np.sum(weights * (x - mean) ** 2) / weights.sum()))

    return (std(w_lat, lat) * KM_PER_DEGREE,
            std(w_lon, lon) * KM_PER_DEGREE * math.cos(math.radians(lat0)))


def single(lat: float, lon: float, spec: GridSpec, bandwidth_km: float = 200.0, **kw) -> ProbabilityGrid:
    return probability_grid([lat], [lon], [1.0], spec, bandwidth_km=bandwidth_km, **kw)


def test_world_raster_of_a_100k_gallery_sums_to_one():
    lat, lon, probs = random_gallery(100_000)
    grid = probability_grid(lat, lon, probs, GridSpec.world(0.5), bandwidth_km=25.0)
    assert grid.values.shape == (360, 720)
    assert grid.values.dtype == np.float32
    assert not grid.density
    assert grid.values.min() >= 0.0
    assert float(grid.values.sum(dtype=np.float64)) == pytest.approx(1.0, abs=1e-3)
    assert grid.mass == pytest.approx(1.0, abs=1e-3)


def test_kernel_width_at_the_equator_is_the_bandwidth():
    grid = single(0.0, 0.0, GridSpec.world(0.5), bandwidth_km=200.0)
    sd_lat, sd_lon = spread_km(grid, 0.0)
    assert sd_lat == pytest.approx(200.0, rel=0.1)
    assert sd_lon == pytest.approx(200.0, rel=0.1)


def test_kernel_width_in_km_holds_at_60_north():
    equator = single(0.0, 0.0, GridSpec.world(0.5))
    north = single(60.0, 0.0, GridSpec.world(0.5))
    sd_lat, sd_lon = spread_km(north, 60.0)
    assert sd_lat == pytest.approx(200.0, rel=0.1)
    assert sd_lon == pytest.approx(200.0, rel=0.1)
    # In degrees of longitude the kernel is about twice as wide as on the equator (1 / cos 60).
    ratio = (sd_lon / math.cos(math.radians(60.0))) / spread_km(equator, 0.0)[1]
    assert ratio == pytest.approx(2.0, rel=0.1)


def test_antimeridian_wraps_onto_both_edges():
    grid = single(0.0, 179.9, GridSpec.world(0.5))
    west_edge = float(grid.values[:, :10].sum())
    east_edge = float(grid.values[:, -10:].sum())
    assert west_edge > 0.3 and east_edge > 0.3
    assert grid.mass == pytest.approx(1.0, abs=1e-6)
    # The peak is on the eastern edge, next to 179.9.
    assert np.unravel_index(np.argmax(grid.values), grid.values.shape)[1] == grid.spec.width - 1


@pytest.mark.parametrize("lat", [89.9, -89.9, 90.0, -90.0])
def test_points_at_the_poles_keep_their_mass(lat):
    grid = single(lat, 10.0, GridSpec.world(0.5))
    assert np.isfinite(grid.values).all()
    assert float(grid.values.sum(dtype=np.float64)) == pytest.approx(1.0, abs=1e-3)
    # The mass stays near the pole: within 5 sigma of it in latitude.
    polar_rows = grid.values[:20] if lat > 0 else grid.values[-20:]
    assert float(polar_rows.sum()) > 0.99


def test_sub_extent_holds_half_of_a_point_on_its_border():
    spec = GridSpec(*EUROPE, 0.25)
    on_border = single(50.0, -25.0, spec)
    assert on_border.mass == pytest.approx(0.5, abs=0.01)
    assert float(on_border.values.sum(dtype=np.float64)) == pytest.approx(on_border.mass, rel=1e-5)
    assert single(72.0, 10.0, spec).mass == pytest.approx(0.5, abs=0.01)  # northern border
    assert single(50.0, 10.0, spec).mass == pytest.approx(1.0, abs=1e-4)  # well inside
    assert single(0.0, 100.0, spec).mass == pytest.approx(0.0, abs=1e-9)  # far away


@pytest.mark.parametrize("bandwidth_km", [0.0, 25.0, 300.0, 3000.0])
@pytest.mark.parametrize("extent", [EUROPE, (170.0, -20.0, 180.0, 10.0), (-180.0, 80.0, -100.0, 90.0),
                                    (-10.0, -90.0, 10.0, -60.0)])
def test_sub_extent_matches_the_world_raster(extent, bandwidth_km):
    lat, lon, probs = random_gallery(5_000, seed=3)
    world = probability_grid(lat, lon, probs, GridSpec.world(1.0), bandwidth_km=bandwidth_km)
    spec = GridSpec(*extent, 1.0)
    part = probability_grid(lat, lon, probs, spec, bandwidth_km=bandwidth_km)
    window = world.values[spec.row_offset:spec.row_offset + spec.height,
                          spec.col_offset:spec.col_offset + spec.width]
    np.testing.assert_allclose(part.values, window, rtol=1e-4, atol=1e-6 * float(window.max()))
    assert part.mass == pytest.approx(float(window.sum(dtype=np.float64)), rel=1e-4)


def test_geotransform_of_a_sub_extent_is_snapped_outward():
    spec = GridSpec(-10.05, 35.02, 30.0, 59.97, 0.1)
    assert (spec.xmin, spec.ymin, spec.xmax, spec.ymax) == (-10.1, 35.0, 30.0, 60.0)
    assert (spec.width, spec.height) == (401, 250)
    assert spec.geotransform == (-10.1, 0.1, 0.0, 60.0, 0.0, -0.1)
    assert spec.lat_centers[0] == pytest.approx(59.95) and spec.lon_centers[-1] == pytest.approx(29.95)
    assert (spec.col_offset, spec.row_offset) == (1699, 300)
    # Snapping is idempotent: a snapped spec rebuilds to itself.
    assert GridSpec(spec.xmin, spec.ymin, spec.xmax, spec.ymax, spec.cell_size) == spec
    grid = single(45.0, 10.0, spec, bandwidth_km=25.0)
    assert grid.values.shape == (250, 401)


def test_world_spec():
    spec = GridSpec.world()
    assert (spec.height, spec.width) == (1800, 3600)
    assert spec.geotransform == (-180.0, 0.1, 0.0, 90.0, 0.0, -0.1)
    assert GridSpec.world(0.5).shape == (360, 720)


def test_cell_areas_cover_the_sphere():
    spec = GridSpec.world(1.0)
    areas = cell_areas_km2(spec)
    assert areas.shape == (180,)
    assert float(areas.sum()) * spec.width == pytest.approx(4 * math.pi * EARTH_RADIUS_KM**2, rel=1e-9)
    assert areas[90] == pytest.approx(KM_PER_DEGREE**2, rel=1e-3)  # a 1 degree cell at the equator
    assert areas[0] < areas[45] < areas[89]


def test_density_times_cell_area_gives_back_the_mass():
    lat, lon, probs = random_gallery(2_000, seed=1)
    spec = GridSpec(*EUROPE, 0.5)
    mass_grid = probability_grid(lat, lon, probs, spec, bandwidth_km=100.0)
    dens_grid = probability_grid(lat, lon, probs, spec, bandwidth_km=100.0, density=True)
    assert dens_grid.density
    areas = cell_areas_km2(spec)[:, None]
    back = dens_grid.values.astype(np.float64) * areas
    assert float(back.sum()) == pytest.approx(dens_grid.mass, rel=1e-5)
    assert dens_grid.mass == pytest.approx(mass_grid.mass)
    np.testing.assert_allclose(back, mass_grid.values, rtol=1e-5, atol=1e-12)


def test_argmax_cell_contains_the_dominant_point():
    lat, lon, probs = random_gallery(10_000, seed=2)
    probs *= 0.5
    lat[1234], lon[1234], probs[1234] = 48.8566, 2.3522, 0.5
    spec = GridSpec.world(0.25)
    grid = probability_grid(lat, lon, probs, spec, bandwidth_km=25.0)
    row, col = np.unravel_index(np.argmax(grid.values), grid.values.shape)
    assert abs(spec.lat_centers[row] - 48.8566) <= spec.cell_size
    assert abs(spec.lon_centers[col] - 2.3522) <= spec.cell_size


def test_bandwidth_below_a_cell_collapses_to_binning():
    spec = GridSpec.world(1.0)
    grid = single(10.5, 20.5, spec, bandwidth_km=1.0)  # exactly a cell centre
    row, col = np.unravel_index(np.argmax(grid.values), grid.values.shape)
    assert (spec.lat_centers[row], spec.lon_centers[col]) == (10.5, 20.5)
    assert float(grid.values[row, col]) == pytest.approx(1.0, abs=1e-6)
    zero = single(10.2, 20.9, spec, bandwidth_km=0.0)
    assert np.count_nonzero(zero.values) == 4  # shared by the four nearest cell centres
    assert zero.mass == pytest.approx(1.0)


def test_probs_are_used_as_given_and_zero_probs_are_fine():
    grid = probability_grid([0.0, 10.0], [0.0, 10.0], [0.2, 0.0], GridSpec.world(1.0))
    assert grid.mass == pytest.approx(0.2, abs=1e-6)
    empty = probability_grid([], [], [], GridSpec.world(1.0))
    assert empty.mass == 0.0 and not empty.values.any()


def test_progress_and_cancel():
    lat, lon, probs = random_gallery(1_000)
    calls: list[tuple[float, str]] = []
    probability_grid(lat, lon, probs, GridSpec.world(0.5), progress=lambda f, m: calls.append((f, m)))
    fractions = [f for f, _ in calls]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert fractions == sorted(fractions)
    assert all(isinstance(m, str) and m for _, m in calls)
    with pytest.raises(Canceled):
        probability_grid(lat, lon, probs, GridSpec.world(0.5), is_canceled=lambda: True)
    from model_utils import errors

    assert Canceled is errors.Canceled  # the same type the predictor and gallery raise
    ticks = iter(range(100))
    with pytest.raises(Canceled):  # canceled mid-way, not only before starting
        probability_grid(lat, lon, probs, GridSpec.world(0.5), is_canceled=lambda: next(ticks) >= 3)


@pytest.mark.parametrize(
    ("extent", "message"),
    [
        ((10.0, 40.0, 10.0, 50.0), "extent has zero area"),
        ((10.0, 40.0, 20.0, 40.0), "extent has zero area"),
        ((20.0, 40.0, 10.0, 50.0), "extent has zero area"),
        ((-200.0, 40.0, 10.0, 50.0), "outside the EPSG:4326 world"),
        ((0.0, 0.0, 1e6, 1e6), "outside the EPSG:4326 world"),
        ((0.0, float("nan"), 1.0, 1.0), "finite"),
    ],
)
def test_bad_extents_raise(extent, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        GridSpec(*extent, 0.1)


def test_bad_cell_sizes_raise():
    with pytest.raises(ValueError, match="cell_size must be > 0"):
        GridSpec(0.0, 0.0, 1.0, 1.0, 0.0)
    with pytest.raises(ValueError) as info:
        GridSpec.world(0.01)  # 36000 x 18000 = 648 million cells
    msg = str(info.value)
    assert "648,000,000 cells" in msg and f"{MAX_CELLS:,}" in msg and "larger cell size" in msg
    # The suggested cell size does fit.
    suggested = float(re.search(r"at least ([0-9.]+) degrees", msg).group(1))
    assert GridSpec.world(suggested).width * GridSpec.world(suggested).height <= MAX_CELLS


def test_kernel_far_wider_than_a_small_fine_extent_raises_instead_of_eating_memory():
    spec = GridSpec(0.0, 0.0, 1.0, 1.0, 0.01)
    # A 25 km kernel in the middle of a 1 degree square: the Gaussian's share of the square.
    half_side_km = 0.5 * KM_PER_DEGREE
    expected = math.erf(half_side_km / (25.0 * math.sqrt(2.0))) ** 2
    assert single(0.5, 0.5, spec, bandwidth_km=25.0).mass == pytest.approx(expected, abs=0.005)
    with pytest.raises(ValueError, match="larger cell size or a smaller bandwidth"):
        single(0.5, 0.5, spec, bandwidth_km=3000.0)


def test_bad_points_raise_with_rows():
    spec = GridSpec.world(1.0)
    with pytest.raises(ValueError, match=r"NaN or infinite values in 1 row \(1\)"):
        probability_grid([0.0, np.nan], [0.0, 0.0], [0.5, 0.5], spec)
    with pytest.raises(ValueError, match=r"latitude outside \[-90, 90\] in 1 row \(0\)"):
        probability_grid([100.0], [0.0], [1.0], spec)
    with pytest.raises(ValueError, match=r"probs must be finite and >= 0; 1 row \(1\)"):
        probability_grid([0.0, 1.0], [0.0, 1.0], [1.0, -0.1], spec)
    with pytest.raises(ValueError, match="same length"):
        probability_grid([0.0, 1.0], [0.0], [1.0], spec)
    with pytest.raises(ValueError, match="bandwidth_km"):
        probability_grid([0.0], [0.0], [1.0], spec, bandwidth_km=-1.0)


# ----------------------------------------------------------------------- independent reference
# probability_grid works in the frequency domain (FFT transfer functions, padded and cropped work areas).
# The reference below computes the same documented definition directly in the spatial domain with plain
# numpy and scipy.special.ive, on the whole world lattice, then crops to the extent. The definition, from
# the module docstring and its constants:
#   1. cloud-in-cell: each point is split bilinearly between the four nearest cell centres (a point beyond
#      the centre of a polar row keeps that share in the polar row; columns wrap round the antimeridian);
#   2. a 1-D discrete Gaussian along meridians, T(n; t) = exp(-t) I_n(t) with t = sigma_lat^2 - 1/6 cells^2
#      (sigma_lat = bandwidth / km per degree / cell size; the 1/6 is what cloud-in-cell binning already
#      spreads on average), where a meridian and its opposite form one circle over both poles: mass that
#      crosses a pole lands half a turn of longitude away;
#   3. a 1-D discrete Gaussian along each target row, periodic round the parallel, with
#      sigma_lon = sigma_lat / cos(latitude of the row centre) (the latitude capped at 90 - cell / 4).
# The module may drop a kernel's tail beyond 5 standard deviations (padding of a partial extent or of the
# meridian FFT), "6e-7 of the mass"; nothing else is approximated. Hence the tolerance: 1e-6 of the total
# probability absolute, plus float32 rounding of the stored raster (relative 6e-8; 1e-6 allowed).
# The reference sums kernel terms out to 12 standard deviations plus 20 cells (tail < 1e-20).


def km_per_degree() -> float:
    return 2.0 * math.pi * EARTH_RADIUS_KM / 360.0


def discrete_gaussian(t: float) -> tuple[np.ndarray, np.ndarray]:
    """Offsets and weights exp(-t) I_n(t) of the discrete Gaussian with variance t (cells^2)."""
    from scipy.special import ive

    # 12 standard deviations, and at least 20 cells: for a small t the tail decays like (t/2)^n / n!.
    reach = math.ceil(12.0 * math.sqrt(t)) + 20
    offsets = np.arange(-reach, reach + 1)
    return offsets, ive(np.abs(offsets), t)


def reference_world(lat, lon, probs, cell: float, bandwidth_km: float) -> np.ndarray:
    """Mass per cell of the world lattice at ``cell`` degrees, (rows north to south, columns west to east)."""
    n_rows, n_cols = round(180.0 / cell), round(360.0 / cell)
    # 1. cloud-in-cell onto cell centres
    binned = np.zeros((n_rows, n_cols))
    for la, lo, p in zip(lat, lon, probs):
        u, v = (lo + 180.0) / cell - 0.5, (90.0 - la) / cell - 0.5
        c_lo, r_lo = math.floor(u), math.floor(v)
        fu, fv = u - c_lo, v - r_lo
        for r, wr in ((r_lo, 1.0 - fv), (r_lo + 1, fv)):
            for c, wc in ((c_lo, 1.0 - fu), (c_lo + 1, fu)):
                binned[min(max(r, 0), n_rows - 1), c % n_cols] += p * wr * wc
    # 2. along meridians: virtual row v = source row + offset, folded over the poles
    sigma_lat = bandwidth_km / (km_per_degree() * cell)
    offsets, weights = discrete_gaussian(max(sigma_lat**2 - 1.0 / 6.0, 0.0))
    same_side = np.zeros((n_rows, n_rows))  # [target row, source row]
    over_pole = np.zeros((n_rows, n_rows))
    for src in range(n_rows):
        m = np.mod(src + offsets, 2 * n_rows)
        flipped = m >= n_rows
        target = np.where(flipped, 2 * n_rows - 1 - m, m)
        np.add.at(same_side, (target[~flipped], src), weights[~flipped])
        np.add.at(over_pole, (target[flipped], src), weights[flipped])
    rows = same_side @ binned + np.roll(over_pole @ binned, n_cols // 2, axis=1)
    # 3. along each parallel, periodic
    lat_c = 90.0 - (np.arange(n_rows) + 0.5) * cell
    cos_lat = np.cos(np.radians(np.minimum(np.abs(lat_c), 90.0 - cell / 4.0)))
    lag = np.mod(np.arange(n_cols)[:, None] - np.arange(n_cols)[None, :], n_cols)  # target - source column
    out = np.zeros_like(rows)
    for j in range(n_rows):
        sigma_lon = sigma_lat / cos_lat[j]
        offsets, weights = discrete_gaussian(max(sigma_lon**2 - 1.0 / 6.0, 0.0))
        circular = np.zeros(n_cols)
        np.add.at(circular, np.mod(offsets, n_cols), weights)
        out[j] = circular[lag] @ rows[j]
    return out


def reference_areas_km2(spec: GridSpec) -> np.ndarray:
    """Cell area per row on the sphere: R^2 * d(longitude) * (sin(top) - sin(bottom))."""
    top = np.radians(spec.ymax - np.arange(spec.height) * spec.cell_size)
    bottom = np.radians(spec.ymax - (np.arange(spec.height) + 1) * spec.cell_size)
    return EARTH_RADIUS_KM**2 * math.radians(spec.cell_size) * (np.sin(top) - np.sin(bottom))


def crop(world: np.ndarray, spec: GridSpec) -> np.ndarray:
    return world[spec.row_offset:spec.row_offset + spec.height, spec.col_offset:spec.col_offset + spec.width]


# A few points chosen to hit every part of the definition: near and on a pole (pole crossing), next to the
# antimeridian (row wrap), on a cell corner (four-way split), ordinary places in both hemispheres.
REF_LAT = np.array([85.3, 90.0, -62.0, 0.0, 37.5, -33.9, -88.6, 51.5])
REF_LON = np.array([12.0, -45.0, 179.0, 0.0, -122.4, 18.4, 100.0, -0.1])
REF_PROBS = np.array([0.25, 0.05, 0.2, 0.15, 0.1, 0.1, 0.05, 0.1])


@pytest.mark.parametrize("bandwidth_km", [0.0, 400.0, 1500.0, 6000.0])
@pytest.mark.parametrize("density", [False, True])
def test_world_raster_matches_a_brute_force_reference(bandwidth_km, density):
    spec = GridSpec.world(10.0)
    grid = probability_grid(REF_LAT, REF_LON, REF_PROBS, spec, bandwidth_km=bandwidth_km, density=density)
    expected = reference_world(REF_LAT, REF_LON, REF_PROBS, 10.0, bandwidth_km)
    total = float(REF_PROBS.sum())
    # The reference itself: each point's kernel is normalised over the sphere, so the world holds all mass.
    assert float(expected.sum()) == pytest.approx(total, rel=1e-12)
    assert grid.values.shape == expected.shape == (18, 36)
    values = grid.values.astype(np.float64)
    if density:  # probability per km^2: back to mass with the reference's own cell areas
        assert grid.density
        values = values * reference_areas_km2(spec)[:, None]
    np.testing.assert_allclose(values, expected, rtol=1e-6, atol=1e-6 * total)
    assert grid.mass == pytest.approx(total, abs=1e-6 * total)


@pytest.mark.parametrize(("extent", "cell", "bandwidth_km"), [
    ((-30.0, -40.0, 60.0, 30.0), 2.5, 500.0),  # partial rows and columns: the padded, truncated path
    ((150.0, -30.0, 180.0, 0.0), 2.5, 800.0),  # touches the antimeridian: its work area wraps round it
    ((-180.0, 60.0, 180.0, 90.0), 5.0, 300.0),  # polar cap: mass from beyond the pole, whole parallels
])
def test_sub_extent_matches_a_brute_force_reference(extent, cell, bandwidth_km):
    lat = np.array([10.0, -39.0, 29.9, -20.0, 0.0, -15.0, -5.0, 88.0, 75.0, 62.0, -60.0])
    lon = np.array([20.0, -29.0, 59.0, 170.0, -178.0, 179.9, 150.5, 10.0, -170.0, 100.0, 100.0])
    probs = np.array([0.2, 0.1, 0.1, 0.15, 0.1, 0.05, 0.05, 0.1, 0.05, 0.05, 0.05])
    spec = GridSpec(*extent, cell)
    grid = probability_grid(lat, lon, probs, spec, bandwidth_km=bandwidth_km)
    expected = crop(reference_world(lat, lon, probs, cell, bandwidth_km), spec)
    total = float(probs.sum())
    assert grid.values.shape == expected.shape
    np.testing.assert_allclose(grid.values, expected, rtol=1e-6, atol=1e-6 * total)
    assert grid.mass == pytest.approx(float(expected.sum()), abs=1e-6 * total)
    assert 0.0 < grid.mass < total  # a real sub-extent: some mass inside, some outside
