"""Credible regions: "taken inside this area, with 90% probability", from a probability raster.

The region at level ``p`` is the highest-density region: the smallest area of whole raster cells holding
at least ``p`` of the raster's probability. Cells are taken from the densest (probability per km²) down
until they hold ``p``; then the included cells of least mass are dropped while the rest still hold ``p``.
So a region holds at least ``p`` and less than ``p`` plus the mass of its smallest included cell (cells are
whole). Density, not mass per cell, decides the order: near the poles cells are small, and the densest
place can hold little mass. ``enclosed`` is a share of the raster's own total: for a raster over part of
the world it is conditional on the extent (the caller knows how much of the whole the raster holds).

The cells are dissolved into a (multi)polygon in EPSG:4326. Cells never cross the antimeridian, so a
region around it is two parts, one on each edge of the map, never a band around the world; cells at the
poles are ordinary rectangles up to latitude +-90. Areas are geodesic (WGS84 ellipsoid), summed from
whole cells. Edges are densified at the cell size, so a region keeps its shape when reprojected (a polar
cap's edge along a parallel becomes a circle in a polar CRS, not a chord).

``region_cells`` does the choosing and hands out each region as boxes (one per run of cells in a row);
``credible_regions`` unions them with shapely for Python users. Inside QGIS the plugin unions the same
boxes with QGIS's own geometry engine instead: shapely's wheel brings a second GEOS, which clashes with the
one QGIS has loaded ("WKB output dimension must be 2 or 3" from a QGIS desktop run).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .grid import GridSpec, cell_areas_km2

DEFAULT_LEVELS = (0.5, 0.9)


@dataclass(frozen=True)
class RegionCells:
    """One level's chosen cells: their mask, the boxes that cover them row by row (an (n, 4) array of
    xmin, ymin, xmax, ymax), the share of the raster's probability they hold, their geodesic area and the
    grid's cell size (degrees; the step to densify their edges at)."""

    level: float
    mask: np.ndarray
    boxes: np.ndarray
    enclosed: float
    area_km2: float
    n_cells: int
    cell_size: float


@dataclass(frozen=True)
class CredibleRegion:
    """One level's region: its geometry (shapely, lon/lat degrees), the share of the raster's probability
    it holds, its geodesic area and how many separate parts and cells it has."""

    level: float
    geometry: Any
    enclosed: float
    area_km2: float
    n_parts: int
    n_cells: int


def check_levels(levels: Sequence[float]) -> tuple[float, ...]:
    """The levels as floats, each strictly between 0 and 1, or ValueError naming the bad one."""
    out = []
    for level in levels:
        value = float(level)
        if not 0.0 < value < 1.0:
            raise ValueError(f"credible region levels must lie strictly between 0 and 1 (e.g. 0.5, 0.9); got {level}")
        out.append(value)
    if not out:
        raise ValueError("give at least one credible region level (e.g. 0.5, 0.9)")
    return tuple(out)


def parse_levels(text: str) -> tuple[float, ...]:
    """Levels as people write them, '0.5, 0.9' or '50%, 90%' (commas or semicolons) -> (0.5, 0.9); '' -> ();
    a bad level is a ValueError naming it."""
    parts = [part.strip() for part in (text or "").replace(";", ",").split(",") if part.strip()]
    if not parts:
        return ()
    return check_levels([float(part[:-1]) / 100 if part.endswith("%") else float(part) for part in parts])


def credible_regions(values: np.ndarray, spec: GridSpec, levels: Sequence[float] = DEFAULT_LEVELS,
                     density: bool = False) -> list[CredibleRegion]:
    """The credible regions of a probability raster (``values`` (height, width) on ``spec``: mass per cell,
    or with ``density`` probability per km²), one per level, smallest level first, as shapely geometries."""
    return [region_polygon(cells) for cells in region_cells(values, spec, levels, density)]


def region_polygon(cells: RegionCells) -> CredibleRegion:
    """A region's cells dissolved by shapely into one (multi)polygon, with a vertex every cell along its edges
    (reprojected, parallels stay curves: see the module note)."""
    import shapely
    from shapely.geometry import box

    geometry = shapely.segmentize(shapely.union_all([box(*b) for b in cells.boxes]), cells.cell_size)
    return CredibleRegion(level=cells.level, geometry=geometry, enclosed=cells.enclosed, area_km2=cells.area_km2,
                          n_parts=len(getattr(geometry, "geoms", [geometry])), n_cells=cells.n_cells)


