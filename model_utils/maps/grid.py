"""The raster lattice every GeoCLIP output grid lives on: EPSG:4326 cells snapped to whole multiples
of the cell size from (-180, 90), so rasters of one cell size line up and compare cell by cell.

Split from ``heatmap`` (the kernel and blur) because "places like here", regional galleries and the
Processing parameters use the lattice without any kernel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..geo import EARTH_RADIUS_KM

# Above this a float32 raster alone is 200 MB and the blur needs several times that.
MAX_CELLS = 50_000_000
# Tolerance, in cells, for snapping coordinates that are already on the lattice.
SNAP_EPS = 1e-6


@dataclass(frozen=True)
class GridSpec:
    """A north-up EPSG:4326 raster grid with square cells of ``cell_size`` degrees.

    The extent is snapped outward to whole cells of the world lattice anchored at
    (-180, 90), so the stored bounds are the raster's true bounds. Bad extents raise
    ValueError at construction, before any work is done.
    """

    xmin: float
    ymin: float
    xmax: float
    ymax: float
    cell_size: float

    def __post_init__(self) -> None:
        values = (self.xmin, self.ymin, self.xmax, self.ymax, self.cell_size)
        try:
            xmin, ymin, xmax, ymax, cell = (float(v) for v in values)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"grid extent and cell size must be numbers, got {values}") from exc
        if not all(math.isfinite(v) for v in (xmin, ymin, xmax, ymax, cell)):
            raise ValueError(f"grid extent and cell size must be finite numbers, got {values}")
        if cell <= 0:
            raise ValueError(f"cell_size must be > 0 degrees, got {cell}")
        if not (xmax > xmin and ymax > ymin):
            raise ValueError(
                f"extent has zero area (or is inverted): need xmin < xmax and ymin < ymax, got "
                f"xmin={xmin}, xmax={xmax}, ymin={ymin}, ymax={ymax}"
            )
        tol = 1e-9
        if xmin < -180 - tol or xmax > 180 + tol or ymin < -90 - tol or ymax > 90 + tol:
            raise ValueError(
                f"extent ({xmin}, {ymin}, {xmax}, {ymax}) is outside the EPSG:4326 world "
                "(longitude -180..180, latitude -90..90); is it in another CRS? "
                "Transform it to EPSG:4326 first."
            )
        # Snap outward to the lattice, keeping only whole cells inside the world.
        cols_world = math.floor(360.0 / cell + SNAP_EPS)
        rows_world = math.floor(180.0 / cell + SNAP_EPS)
        i0 = max(0, math.floor((xmin + 180.0) / cell + SNAP_EPS))
        i1 = min(cols_world, math.ceil((xmax + 180.0) / cell - SNAP_EPS))
        j0 = max(0, math.floor((90.0 - ymax) / cell + SNAP_EPS))
        j1 = min(rows_world, math.ceil((90.0 - ymin) / cell - SNAP_EPS))
        if i1 <= i0 or j1 <= j0:
            raise ValueError(
                f"no whole {cell} degree cell fits in the extent ({xmin}, {ymin}, {xmax}, {ymax}) "
                "at the edge of the world; use a smaller cell size or a larger extent"
            )
        n_cells = (i1 - i0) * (j1 - j0)
        if n_cells > MAX_CELLS:
            suggested = cell * math.sqrt(n_cells / MAX_CELLS)
            suggested = math.ceil(suggested * 1000.0) / 1000.0
            raise ValueError(
                f"the grid would have {n_cells:,} cells ({i1 - i0} x {j1 - j0}), more than the "
                f"limit of {MAX_CELLS:,}; use a larger cell size (at least {suggested:g} degrees "
                "for this extent) or a smaller extent"
            )
        object.__setattr__(self, "xmin", _clean(-180.0 + i0 * cell))
        object.__setattr__(self, "xmax", _clean(-180.0 + i1 * cell))
        object.__setattr__(self, "ymax", _clean(90.0 - j0 * cell))
        object.__setattr__(self, "ymin", _clean(90.0 - j1 * cell))
        object.__setattr__(self, "cell_size", cell)

    @classmethod
    def world(cls, cell_size: float = 0.1) -> GridSpec:
        """The whole EPSG:4326 world at ``cell_size`` degrees."""
        return cls(-180.0, -90.0, 180.0, 90.0, cell_size)

    @property
    def width(self) -> int:
        """Number of columns."""
        return round((self.xmax - self.xmin) / self.cell_size)

    @property
    def height(self) -> int:
        """Number of rows (row 0 is the northernmost)."""
        return round((self.ymax - self.ymin) / self.cell_size)

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width), the shape of the raster array."""
        return self.height, self.width

    @property
    def geotransform(self) -> tuple[float, float, float, float, float, float]:
        """GDAL geotransform: (xmin, cell, 0, ymax, 0, -cell); row 0 is north."""
        return (self.xmin, self.cell_size, 0.0, self.ymax, 0.0, -self.cell_size)

    @property
    def lon_centers(self) -> np.ndarray:
        """Longitude of each column's centre, west to east."""
        return self.xmin + (np.arange(self.width) + 0.5) * self.cell_size

    @property
    def lat_centers(self) -> np.ndarray:
        """Latitude of each row's centre, north to south."""
        return self.ymax - (np.arange(self.height) + 0.5) * self.cell_size

    @property
    def col_offset(self) -> int:
        """Index of the first column in the world lattice."""
        return round((self.xmin + 180.0) / self.cell_size)

    @property
    def row_offset(self) -> int:
        """Index of the first row in the world lattice."""
        return round((90.0 - self.ymax) / self.cell_size)


def _clean(value: float) -> float:
    """Drop float noise such as 10.000000000000028 so bounds print and compare nicely."""
    return float(round(value, 9)) + 0.0  # + 0.0 turns -0.0 into 0.0



def cell_areas_km2(spec: GridSpec) -> np.ndarray:
    """Area in km^2 of one cell in each row (north to south), on the mean-radius sphere.

    Cells shrink towards the poles by cos(latitude); this converts mass to density and back.
    """
    edges = np.radians(spec.ymax - np.arange(spec.height + 1) * spec.cell_size)
    edges = np.clip(edges, -math.pi / 2, math.pi / 2)
    band = np.sin(edges[:-1]) - np.sin(edges[1:])
    return EARTH_RADIUS_KM**2 * math.radians(spec.cell_size) * band
