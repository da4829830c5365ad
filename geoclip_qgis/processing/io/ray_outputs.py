"""What a Ray job's GeoParquet becomes in QGIS: the top-1 points and the credible regions, as layers of one
GeoPackage beside the shards (Debian 12's GDAL reads no Parquet), converted a batch at a time, in the layouts the
local geolocation run writes."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsProcessingException

from .prediction_outputs import points_writer, write_region_layer

TOP1_FILE = "top1.gpkg"
WORLD_RASTER_MASS = 1.0  # a batch job's regions come from rasters over the whole world


def ray_results(out: Path, feedback) -> tuple[Path | None, bool]:
    """(the GeoPackage with layer ``predictions`` - the best guess of every geolocated photo - or None when no
    photo was geolocated, whether it also holds layer ``credible_regions``); replaces an earlier run's copy of
    the same job."""
    import pyarrow.parquet as pq

    from model_utils.safe_files import atomic_path

    shards = sorted(out.glob("part-*.parquet"))
    regions = sorted(out.glob("regions-*.parquet"))
    target = out / TOP1_FILE
    with atomic_path(target) as tmp:
        writer, fields, _ = points_writer(tmp, ("photo", "photo_name"))
        try:
            count = write_top1(writer, fields, (pq.ParquetFile(s) for s in shards))
        finally:
            del writer  # closes the layer before the regions join the file
        n_regions = write_region_layer(tmp, _region_rows(regions), ("photo", "photo_name")) if regions else 0
    feedback.pushInfo(f"Top-1 points of {count} photo(s)" + (f" and {n_regions} credible region(s)" if n_regions
                                                              else "") + f" written to {target}")
    return (target if count else None), n_regions > 0


def _region_rows(files: list[Path]):
    """regions-*.parquet rows as the region layer's features, a batch at a time."""
    import pyarrow.parquet as pq
    from qgis.core import QgsGeometry

    for path in files:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
            for row in batch.to_pylist():
                geometry = QgsGeometry()
                geometry.fromWkb(row["geometry"])
                yield (row["photo"], Path(row["photo"]).name, geometry, row["level"], row["area_km2"],
                       row["enclosed"], WORLD_RASTER_MASS)


def write_top1(writer, fields, shards) -> int:
    """Rank-1 rows of the shards (pyarrow ParquetFiles) as point features, read a batch at a time."""
    from qgis.core import QgsFeature, QgsGeometry, QgsPointXY

    columns = ["photo", "rank", "prob", "lat", "lon", "truth_lat", "truth_lon", "error_km"]
    count = 0
    for shard in shards:
        for batch in shard.iter_batches(batch_size=4096, columns=columns):
            for row in batch.to_pylist():
                if row["rank"] != 1:
                    continue
                feature = QgsFeature(fields)
                feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(row["lon"], row["lat"])))
                feature.setAttributes([row["photo"], Path(row["photo"]).name, 1, row["prob"], row["lat"], row["lon"],
                                       row["truth_lat"], row["truth_lon"], row["error_km"]])
                if not writer.addFeature(feature):
                    raise QgsProcessingException(f"Could not write the point of {row['photo']}: "
                                                 f"{writer.errorMessage()}")
                count += 1
    return count
