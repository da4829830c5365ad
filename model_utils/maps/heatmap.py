"""GeoCLIP gallery probabilities -> a probability raster in EPSG:4326.

GeoCLIP scores a gallery of ~100,000 GPS points; users want a surface. Each point's
probability is spread with an approximately Gaussian kernel whose standard deviation is
``bandwidth_km`` along the meridian and along the parallel through each cell, and the raster
holds the probability mass of each cell (or its density).

It is not exactly a Gaussian of great-circle distance: the blur below is separable (north,
then east with the width of each row's own latitude), which is exact at the equator and drifts
with the kernel's size on the sphere and with latitude. Against a brute-force geodesic Gaussian
(``tests/test_heatmap_geodesic.py``, 800 km on a 2 degree grid) the total-variation distance was
0.007 at the equator, 0.028 at 45N, 0.045 at 60S and 0.074 at 70N (about 0.2 * sigma / R *
|tan(latitude)| beyond the binning error); the cell holding the most mass was the same.

How, and why this way:

* A dense points x cells distance matrix (1e5 x 6.5e6 for a 0.1 degree world) is out of the
  question, so the points are first binned onto the grid (cloud-in-cell: each point is split
  between the four nearest cell centres, which keeps its centre of mass exactly, so a point
  on an extent's border is cut in half, not pushed to one side).
* The kernel is then applied as two 1-D blurs: along meridians with a constant width in
  cells, then along each row with a width that grows as 1 / cos(latitude), because a degree
  of longitude shrinks towards the poles. Both use the discrete Gaussian kernel
  (``exp(-s^2) I_n(s^2)``) through its transfer function ``exp(s^2 (cos w - 1))``: it is
  never negative, sums to exactly 1, has variance exactly ``s^2`` cells^2 and turns into
  plain binning as ``s`` -> 0, so a bandwidth below the cell size loses nothing.
* Mass that crosses a pole comes back down the other side of it (half a turn of longitude
  away); rows wrap around the antimeridian. On the whole world nothing is lost: the
  raster sums to the total probability given. For a smaller extent the work is done on the
  extent padded by 5 kernel widths, then cropped, so the raster holds exactly the mass that
  falls inside (``ProbabilityGrid.mass``).

The grid shares the world lattice anchored at (-180, 90): every extent is snapped outward to
whole cells of that lattice, so rasters of different extents line up cell for cell.

With a ``land`` mask, each gallery point's kernel is renormalised over land cells (``land_kernel``):
its mass stays its own and its bandwidth the same, but it lands on land, where photos are taken.
The binning and the two blurs live in ``kernel``, which both use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

# One Canceled for all of model_utils, so a Processing algorithm catches a single type;
# re-exported here because callers of this module expect to find it next to the work.
from ..errors import Canceled
from ..geo import describe_rows, validate_latlon
from ..progress import IsCanceled, Progress
from .grid import MAX_CELLS, GridSpec, cell_areas_km2
from .kernel import KM_PER_DEGREE, Plan, bin_points, blur_latitude, blur_longitude

__all__ = [
    "KM_PER_DEGREE",
    "MAX_CELLS",
    "Canceled",
    "GridSpec",
    "ProbabilityGrid",
    "cell_areas_km2",
    "probability_grid",
]


@dataclass(frozen=True)
class ProbabilityGrid:
    """A probability raster ready to be written as a GeoTIFF.

    ``values`` is (height, width) float32 with row 0 north. With ``density=False`` a cell
    holds the probability that the photo was taken inside it; with ``density=True`` the
    probability per km^2 (comparable across latitudes and cell sizes). ``mass`` is the
    probability inside the extent: 1 for the world, less for a smaller extent.
    """

    values: np.ndarray
    spec: GridSpec
    mass: float
    density: bool


def probability_grid(
    lat: Any,
    lon: Any,
    probs: Any,
    spec: GridSpec,
    bandwidth_km: float = 25.0,
    density: bool = False,
    progress: Progress | None = None,
    is_canceled: IsCanceled | None = None,
    land: Any = None,
) -> ProbabilityGrid:
    """Spread each gallery point's probability with a (near-)Gaussian of ``bandwidth_km`` and rasterise.

    ``lat``/``lon`` are degrees (N,), ``probs`` (N,) non-negative and used as given (a top-k
    subset yields only its own mass). The kernel is normalised over the whole sphere, so the
    world raster sums to ``probs.sum()``. ``progress(fraction, message)`` is called as work
    advances; if ``is_canceled()`` returns True, :class:`Canceled` is raised. ``land``: keep each
    point's mass on land cells, with a :class:`~model_utils.maps.land.LandMask` or True (the default
    GSHHG mask); None or False: land and sea alike (the plain kernel).
    """
    lat_a, lon_a, p = _validated_points(lat, lon, probs)
    bandwidth_km = float(bandwidth_km)
    if not math.isfinite(bandwidth_km) or bandwidth_km < 0:
        raise ValueError(f"bandwidth_km must be a finite number >= 0, got {bandwidth_km}")

    def report(fraction: float, message: str) -> None:
        if is_canceled is not None and is_canceled():
            raise Canceled("Canceled while computing the probability grid")
        if progress is not None:
            progress(min(max(fraction, 0.0), 1.0), message)

    plan = Plan.make(spec, bandwidth_km)
    weights = None
    if land is not None and land is not False:  # each point's kernel renormalised over land cells
        from .land import resolve_land
        from .land_kernel import extent_weights, point_normalisers

        land = resolve_land(land, spec.cell_size)
        p = p / point_normalisers(plan, land, lat_a, lon_a)
        weights = extent_weights(plan, land)
    keep = p > 0
    lat_a, lon_a, p = lat_a[keep], lon_a[keep], p[keep]
    report(0.0, "binning gallery points")
    binned = bin_points(plan, lat_a, lon_a, p)
    report(0.1, "spreading along meridians")
    rows = blur_latitude(plan, binned, lambda f: report(0.1 + 0.4 * f, "spreading along meridians"))
    del binned
    report(0.5, "spreading along parallels")
    values, mass = blur_longitude(plan, rows, density,
                                   lambda f: report(0.5 + 0.5 * f, "spreading along parallels"), weights)
    report(1.0, "probability grid done")
    return ProbabilityGrid(values=values, spec=spec, mass=mass, density=bool(density))


def _validated_points(lat: Any, lon: Any, probs: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check the gallery once, with row numbers in the messages."""
    arrays = []
    for name, values in (("lat", lat), ("lon", lon), ("probs", probs)):
        arr = np.asarray(values, dtype=np.float64)
        if arr.ndim != 1:
            raise ValueError(f"{name} must be a 1-D array, got shape {arr.shape}")
        arrays.append(arr)
    lat_a, lon_a, p = arrays
    if not (lat_a.size == lon_a.size == p.size):
        raise ValueError(f"lat, lon and probs must have the same length, got {lat_a.size}, "
                         f"{lon_a.size} and {p.size}")
    validate_latlon(np.column_stack([lat_a, lon_a]))
    bad = np.flatnonzero(~(np.isfinite(p) & (p >= 0)))
    if bad.size:
        raise ValueError(f"probs must be finite and >= 0; {describe_rows(bad)} are not")
    return lat_a, lon_a, p
