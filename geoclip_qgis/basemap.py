"""A world under the results: the first run in a project that holds nothing else gets a light basemap.

Without one, a new project shows the run's points, regions and rasters on a white canvas with nothing to say
where they are. The default is the world map QGIS ships (Natural Earth countries in ``world_map.gpkg``): offline,
light, drawn under everything. The Setup tab turns it off or picks OpenStreetMap's tiles (QGIS's XYZ provider,
for those online). It is added once per project, at the bottom of the layer tree; a project that has layers
of its own gets nothing, and a basemap the analyst removed does not come back.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from qgis.core import (
    QgsApplication,
    QgsFillSymbol,
    QgsMapLayer,
    QgsProject,
    QgsRasterLayer,
    QgsSingleSymbolRenderer,
    QgsVectorLayer,
)

from . import settings
from .i18n import tr

WORLD, OSM, NONE = "world", "osm", "none"  # the BASEMAP setting's values
CHOICES = (WORLD, OSM, NONE)
BASEMAP_PROPERTY = "geoclip/basemap"  # on the basemap layer: never taken for the analyst's own layer
PROJECT_SCOPE, ADDED_KEY = "geoclip", "basemap_added"  # in the project: added once, never again
OSM_SOURCE = "type=xyz&url=https://tile.openstreetmap.org/{z}/{x}/{y}.png&zmax=19&zmin=0"  # as QGIS's own
LAND, BORDER = "#e7e5df", "#ffffff"  # light enough for any probability ramp on top


def world_map_path() -> Path:
    """QGIS's bundled world map (``resources/data/world_map.gpkg`` under its data folder)."""
    return Path(QgsApplication.pkgDataPath()) / "resources" / "data" / "world_map.gpkg"


def basemap_layer(choice: str) -> QgsMapLayer | None:
    """A new basemap layer for ``choice`` (not added to any project; nothing is fetched), or None for none."""
    if choice == WORLD:
        from osgeo import gdal

        gdal.PushErrorHandler("CPLQuietErrorHandler")  # the bundled file's dates trip a harmless GDAL warning
        try:
            layer = QgsVectorLayer(f"{world_map_path()}|layername=countries", tr("World (QGIS's world map)"), "ogr")
        finally:
            gdal.PopErrorHandler()
        if layer.isValid():
            layer.setRenderer(QgsSingleSymbolRenderer(QgsFillSymbol.createSimple(
                {"color": LAND, "outline_color": BORDER, "outline_width": "0.2"})))
    elif choice == OSM:
        layer = QgsRasterLayer(OSM_SOURCE, tr("OpenStreetMap"), "wms")
    else:
        return None
    layer.setCustomProperty(BASEMAP_PROPERTY, choice)
    return layer


def is_basemap(layer: QgsMapLayer) -> bool:
    return bool(layer.customProperty(BASEMAP_PROPERTY))


def ensure_basemap(project: QgsProject, ours: Callable[[QgsMapLayer], bool]) -> QgsMapLayer | None:
    """Add the chosen basemap at the bottom of ``project``'s tree if every layer there is GeoCLIP's (``ours``) and
    no basemap was added to it before; the layer added, or None."""
    choice = settings.BASEMAP.read()
    if choice not in (WORLD, OSM) or project.readBoolEntry(PROJECT_SCOPE, ADDED_KEY, False)[0]:
        return None
    if not all(is_basemap(layer) or ours(layer) for layer in project.mapLayers().values()):
        return None
    layer = basemap_layer(choice)
    project.writeEntryBool(PROJECT_SCOPE, ADDED_KEY, True)  # decided for this project, whatever happens next
    if layer is None or not layer.isValid():
        from qgis.core import Qgis, QgsMessageLog

        QgsMessageLog.logMessage(tr("The basemap ({choice}) could not be opened; the results are shown without "
                                    "one. The Setup tab picks another.").format(choice=choice), "GeoCLIP",
                                 Qgis.MessageLevel.Warning)
        return None
    project.addMapLayer(layer, False)
    root = project.layerTreeRoot()
    root.insertLayer(len(root.children()), layer)
    return layer
