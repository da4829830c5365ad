"""GeoCLIP for QGIS: the QGIS shell. Imports only Qt and qgis at load; the model side is lazy."""

from __future__ import annotations


def classFactory(iface):  # noqa: N802 - QGIS's required name
    """Entry point QGIS calls when the plugin is enabled."""
    from .plugin import GeoClipPlugin

    return GeoClipPlugin(iface)
