"""The separable geodesic kernel on the raster lattice: cloud-in-cell binning of points, then a discrete
Gaussian along meridians and along each parallel (with its own width), by FFT, with mass folded over the poles
and wrapped round the antimeridian. ``heatmap`` explains the method and is the public entry point; the
land-aware kernel (``land_kernel``) uses the same pieces for its normalisers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import fft as sp_fft

from ..geo import EARTH_RADIUS_KM
from .grid import MAX_CELLS, SNAP_EPS, GridSpec, cell_areas_km2

# Length of one degree of a great circle on the mean-radius sphere (~111.195 km).
KM_PER_DEGREE = 2.0 * math.pi * EARTH_RADIUS_KM / 360.0
# Kernels are cut at this many standard deviations when padding a partial extent
# (the two-sided tail beyond 5 sigma is 6e-7 of the mass).
TRUNCATE_SIGMAS = 5.0
# Cloud-in-cell binning itself spreads a point by f(1 - f) cells^2 (f: its offset from a cell
# centre), 1/6 on average; the kernel's variance is reduced by that much to compensate.
_CIC_VARIANCE = 1.0 / 6.0
_FFT_WORKERS = 2
# Target number of float64 values per FFT block: big enough to be fast, small enough
# to keep memory flat and to check for cancellation often.
_BLOCK_VALUES = 1 << 21


@dataclass(frozen=True)
class Plan:
    """Index bookkeeping shared by the three passes (all counts in cells of the world lattice).

    Sources live in a buffer of the ``src_rows`` only; the meridian FFT zero-pads it to
    ``n_lat`` rows, the first half of the padding standing for rows south of the sources and
    the second half (reached through the FFT's wrap-around) for rows north of them. Virtual
    rows beyond a pole continue over it (see :func:`_fold`). Columns of the work area are
    world columns ``c0 + k`` modulo ``n_cols_world``.
    """

    spec: GridSpec
    n_rows_world: int  # rows of the computation lattice (>= 180 degrees)
    n_cols_world: int  # columns of the computation lattice (>= 360 degrees)
    sigma_lat: float  # kernel sd along meridians, cells
    sigma_lon: np.ndarray  # kernel sd along each target row, cells
    n_lat: int  # FFT length along meridians
    src_rows: tuple[int, int]  # world rows whose points can reach the extent
    c0: int  # world column of work column 0
    work_cols: int  # columns of the work area
    n_lon: int  # FFT length along rows
    out_col: int  # work column of the extent's first column

    @classmethod
    def make(cls, spec: GridSpec, bandwidth_km: float) -> Plan:
        cell = spec.cell_size
        n_rows = math.ceil(180.0 / cell - SNAP_EPS)
        n_cols = math.ceil(360.0 / cell - SNAP_EPS)
        j0, height = spec.row_offset, spec.height
        i0, width = spec.col_offset, spec.width

        sigma_lat = bandwidth_km / (KM_PER_DEGREE * cell)
        pad_rows = math.ceil(TRUNCATE_SIGMAS * min(sigma_lat, 2.0 * n_rows)) + 2
        src_rows = (max(0, j0 - pad_rows), min(n_rows, j0 + height + pad_rows))
        crosses_pole = j0 - pad_rows < 0 or j0 + height + pad_rows > n_rows
        n_src = src_rows[1] - src_rows[0]
        if n_src + 2 * pad_rows >= 2 * n_rows:
            # The kernel reaches round the globe: convolve on the whole meridian circle
            # (2 * n_rows long, over both poles) where the FFT's periodicity is the truth.
            n_lat = 2 * n_rows
        else:
            n_lat = sp_fft.next_fast_len(n_src + 2 * pad_rows, real=True)

        lat_c = np.abs(spec.lat_centers)
        cos_lat = np.cos(np.radians(np.minimum(lat_c, 90.0 - cell / 4.0)))
        sigma_lon = bandwidth_km / (KM_PER_DEGREE * cell * np.maximum(cos_lat, 1e-12))
        pad_cols = math.ceil(TRUNCATE_SIGMAS * min(float(sigma_lon.max()), n_cols)) + 2
        if crosses_pole or width + 2 * pad_cols >= n_cols:
            # Whole parallels: rows are periodic, and mass crossing a pole can move half a turn.
            c0, work_cols, n_lon, out_col = 0, n_cols, n_cols, i0
        else:
            c0, work_cols, out_col = i0 - pad_cols, width + 2 * pad_cols, pad_cols
            n_lon = sp_fft.next_fast_len(work_cols + pad_cols, real=True)
        work_cells = max(n_src, height) * work_cols
        if work_cells > MAX_CELLS:
            raise ValueError(
                f"a {bandwidth_km:g} km kernel at {cell:g} degree cells reaches far beyond this "
                f"extent: the work area would be {max(n_src, height)} x {work_cols} = {work_cells:,} "
                f"cells (limit {MAX_CELLS:,}); use a larger cell size or a smaller bandwidth"
            )
        return cls(spec, n_rows, n_cols, sigma_lat, sigma_lon, n_lat, src_rows,
                   c0, work_cols, n_lon, out_col)

    def virtual_rows(self) -> np.ndarray:
        """Virtual row of each row of the meridian FFT (see the class docstring)."""
        n_src = self.src_rows[1] - self.src_rows[0]
        q = np.arange(self.n_lat)
        south = n_src + (self.n_lat - n_src) // 2
        return self.src_rows[0] + np.where(q < south, q, q - self.n_lat)

    @property
    def periodic_cols(self) -> bool:
        return self.work_cols == self.n_cols_world


def bin_points(plan: Plan, lat: np.ndarray, lon: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Cloud-in-cell binning into the (source rows, work_cols) buffer."""
    cell = plan.spec.cell_size
    n_src = plan.src_rows[1] - plan.src_rows[0]
    buf_size = n_src * plan.work_cols
    if probs.size == 0:
        return np.zeros((n_src, plan.work_cols))
    u = (lon + 180.0) / cell - 0.5  # column coordinate, integers at cell centres
    v = (90.0 - lat) / cell - 0.5  # row coordinate
    col_lo = np.floor(u)
    row_lo = np.floor(v)
    fu = u - col_lo
    fv = v - row_lo
    col_lo = col_lo.astype(np.int64)
    row_lo = row_lo.astype(np.int64)
    idx_parts, w_parts = [], []
    for d_row, w_row in ((0, 1.0 - fv), (1, fv)):
        # Beyond the centre of a polar row there is no row to share with: keep it all.
        rows = np.clip(row_lo + d_row, 0, plan.n_rows_world - 1)
        in_rows = (rows >= plan.src_rows[0]) & (rows < plan.src_rows[1])
        q = rows - plan.src_rows[0]
        for d_col, w_col in ((0, 1.0 - fu), (1, fu)):
            cols = (col_lo + d_col - plan.c0) % plan.n_cols_world  # wraps round the antimeridian
            keep = in_rows & (cols < plan.work_cols)
            idx_parts.append(q[keep] * plan.work_cols + cols[keep])
            w_parts.append((probs * w_row * w_col)[keep])
    flat = np.bincount(np.concatenate(idx_parts), weights=np.concatenate(w_parts), minlength=buf_size)
    return flat.reshape(n_src, plan.work_cols)


def _fold(v: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Map virtual rows to (real row, crossed-a-pole-an-odd-number-of-times, turn index).

    Going north past row 0 lands on row 0 half a turn of longitude away, and so on: the
    meridian and its opposite form one circle of 2 * n_rows rows.
    """
    turn, m = np.divmod(v, 2 * n_rows)
    flipped = m >= n_rows
    real = np.where(flipped, 2 * n_rows - 1 - m, m)
    return real, flipped, turn


def blur_latitude(plan: Plan, binned: np.ndarray, report: Callable[[float], None]) -> np.ndarray:
    """Blur along meridians and gather the extent's rows: (height, work_cols)."""
    spec = plan.spec
    j0, height = spec.row_offset, spec.height
    n_lat = plan.n_lat
    omega = 2.0 * np.pi * np.arange(n_lat // 2 + 1) / n_lat
    transfer = np.exp(max(plan.sigma_lat**2 - _CIC_VARIANCE, 0.0) * (np.cos(omega) - 1.0))

    # Which buffer rows land on which extent rows, grouped so each group's targets are unique.
    real, flipped, turn = _fold(plan.virtual_rows(), plan.n_rows_world)
    target = (real >= j0) & (real < j0 + height)
    groups = []
    for key in sorted(set(zip(turn[target].tolist(), flipped[target].tolist()))):
        sel = target & (turn == key[0]) & (flipped == key[1])
        if key[1] and not plan.periodic_cols:
            continue  # cannot happen: a pole crossing into the extent forces whole parallels
        rows_q, rows_t = np.flatnonzero(sel), real[sel] - j0
        if not key[1] and _is_run(rows_q) and _is_run(rows_t):  # the bulk: slice, don't gather
            rows_q = slice(int(rows_q[0]), int(rows_q[-1]) + 1)
            rows_t = slice(int(rows_t[0]), int(rows_t[-1]) + 1)
        groups.append((rows_q, rows_t, key[1]))
    shift = plan.n_cols_world // 2

    out = np.zeros((height, plan.work_cols))
    step = max(1, _BLOCK_VALUES // n_lat)
    for start in range(0, plan.work_cols, step):
        stop = min(start + step, plan.work_cols)
        block = binned[:, start:stop]
        totals = block.sum(axis=0)
        if totals.any():
            spectrum = sp_fft.rfft(block, n=n_lat, axis=0, workers=_FFT_WORKERS)
            spectrum *= transfer[:, None]
            blurred = sp_fft.irfft(spectrum, n=n_lat, axis=0, workers=_FFT_WORKERS)
            _drop_roundoff(blurred, totals[None, :])
            for rows_q, rows_t, is_flipped in groups:
                if is_flipped:  # came over a pole: half a turn of longitude away
                    cols = (np.arange(start, stop) + shift) % plan.n_cols_world
                    out[np.ix_(rows_t, cols)] += blurred[rows_q]
                else:
                    out[rows_t, start:stop] += blurred[rows_q]
        report(stop / plan.work_cols)
    return out


def blur_longitude(
    plan: Plan, rows: np.ndarray, density: bool, report: Callable[[float], None], weights: np.ndarray | None = None
) -> tuple[np.ndarray, float]:
    """Blur each row along its parallel, crop to the extent, times ``weights`` (per extent cell) if given;
    returns (float32 values, mass)."""
    spec = plan.spec
    height, width = spec.height, spec.width
    n_lon = plan.n_lon
    cos_m1 = np.cos(2.0 * np.pi * np.arange(n_lon // 2 + 1) / n_lon) - 1.0
    areas = cell_areas_km2(spec) if density else None
    values = np.zeros((height, width), dtype=np.float32)
    mass = 0.0
    step = max(1, _BLOCK_VALUES // n_lon)
    for start in range(0, height, step):
        stop = min(start + step, height)
        block = rows[start:stop]
        totals = block.sum(axis=1)
        if totals.any():
            spectrum = sp_fft.rfft(block, n=n_lon, axis=1, workers=_FFT_WORKERS)
            var = np.maximum(plan.sigma_lon[start:stop, None] ** 2 - _CIC_VARIANCE, 0.0)
            spectrum *= np.exp(var * cos_m1[None, :])
            blurred = sp_fft.irfft(spectrum, n=n_lon, axis=1, workers=_FFT_WORKERS)
            blurred = blurred[:, plan.out_col:plan.out_col + width]
            _drop_roundoff(blurred, totals[:, None])
            if weights is not None:
                blurred = blurred * weights[start:stop]
            mass += float(blurred.sum())
            if areas is not None:
                blurred = blurred / areas[start:stop, None]
            values[start:stop] = blurred
        report(stop / height)
    return values, mass


def _drop_roundoff(values: np.ndarray, totals: np.ndarray) -> None:
    """Zero FFT round-off (tiny values of either sign) in place; it would speckle log styles."""
    floor = 64.0 * np.finfo(np.float64).eps * totals
    values[values < floor] = 0.0


def _is_run(idx: np.ndarray) -> bool:
    """True for consecutive increasing indices, which can be sliced instead of gathered."""
    return idx.size > 0 and int(idx[-1]) - int(idx[0]) == idx.size - 1 and bool(np.all(np.diff(idx) == 1))
