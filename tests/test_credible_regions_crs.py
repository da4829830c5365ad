"""Credible regions in other CRSs: edges densified at the cell size keep a polar cap's area in a polar
projection, and a region across the antimeridian is one narrow piece in a Pacific CRS, not a band."""

from __future__ import annotations

import math

import numpy as np
import pytest

from model_utils.maps.grid import GridSpec
from model_utils.maps.regions import credible_regions, region_cells
from tests.test_credible_regions import gaussian


def _reprojected(geometry, crs: str):
    import shapely
    from pyproj import Transformer

    to = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    return shapely.transform(geometry, lambda xy: np.column_stack(to.transform(xy[:, 0], xy[:, 1])))


def test_a_polar_region_keeps_its_area_in_a_polar_crs():
    """Edges are densified at the cell size: in a polar projection the cap's edge along its parallel is a
    circle, not a chord between two corners (undensified, the cap's area there is 0)."""
    import shapely
    from shapely.geometry import box

    spec = GridSpec.world(cell_size=0.5)
    values = gaussian(spec, 90.0, 0.0, 300.0)
    region = credible_regions(values, spec, levels=(0.9,))[0]
    equal_area = _reprojected(region.geometry, "EPSG:3574")  # North Pole Lambert azimuthal equal-area
    assert equal_area.area / 1e6 == pytest.approx(region.area_km2, rel=0.01)
    stereo = _reprojected(region.geometry, "EPSG:3413")  # NSIDC polar stereographic: true scale at 70 N
    fine = _reprojected(shapely.segmentize(region.geometry, 0.02), "EPSG:3413")
    assert stereo.area == pytest.approx(fine.area, rel=0.002)  # the edges follow the curves
    assert stereo.area / 1e6 > 0.9 * region.area_km2  # stereographic shrinks areas near the pole by ~6 %
    # the map's seam at +-180 becomes a zero-width cut from the edge to the pole: repairing it keeps the area
    assert shapely.make_valid(stereo).area == pytest.approx(stereo.area, rel=1e-6)
    boxes = region_cells(values, spec, (0.9,))[0].boxes
    bare = _reprojected(shapely.union_all([box(*b) for b in boxes]), "EPSG:3413")
    assert bare.area < 0.05 * stereo.area  # what densifying prevents: the cap collapses to a line


def test_an_antimeridian_region_in_a_pacific_crs_is_one_valid_piece_not_a_band():
    import shapely

    spec = GridSpec.world(cell_size=0.5)
    for region in credible_regions(gaussian(spec, 10.0, 180.0, 400.0), spec):
        pacific = _reprojected(region.geometry, "EPSG:3832")  # Mercator centred on 150 E
        assert all(part.is_valid for part in pacific.geoms)
        joined = shapely.union_all(list(pacific.geoms))  # the two halves meet along the antimeridian
        assert joined.is_valid and joined.geom_type == "Polygon"
        xmin, _, xmax, _ = joined.bounds
        assert xmax - xmin < 6000e3  # a few thousand km wide, not a band around the world (40,000 km)
        mercator = 1 / math.cos(math.radians(10.0)) ** 2  # Mercator's area scale at the peak's latitude
        assert joined.area / 1e6 == pytest.approx(region.area_km2 * mercator, rel=0.02)


def test_the_plugins_region_geometry_keeps_a_polar_cap_round_in_a_polar_crs():
    """QGIS's dissolve of the same cells, densified like the shapely one: in EPSG:3413 the cap is a disc."""
    from qgis.core import QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsProject

    from geoclip_qgis.processing.io.prediction_outputs import region_geometry

    spec = GridSpec.world(cell_size=0.5)
    cells = region_cells(gaussian(spec, 90.0, 0.0, 300.0), spec, (0.9,))[0]
    geometry = region_geometry(cells.boxes, cells.cell_size)
    expected = credible_regions(gaussian(spec, 90.0, 0.0, 300.0), spec, (0.9,))[0]
    assert geometry.isGeosValid() and geometry.area() == pytest.approx(expected.geometry.area)
    polar = geometry.constGet().clone()
    polar.transform(QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:4326"),
                                           QgsCoordinateReferenceSystem("EPSG:3413"), QgsProject.instance()))
    assert polar.area() == pytest.approx(_reprojected(expected.geometry, "EPSG:3413").area, rel=1e-3)
