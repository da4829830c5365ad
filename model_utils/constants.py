"""Numbers and names the model, the plugin and the tools share, importable without torch or pyproj
(the QGIS plugin reads them while it loads, before any heavy package is needed)."""

from __future__ import annotations

EMBED_DIM = 512  # GeoCLIP's shared image / location embedding size
DEFAULT_CLIP = "openai/clip-vit-large-patch14"  # the backbone GeoCLIP was trained with
# The commit of DEFAULT_CLIP that is downloaded (the one other public code bases pin too): a changed hub repo can
# never swap the weights under a user. A repo id given by the user may carry its own as ``repo@revision``.
# pragma: allowlist nextline secret (detect-secrets' hex-entropy rule: a public git commit id, not a credential)
DEFAULT_CLIP_REVISION = "32bd64288804d66eefd0ccbe215aa642df71cc41"
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "fp16", "bf16", "int8")  # new ones last: enum indices
CPU_PRECISIONS: tuple[str, ...] = tuple(p for p in PRECISIONS if p != "fp16")  # fp16 is for GPUs (the Ray workers)
# The paper's accuracy table: distance thresholds and their names.
ACCURACY_THRESHOLDS_KM: tuple[float, ...] = (1.0, 25.0, 200.0, 750.0, 2500.0)
THRESHOLD_NAMES: tuple[str, ...] = ("street", "city", "region", "country", "continent")
# Probability rasters over GeoCLIP's gallery: the kernel (~45 km between gallery points) and the cell size
# when none is given; the plugin's algorithms and the batch job's archive density raster share them.
WORLD_BANDWIDTH_KM = 50.0
DEFAULT_CELL_DEG = 0.25

# Fitting a temperature on a run's geotagged photos: fewer say nothing reliable; each kept photo holds its 100K
# gallery probabilities (0.4 MB) until the fit, so a run keeps at most this many.
FIT_MIN_PHOTOS = 10
FIT_MAX_PHOTOS = 400
