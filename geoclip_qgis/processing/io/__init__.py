"""What the algorithms read and write: points from layers, GeoTIFF, GeoPackage, Parquet, NPZ; whole outputs or none."""
