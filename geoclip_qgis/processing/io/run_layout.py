"""The files and GeoPackage layers of a geolocation run's folder: written by the run, read back by the results
browser (a run opened the next day, or written by ``qgis_process``)."""

from __future__ import annotations

PREDICTIONS_FILE = "predictions.gpkg"
RASTERS_FOLDER = "rasters"  # one probability GeoTIFF per photo or query
LAYER_PREDICTIONS = "predictions"  # the top-k guesses
LAYER_REGIONS = "credible_regions"
LAYER_TRUTH = "truth"  # lines from the top-1 guess to the EXIF position
LAYER_RASTERS = "rasters"  # which GeoTIFF belongs to which photo or query (no geometry)
LAYER_MATCHES = "matches"  # with reference photos: each photo's matched references (points)
LAYER_MATCH_LINES = "match_lines"  # ... and a line from the photo's top-1 guess to each