def region_cells(values: np.ndarray, spec: GridSpec, levels: Sequence[float] = DEFAULT_LEVELS,
                 density: bool = False) -> list[RegionCells]:
    """The cells of each level's region (see ``credible_regions``), without a geometry library."""
    levels = tuple(sorted(check_levels(levels)))
    grid = np.asarray(values, dtype=np.float64)
    if grid.shape != spec.shape:
        raise ValueError(f"the raster is {grid.shape[0]} x {grid.shape[1]} cells but its grid is "
                         f"{spec.height} x {spec.width}")
    mass = np.where(np.isfinite(grid) & (grid > 0), grid, 0.0)
    if density:
        mass = mass * cell_areas_km2(spec)[:, None]
    total = float(mass.sum())
    if not total > 0:
        raise ValueError("the raster holds no probability (all cells are zero, negative or no data)")
    row_area = geodesic_row_areas_km2(spec)
    order = np.argsort(-(mass / row_area[:, None]), axis=None, kind="stable")  # densest first
    flat = mass.ravel()
    cumulative = np.cumsum(flat[order]) / total
    regions = []
    for level in levels:
        n_cells = int(np.searchsorted(cumulative, level - 1e-12)) + 1  # first count holding at least the level
        taken = _drop_smallest(order[:min(n_cells, order.size)], flat, level * total)
        chosen = np.zeros(mass.size, dtype=bool)
        chosen[taken] = True
        chosen = chosen.reshape(mass.shape)
        regions.append(RegionCells(level=level, mask=chosen, boxes=_row_boxes(chosen, spec),
                                   enclosed=float(flat[taken].sum() / total),
                                   area_km2=float((chosen.sum(axis=1) * row_area).sum()), n_cells=int(taken.size),
                                   cell_size=spec.cell_size))
    return regions


def _drop_smallest(taken: np.ndarray, flat: np.ndarray, needed: float) -> np.ndarray:
    """``taken`` (cell indices, densest first, holding at least ``needed``) without its least massive cells
    while the rest still hold ``needed``: then the region holds less than ``needed`` plus its smallest cell."""
    by_mass = taken[np.argsort(flat[taken], kind="stable")]
    spare = float(flat[taken].sum()) - needed * (1 - 1e-12)  # the same tolerance as choosing: whole cells
    n_drop = int(np.searchsorted(np.cumsum(flat[by_mass]), spare, side="right"))
    n_drop = min(n_drop, taken.size - 1)  # a region keeps at least one cell
    return by_mass[n_drop:]


@functools.lru_cache(maxsize=8)  # the same grid for every photo of a run
def geodesic_row_areas_km2(spec: GridSpec) -> np.ndarray:
    """Geodesic area (WGS84) of one cell in each row, north to south (read-only: it is shared)."""
    from pyproj import Geod

    geod = Geod(ellps="WGS84")
    tops = spec.ymax - np.arange(spec.height) * spec.cell_size
    areas = []
    for top in tops:
        bottom = max(top - spec.cell_size, -90.0)
        area, _ = geod.polygon_area_perimeter([0.0, spec.cell_size, spec.cell_size, 0.0],
                                              [bottom, bottom, min(top, 90.0), min(top, 90.0)])
        areas.append(abs(area) / 1e6)
    out = np.asarray(areas)
    out.setflags(write=False)
    return out


def _row_boxes(chosen: np.ndarray, spec: GridSpec) -> np.ndarray:
    """(xmin, ymin, xmax, ymax) of each row's runs of chosen cells, one row each of an (n, 4) array: unioned,
    they are the region. One array, not a tuple per box: a run of 1,000 photos keeps every photo's boxes
    until its regions are written, and a million small Python objects left the interpreter's memory
    fragmented (RSS stayed ~30 MB higher per 300 photos after they were freed)."""
    edges = np.diff(np.pad(chosen, ((0, 0), (1, 1))).astype(np.int8), axis=1)
    rows, starts = np.nonzero(edges == 1)  # row-major, so the n-th start and the n-th stop are one run
    _, stops = np.nonzero(edges == -1)  # the column after the run's last cell
    # shared edges must be equal to the bit, or the union leaves slivers: every edge is snapped alike
    top = np.round(np.minimum(spec.ymax - rows * spec.cell_size, 90.0), 9)
    bottom = np.round(np.maximum(top - spec.cell_size, -90.0), 9)
    xmin = np.round(spec.xmin + starts * spec.cell_size, 9)
    xmax = np.round(spec.xmin + stops * spec.cell_size, 9)
    return np.column_stack([xmin, bottom, xmax, top]).astype(np.float64)
