"""The names and defaults of every Processing parameter and output, in one place.

The algorithms declare their parameters with these names and defaults, the dock's tabs build their parameter
dicts with them, and a test checks that every key a tab sends is a parameter of its algorithm with a matching
type. Each constant is named for the text it holds (``WRITE_RASTERS = "WRITE_RASTERS"``), so reading a tab's
dict and the toolbox's dialog means reading the same names.
"""

from __future__ import annotations

from enum import IntEnum

from model_utils.constants import DEFAULT_CELL_DEG, WORLD_BANDWIDTH_KM  # noqa: F401 - the grid and kernel defaults

# ---------------------------------------------------------------- shared by several algorithms
INPUT = "INPUT"
OUTPUT = "OUTPUT"
OUTPUT_FOLDER = "OUTPUT_FOLDER"
EXTENT = "EXTENT"
CELL_SIZE = "CELL_SIZE"
BANDWIDTH_KM = "BANDWIDTH_KM"
TOP_K = "TOP_K"
BATCH_SIZE = "BATCH_SIZE"
PHOTOS = "PHOTOS"
TEMPERATURE = "TEMPERATURE"
CREDIBLE_LEVELS = "CREDIBLE_LEVELS"
# the model choices (advanced parameters of every algorithm that loads GeoCLIP)
CLIP_MODEL = "CLIP_MODEL"
WEIGHTS = "WEIGHTS"
DEVICE = "DEVICE"
PRECISION = "PRECISION"

DEFAULT_TOP_K = 5
MAX_TOP_K = 1000
DEFAULT_CREDIBLE_LEVELS = "0.5, 0.9"
DEFAULT_TEMPERATURE = 1.0  # on the logits: the model as trained

# ---------------------------------------------------------------- geolocate photos / text queries
FOLDER = "FOLDER"
RECURSIVE = "RECURSIVE"
PHOTO_LAYER = "PHOTO_LAYER"
PATH_FIELD = "PATH_FIELD"
QUERIES = "QUERIES"
QUERY_FILE = "QUERY_FILE"
DENSITY = "DENSITY"
WRITE_RASTERS = "WRITE_RASTERS"
GALLERY = "GALLERY"
GALLERY_SPACING = "GALLERY_SPACING"
FIT_TEMPERATURE = "FIT_TEMPERATURE"
ON_LAND = "ON_LAND"  # each gallery point's kernel renormalised over land cells (geolocation, places like here, Ray)
REFERENCES = "REFERENCES"  # a reference collection (its folder or index file): predictions fused with it
# outputs
RUN_FOLDER = "RUN_FOLDER"
POINTS = "POINTS"
RASTERS = "RASTERS"
REPORT_HTML = "REPORT_HTML"
N_PHOTOS = "N_PHOTOS"
N_QUERIES = "N_QUERIES"
N_FAILED = "N_FAILED"
ERRORS = "ERRORS"
SKIPPED = "SKIPPED"  # the folder scan's lines: files that are not photos, by reason (their count: N_SKIPPED)
MATCHES = "MATCHES"  # with REFERENCES: the matched reference photos layer
REFERENCE_REPORT = "REFERENCE_REPORT"  # with REFERENCES: GeoCLIP alone and fused, side by side (HTML)

DEFAULT_PHOTO_BATCH = 8
DEFAULT_TEXT_BATCH = 32


class GalleryMode(IntEnum):
    """The GALLERY choice, by its index in the enum parameter."""

    WORLD = 0
    REGIONAL = 1


# ---------------------------------------------------------------- build reference collection
TABLE = "TABLE"  # a CSV or Parquet table of photo paths (+ lat/lon)
COLLECTION = "COLLECTION"  # the collection folder (the index, the references layer, the fit report)
FIT = "FIT"  # fit the fusion by leave-one-out and report it
# outputs
INDEX = "INDEX"
REFERENCE_POINTS = "REFERENCE_POINTS"
LEFT_OUT = "LEFT_OUT"
FIT_REPORT = "FIT_REPORT"
N_REFERENCES = "N_REFERENCES"
N_EMBEDDED = "N_EMBEDDED"
N_LEFT_OUT = "N_LEFT_OUT"

# ---------------------------------------------------------------- GPS embeddings
NORMALIZE = "NORMALIZE"
PCA_COMPONENTS = "PCA_COMPONENTS"
FORMAT = "FORMAT"
LAYOUT = "LAYOUT"

# outputs
PCA_FILE = "PCA_FILE"
FEATURE_COUNT = "FEATURE_COUNT"
SKIPPED_COUNT = "SKIPPED_COUNT"

# ---------------------------------------------------------------- places like here
POINT = "POINT"
LAYER = "LAYER"
MODE = "MODE"
EXCLUDE_KM = "EXCLUDE_KM"
SAMPLES = "SAMPLES"

# ---------------------------------------------------------------- Ray cluster
ADDRESS = "ADDRESS"
CLUSTER_AUTH = "TOKEN"  # the cluster's auth token parameter (a name Bandit's B105 would not misread)
WORKERS = "WORKERS"
GPUS_PER_WORKER = "GPUS_PER_WORKER"
CPUS_PER_WORKER = "CPUS_PER_WORKER"
SHARD_SIZE = "SHARD_SIZE"
RESUME = "RESUME"
DENSITY_RASTER = "DENSITY"  # the output (the archive density), not the geolocation runs' DENSITY switch

# ---------------------------------------------------------------- evaluation
TRUE_LAT_FIELD = "TRUE_LAT_FIELD"
TRUE_LON_FIELD = "TRUE_LON_FIELD"
REGIONS = "REGIONS"
# outputs
OUTPUT_HTML = "OUTPUT_HTML"
OUTPUT_CSV = "OUTPUT_CSV"
OUTPUT_PER_PHOTO_CSV = "OUTPUT_PER_PHOTO_CSV"
MEDIAN_KM = "MEDIAN_KM"
MEAN_KM = "MEAN_KM"
N = "N"
N_WITHOUT_TRUTH = "N_WITHOUT_TRUTH"

# ---------------------------------------------------------------- downstream classifier
LABEL_FIELD = "LABEL_FIELD"
SEPARATOR = "SEPARATOR"
FEATURES = "FEATURES"
PHOTO_FIELD = "PHOTO_FIELD"
TEST_FRACTION = "TEST_FRACTION"
SEED = "SEED"
REGULARIZATION_C = "C"
PREDICTIONS = "PREDICTIONS"
# outputs
CLASSES_CSV = "CLASSES_CSV"
SUMMARY_CSV = "SUMMARY_CSV"
ACCURACY = "ACCURACY"
MACRO_F1 = "MACRO_F1"
MEAN_AP = "MEAN_AP"
N_TRAIN = "N_TRAIN"
N_TEST = "N_TEST"
N_CLASSES = "N_CLASSES"
N_SKIPPED = "N_SKIPPED"
