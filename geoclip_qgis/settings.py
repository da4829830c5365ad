"""User choices remembered between QGIS sessions (QgsSettings) and how a model choice is resolved.

One order everywhere, dock, toolbox and ``qgis_process`` alike (``qgis_process`` never builds the
dock, so nothing may depend on the dock having run): the algorithm's parameter, then the saved
setting, then the environment variable (``GEOCLIP_CLIP_MODEL``, ``GEOCLIP_WEIGHTS``,
``GEOCLIP_CACHE_DIR``, read by ``model_utils``), then the default. Nothing here writes to
``os.environ``: the QGIS interpreter is shared with every other plugin.
"""

from __future__ import annotations

from qgis.core import QgsSettings

PREFIX = "geoclip/"

MODEL_KEYS = ("clip_model", "weights", "cache_dir")  # each with an environment variable model_utils reads
SETUP_KEYS = (*MODEL_KEYS, "precision")  # everything the Setup tab remembers


def get(key: str, default: str = "") -> str:
    """A remembered value, or ``default``."""
    value = QgsSettings().value(PREFIX + key, default)
    return "" if value is None else str(value)


def put(key: str, value: str) -> None:
    """Remember ``value`` (an empty string forgets it)."""
    QgsSettings().setValue(PREFIX + key, value.strip())


def resolve(key: str, given: str | None = None) -> str | None:
    """The parameter if given, else the saved setting, else None (``model_utils`` then reads the
    environment variable, then its default)."""
    if key not in SETUP_KEYS:
        raise KeyError(key)
    return (given or "").strip() or get(key).strip() or None
