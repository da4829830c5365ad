"""A world under the results: added once, at the bottom, to a project holding only GeoCLIP's layers; never to a
project with layers of its own; off or OpenStreetMap by the Setup tab's choice (never fetched here)."""

from __future__ import annotations

from qgis.core import QgsProject, QgsSingleSymbolRenderer, QgsVectorLayer

from geoclip_qgis import basemap, settings
from geoclip_qgis.layers import in_run_group, run_group


def geoclip_layer(project: QgsProject, run: str = "run-a") -> QgsVectorLayer:
    """A layer in a GeoCLIP run group, as a run leaves it."""
    layer = QgsVectorLayer("Point?crs=EPSG:4326", "Top-k predictions", "memory")
    project.addMapLayer(layer, False)
    run_group(project, f"GeoCLIP {run}", run).insertLayer(0, layer)
    return layer


def ours(project: QgsProject):
    return lambda layer: in_run_group(project, layer)


def test_the_world_map_goes_under_the_first_results_once(qgis_new_project):
    project = qgis_new_project
    geoclip_layer(project)
    added = basemap.ensure_basemap(project, ours(project))
    assert added is not None and added.isValid() and basemap.is_basemap(added)
    assert added.source().startswith(str(basemap.world_map_path()))  # QGIS's own file: offline
    assert isinstance(added.renderer(), QgsSingleSymbolRenderer)
    assert added.renderer().symbol().color().name() == basemap.LAND  # light: any ramp reads on top of it
    root = project.layerTreeRoot()
    assert root.children()[-1].layer() is added  # at the bottom of the tree
    geoclip_layer(project, "run-b")  # a second run: nothing more
    assert basemap.ensure_basemap(project, ours(project)) is None
    project.removeMapLayer(added.id())  # removed by the analyst: it does not come back
    assert basemap.ensure_basemap(project, ours(project)) is None
    assert [lyr.name() for lyr in project.mapLayers().values()] == ["Top-k predictions"] * 2


def test_a_project_with_layers_of_its_own_gets_nothing(qgis_new_project):
    project = qgis_new_project
    project.addMapLayer(QgsVectorLayer("Polygon?crs=EPSG:3857", "parcels", "memory"))
    geoclip_layer(project)
    assert basemap.ensure_basemap(project, ours(project)) is None
    assert len(project.mapLayers()) == 2


def test_the_setup_choice_turns_it_off_or_picks_openstreetmap(qgis_new_project):
    project = qgis_new_project
    geoclip_layer(project)
    settings.BASEMAP.write(basemap.NONE)
    assert basemap.ensure_basemap(project, ours(project)) is None and len(project.mapLayers()) == 1
    # OpenStreetMap's tiles through QGIS's XYZ provider: only the layer is made (a test never draws it)
    osm = basemap.basemap_layer(basemap.OSM)
    assert osm.providerType() == "wms" and "type=xyz" in osm.source()
    assert "tile.openstreetmap.org" in osm.source() and basemap.is_basemap(osm)
    assert basemap.basemap_layer(basemap.NONE) is None


def test_the_setup_tab_saves_the_map_choices(loaded_plugin):
    box = loaded_plugin.dock.setup_tab.map_options
    assert box.basemap.currentData() == basemap.WORLD and box.web_map.text() == settings.WEB_MAP_URL.default
    box.basemap.setCurrentIndex(box.basemap.findData(basemap.OSM))
    assert settings.BASEMAP.read() == basemap.OSM
    box.web_map.setText("https://maps.example.org/@{lat},{lon},12z")
    box.web_map.editingFinished.emit()
    assert settings.WEB_MAP_URL.read() == "https://maps.example.org/@{lat},{lon},12z"
    box.web_map.setText("https://maps.example.org/")  # no position in it: refused, said so, the last one kept
    box.web_map.editingFinished.emit()
    assert settings.WEB_MAP_URL.read() == "https://maps.example.org/@{lat},{lon},12z"
    assert "{lat}" in box.web_map.toolTip()
