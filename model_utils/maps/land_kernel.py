"""The land-aware kernel: each gallery point's kernel renormalised over land cells.

A point at a coast spreads half its kernel over the sea, where nobody took the photo. Weighting every cell
by ``w`` (1 on land cells, :data:`SEA_WEIGHT` on the others) and dividing each point's kernel ``K_i`` by its
weighted sum ``Z_i = sum_c K_i(c) w(c)`` keeps the point's mass (the raster still sums to the probabilities
given) and its bandwidth, and moves the mass that fell on sea onto the land within the kernel's reach.
An inland point is unchanged (``Z_i = 1``). A point with no land within reach (a ship, an islet the mask
lacks) keeps its mass at sea: its kernel is renormalised over the small sea weight alone.

The raster is linear in the probabilities: ``w * G(B(p / Z))`` for the blur ``G`` and binning ``B`` of
``kernel``. ``Z`` does not depend on the probabilities, so it is computed once per gallery, grid and
bandwidth (``Z = B^T G^T w``: the weights blurred along parallels, then meridians, and read at each point the
way binning spreads it) and cached; a photo then costs one division and one product more than the plain
kernel.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict

import numpy as np

from .grid import GridSpec
from .kernel import KM_PER_DEGREE, TRUNCATE_SIGMAS, Plan, blur_latitude, blur_longitude

SEA_WEIGHT = 0.01  # a sea cell weighs 1% of a land cell: a point's mass leaves the sea unless no land is near
_CACHE_SIZE = 4
_cache: OrderedDict = OrderedDict()
_lock = threading.Lock()


def extent_weights(plan: Plan, land) -> np.ndarray:
    """(height, width) float64 cell weights over the plan's extent: 1 on land cells, SEA_WEIGHT elsewhere."""
    spec = plan.spec
    return _weights(land, spec.cell_size, (spec.row_offset, spec.row_offset + spec.height),
                    (spec.col_offset, spec.col_offset + spec.width))


def _weights(land, cell: float, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
    cells = land.land_cells(cell, rows, cols)
    return np.where(cells, 1.0, SEA_WEIGHT)


def point_normalisers(plan: Plan, land, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """(N,) each point's weighted kernel sum ``Z_i`` (in (0, 1]); cached per mask, window, bandwidth and points."""
    window = normaliser_window(plan)
    digest = hashlib.sha256(np.ascontiguousarray(lat).tobytes() + np.ascontiguousarray(lon).tobytes()).hexdigest()
    key = (id(land), window, plan.sigma_lat, digest)
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key][1]
    z = _normalisers(window, plan.sigma_lat * KM_PER_DEGREE * plan.spec.cell_size, land, lat, lon)
    with _lock:
        _cache[key] = (land, z)  # the mask is held so its id is not reused while the entry lives
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return z


def normaliser_window(plan: Plan) -> GridSpec:
    """Every cell a kernel of the plan's source points can reach: the source area padded by the kernel's
    reach (whole parallels when that wraps round the antimeridian), cut at the poles."""
    cell = plan.spec.cell_size
    pad_rows = math.ceil(TRUNCATE_SIGMAS * min(plan.sigma_lat, 2.0 * plan.n_rows_world)) + 2
    r0 = max(0, plan.src_rows[0] - pad_rows)
    r1 = min(plan.n_rows_world, plan.src_rows[1] + pad_rows)
    lat_edge = max(abs(90.0 - r0 * cell), abs(90.0 - r1 * cell))
    cos_lat = math.cos(math.radians(min(lat_edge, 90.0 - cell / 4.0)))
    sigma_lon = plan.sigma_lat / max(cos_lat, 1e-12)
    pad_cols = math.ceil(TRUNCATE_SIGMAS * min(sigma_lon, plan.n_cols_world)) + 2
    c0, c1 = plan.c0 - pad_cols, plan.c0 + plan.work_cols + pad_cols
    if plan.periodic_cols or c0 < 0 or c1 > plan.n_cols_world:
        c0, c1 = 0, plan.n_cols_world
    return GridSpec(-180.0 + c0 * cell, 90.0 - r1 * cell, -180.0 + c1 * cell, 90.0 - r0 * cell, cell)


def _normalisers(window: GridSpec, bandwidth_km: float, land, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """``Z = B^T G^T w`` over ``window``: the blur is symmetric along meridians and within each parallel, so its
    transpose is the parallel blur (each row with its own width) followed by the meridian blur."""
    plan = Plan.make(window, bandwidth_km)
    cols = (plan.c0, plan.c0 + plan.work_cols)
    w = _weights(land, window.cell_size, (window.row_offset, window.row_offset + window.height), cols)
    along, _ = blur_longitude(plan, w, False, _quiet)  # (height, width) of the window
    buffer = np.zeros((plan.src_rows[1] - plan.src_rows[0], plan.work_cols))
    top = window.row_offset - plan.src_rows[0]
    buffer[top:top + window.height, plan.out_col:plan.out_col + window.width] = along
    field = blur_latitude(plan, buffer, _quiet)[:, plan.out_col:plan.out_col + window.width]
    return _read_at_points(window, plan, field, lat, lon)


def _quiet(_fraction: float) -> None:
    """No progress to report: the normalisers take a fraction of one raster's time."""


def _read_at_points(window: GridSpec, plan: Plan, field: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """The transpose of cloud-in-cell binning: each point reads its four cells with its binning weights (the same
    clipping at the poles and wrapping round the antimeridian). Points outside the window read 1 (no change)."""
    cell = window.cell_size
    u = (lon + 180.0) / cell - 0.5
    v = (90.0 - lat) / cell - 0.5
    col_lo, row_lo = np.floor(u), np.floor(v)
    fu, fv = u - col_lo, v - row_lo
    col_lo, row_lo = col_lo.astype(np.int64), row_lo.astype(np.int64)
    z = np.zeros(lat.size)
    inside = np.ones(lat.size, dtype=bool)
    for d_row, w_row in ((0, 1.0 - fv), (1, fv)):
        rows = np.clip(row_lo + d_row, 0, plan.n_rows_world - 1) - window.row_offset
        for d_col, w_col in ((0, 1.0 - fu), (1, fu)):
            cols = (col_lo + d_col - window.col_offset) % plan.n_cols_world
            ok = (rows >= 0) & (rows < window.height) & (cols < window.width)
            inside &= ok | (w_row * w_col == 0)
            z[ok] += (w_row * w_col)[ok] * field[rows[ok], cols[ok]]
    return np.where(inside & (z > 0), z, 1.0)
