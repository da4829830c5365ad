"""GeoCLIP for QGIS: the QGIS shell. Imports only Qt and qgis at load; the model side is lazy."""

from __future__ import annotations

import sys


def _drop_stale_modules() -> None:
    """A plugin upgraded or reloaded in a running QGIS must run its new code. QGIS re-imports this package but
    drops only the modules it saw the plugin import by name: packages on the way (``geoclip_qgis.processing``)
    and ``model_utils`` stay, and the new version would run the old ones. This package is executing now and has
    imported nothing yet, so every ``geoclip_qgis.*`` module is from an earlier load; ``model_utils`` is when
    that load's ``unload()`` marked it (never another package of that name: the mark is set only on ours)."""
    stale = [name for name in sys.modules if name.startswith(__name__ + ".")]
    model_utils = sys.modules.get("model_utils")
    if model_utils is not None and getattr(model_utils, "_geoclip_unloaded", False):
        stale += [name for name in sys.modules if name == "model_utils" or name.startswith("model_utils.")]
    for name in stale:
        del sys.modules[name]


_drop_stale_modules()


def classFactory(iface):  # noqa: N802 - QGIS's required name
    """Entry point QGIS calls when the plugin is enabled."""
    from .plugin import GeoClipPlugin

    return GeoClipPlugin(iface)
