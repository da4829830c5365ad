"""Disk space for a geolocation run: what it will write, refused up front in one line when the output
folder's disk lacks it, and a write that still fails for space named as a full disk.

The estimate is what the run really writes, not an upper bound: refusing a run that would have fitted is
worse than the clear message a full disk gives later. Figures measured on this plugin's outputs (DEFLATE +
floating-point predictor GeoTIFFs of 100K-point rasters over the world at 1, 0.25 and 0.1 degree cells,
photo-like to flat distributions, with and without the land mask): 0.22 to 0.43 of the raw float32 size.
"""

from __future__ import annotations

import math

from qgis.core import QgsProcessingException

from model_utils.disk import DiskFull, check_space, disk_full_message, is_disk_full, size_text

RASTER_RATIO = 0.45  # compressed / raw float32, above every measured raster
RASTER_HEADER_BYTES = 16_000  # tags, tile offsets and metadata of one GeoTIFF
GPKG_BASE_BYTES = 160_000  # an empty GeoPackage with the run's tables and their indexes
ROW_BYTES = 400  # one top-k point, truth line or report row, with its share of the indexes
REGION_VERTEX_BYTES = 24  # a region edge has a vertex every cell: two doubles and the WKB's share
REPORT_BYTES = 80_000  # the HTML page (chart and styles) and the two CSV headers
KEPT = "nothing of this run was kept"


def raster_bytes(spec) -> int:
    """About how many bytes one probability raster on ``spec`` takes (0 without rasters)."""
    return 0 if spec is None else RASTER_HEADER_BYTES + int(spec.width * spec.height * 4 * RASTER_RATIO)


def run_bytes(job) -> int:
    """About how many bytes a :class:`GeolocationJob` writes: rasters, the GeoPackage, the report."""
    n = len(job.items)
    total = GPKG_BASE_BYTES + REPORT_BYTES + n * ROW_BYTES * (job.top_k + 2) + n * raster_bytes(job.spec)
    if job.spec is not None:  # a region's outline runs along cell edges: the perimeter of a tenth of the cells
        cells = job.spec.width * job.spec.height
        total += n * len(job.levels) * int(4 * math.sqrt(cells / 10) * 4 * REGION_VERTEX_BYTES)
    return total


def refuse_without_space(job) -> str:
    """Raise, in one line, when the disk holding the output folder lacks the room the run needs; else the
    estimate as text ('12 MB') for the log."""
    needed = run_bytes(job)
    try:
        check_space(job.out_root, needed)
    except DiskFull as exc:
        raise QgsProcessingException(str(exc)) from None
    return size_text(needed)


def full_disk_error(job, exc: BaseException) -> QgsProcessingException | None:
    """The error to raise instead of ``exc`` when it came from the disk holding the output folder filling up;
    else None. GDAL's write errors carry no errno, so less free space than two rasters need counts as full:
    ask before the run's partial files are removed, while their space is still taken."""
    if not is_disk_full(exc, job.out_root, 2 * raster_bytes(job.spec)):
        return None
    return QgsProcessingException(disk_full_message(job.out_root, KEPT))
