"""Every choice GeoCLIP remembers between QGIS sessions, as one typed entry each, and how a model choice is
resolved.

Each :class:`Setting` holds its key (under ``geoclip/`` in QgsSettings), its default and so its type; every
read and write of QgsSettings in the plugin goes through one, so a key is spelled once and a default lives in
one place. The model choices resolve in one order everywhere, dock, toolbox and ``qgis_process`` alike
(``qgis_process`` never builds the dock, so nothing may depend on the dock having run): the algorithm's
parameter, then the saved setting, then the environment variable (``GEOCLIP_CLIP_MODEL``, ``GEOCLIP_WEIGHTS``,
``GEOCLIP_CACHE_DIR``, read by ``model_utils``), then the default. Nothing here writes to ``os.environ``: the
QGIS interpreter is shared with every other plugin.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from qgis.core import QgsSettings

PREFIX = "geoclip/"
T = TypeVar("T", str, int, float, bool)


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One remembered value: ``read()`` gives it (or the default) with the default's type."""

    key: str  # below PREFIX
    default: T

    @property
    def path(self) -> str:
        """The full QgsSettings key."""
        return PREFIX + self.key

    def read(self) -> T:
        kind = type(self.default)
        value = QgsSettings().value(self.path, self.default, type=kind)
        return self.default if value is None else kind(value)

    def write(self, value: T) -> None:
        """Remember ``value`` (text is stripped: an empty text is remembered as empty, which reads as unset)."""
        QgsSettings().setValue(self.path, value.strip() if isinstance(value, str) else value)

    def forget(self) -> None:
        QgsSettings().remove(self.path)


# ---------------------------------------------------------------- the Setup tab: model choices
CLIP_MODEL = Setting("clip_model", "")  # else $GEOCLIP_CLIP_MODEL, else openai/clip-vit-large-patch14
WEIGHTS = Setting("weights", "")  # else $GEOCLIP_WEIGHTS, else the geoclip wheel's
CACHE_DIR = Setting("cache_dir", "")  # else $GEOCLIP_CACHE_DIR, else the user's cache folder
PRECISION = Setting("precision", "")  # empty: auto
MODEL_SETTINGS = (CLIP_MODEL, WEIGHTS, CACHE_DIR)  # each with an environment variable model_utils reads
SETUP_SETTINGS = (*MODEL_SETTINGS, PRECISION)  # everything the Setup tab remembers
DOCK_FITTED = Setting("dock_fitted", False)  # the dock was widened to its forms once in this profile
# the Setup tab's map choices: what goes under a new project's first results ("world": QGIS's bundled world map,
# "osm": OpenStreetMap's tiles, "none"), and the web map a browser row opens ({lat} and {lon} filled in)
BASEMAP = Setting("map/basemap", "world")
WEB_MAP_URL = Setting("map/web_map_url", "https://www.openstreetmap.org/?mlat={lat}&mlon={lon}#map=12/{lat}/{lon}")
MAP_SETTINGS = (BASEMAP, WEB_MAP_URL)


def resolve(setting: Setting[str], given: str | None = None) -> str | None:
    """The parameter if given, else the saved setting, else None (``model_utils`` then reads the
    environment variable, then its default)."""
    if setting not in SETUP_SETTINGS:
        raise KeyError(setting.key)
    return (given or "").strip() or setting.read().strip() or None


# ---------------------------------------------------------------- the dock's forms
GEOLOCATE_FOLDER = Setting("geolocate/folder", "")
GEOLOCATE_RECURSIVE = Setting("geolocate/recursive", False)
GEOLOCATE_SELECTED_ONLY = Setting("geolocate/selected_only", False)
GEOLOCATE_REFERENCE_MODE = Setting("geolocate/references/mode", 0)  # ui.reference_choice.ReferenceMode
GEOLOCATE_REFERENCE_FOLDER = Setting("geolocate/references/folder", "")  # a collection, or photos to build one from
GEOLOCATE_REFERENCE_FIELD = Setting("geolocate/references/path_field", "")  # the reference layer's photo path field
TEXT_QUERIES = Setting("text/queries", "")
EMBEDDINGS_SELECTED_ONLY = Setting("embeddings/selected_only", False)
EMBEDDINGS_NORMALIZE = Setting("embeddings/normalize", False)
EMBEDDINGS_PCA = Setting("embeddings/pca", 0)
EMBEDDINGS_FORMAT = Setting("embeddings/format", 0)  # index into the algorithm's FORMAT options
EMBEDDINGS_PACKED = Setting("embeddings/packed", False)
BROWSER_SORT_COLUMN = Setting("browser/sort_column", -1)  # the results browser's sort (-1: the run's order)
BROWSER_SORT_DESCENDING = Setting("browser/sort_descending", True)
EMBEDDINGS_OUTPUT = Setting("embeddings/output", str(Path.home() / "GeoCLIP" / "gps_embeddings.gpkg"))


@dataclass(frozen=True)
class ResultsSettings:
    """The "Results" box shared by the photo and text tabs, remembered per tab."""

    top_k: Setting[int]
    cell: Setting[float]
    bandwidth: Setting[float]  # 0: auto
    regional: Setting[bool]
    levels: Setting[str]
    output: Setting[str]
    on_land: Setting[bool]  # each gallery point's kernel on land cells (untick for photos taken at sea)


def results_settings(tab: str) -> ResultsSettings:
    """The Results box's settings of ``tab`` ("geolocate" or "text"), defaulting to the algorithms' defaults."""
    from .processing import definitions as d

    return ResultsSettings(
        top_k=Setting(f"{tab}/top_k", d.DEFAULT_TOP_K), cell=Setting(f"{tab}/cell", d.DEFAULT_CELL_DEG),
        bandwidth=Setting(f"{tab}/bandwidth", 0.0), regional=Setting(f"{tab}/regional", False),
        levels=Setting(f"{tab}/levels", d.DEFAULT_CREDIBLE_LEVELS),
        output=Setting(f"{tab}/output", str(Path.home() / "GeoCLIP")), on_land=Setting(f"{tab}/on_land", True))
