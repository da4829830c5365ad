"""The dock's results browser: a run loads as a handful of layers whatever its size, its photos are listed from
its GeoPackage (also after the project is saved and reopened, and for a run folder from qgis_process), and
selecting a photo shows its raster in the run's one raster layer, its regions only, its points selected, and
the map on its 90% region."""

from __future__ import annotations

import pytest
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsLayerTreeGroup,
    QgsPalLayerSettings,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QGuiApplication
from qgis.PyQt.QtTest import QTest

from geoclip_qgis.basemap import is_basemap
from geoclip_qgis.photo_view import photo_filter
from geoclip_qgis.processing import definitions as d
from geoclip_qgis.run_index import read_run
from geoclip_qgis.ui import photo_table, results_browser
from tests.qgis_events import use_folder, wait_for
from tools.samples.photos import write_gps_photo, write_photos

N_PHOTOS = 5  # three without EXIF, two with
TOP_K = 3


@pytest.fixture()
def plugin(loaded_plugin, tiny_clip, monkeypatch):
    monkeypatch.setenv("GEOCLIP_CLIP_MODEL", str(tiny_clip))
    return loaded_plugin


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("browser-photos")
    write_photos(folder, n=3)
    write_gps_photo(folder / "paris.jpg", 48.8584, 2.2945)
    write_gps_photo(folder / "sydney.jpg", -33.8568, 151.2153, seed=5)
    return folder


def run_from_dock(plugin, photos, out):
    tab = plugin.dock.geolocate_tab
    use_folder(tab, photos, out)
    tab.top_k.setValue(TOP_K)
    tab.cell.setValue(2.0)
    tab.run()
    wait_for(lambda: not tab.controls.running)
    assert tab.controls.results["N_PHOTOS"] == N_PHOTOS, tab.controls.log.toPlainText()
    browser = plugin.dock.results_tab
    wait_for(lambda: browser.index is not None)
    return tab.controls.results, browser


def tree_layers(group: QgsLayerTreeGroup) -> list:
    return [node.layer() for node in group.findLayers()]


def visible_rasters() -> list[QgsRasterLayer]:
    root = QgsProject.instance().layerTreeRoot()
    return [node.layer() for node in root.findLayers()
            if isinstance(node.layer(), QgsRasterLayer) and node.isVisible()]


def assert_shows(browser, row, canvas) -> None:
    """The map shows ``row``: its raster the only visible one, its regions only, its points selected, its
    region inside the map's extent."""
    rasters = visible_rasters()
    assert [r.source() for r in rasters] == [row.raster]
    assert rasters[0].name() == browser.index.layer_name(row)
    group = next(g for g in QgsProject.instance().layerTreeRoot().children() if isinstance(g, QgsLayerTreeGroup))
    layers = {lyr.name(): lyr for lyr in tree_layers(group)}
    regions, points = layers["Credible regions"], layers["Top-k predictions"]
    assert {f["photo"] for f in regions.getFeatures()} == {row.source}
    assert {f["photo"] for f in points.selectedFeatures()} == {row.source} and points.selectedFeatureCount() == TOP_K
    labels = points.labeling().settings()  # a copy, kept while a reference into it is read
    assert labels.dataDefinedProperties().property(QgsPalLayerSettings.Property.Show).expressionString() == (
        photo_filter(browser.index, row))  # its ranks labelled, no other photo's
    transform = QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:4326"),
                                       canvas.mapSettings().destinationCrs(), QgsProject.instance())
    region = transform.transformBoundingBox(QgsRectangle(*row.bbox))
    assert canvas.extent().contains(region), (canvas.extent().toString(), region.toString())


def assert_index_matches_the_layers(folder: str, tmp_path) -> None:
    """The browser's index (read with SQLite) says what the run's layers hold; a run folder without the rasters
    table (written before it) or without a spatial index reads the same."""
    import shutil
    import sqlite3
    from contextlib import closing

    from osgeo import gdal

    index = read_run(folder)
    points = QgsVectorLayer(f"{folder}/predictions.gpkg|layername=predictions", "p", "ogr")
    tops = {f["photo"]: f for f in points.getFeatures() if f["rank"] == 1}
    assert [row.source for row in index.rows] == sorted(tops) and index.level == pytest.approx(0.9)
    for row in index.rows:
        assert (row.lat, row.lon, row.prob) == pytest.approx((tops[row.source]["lat"], tops[row.source]["lon"],
                                                              tops[row.source]["prob"]))
        assert gdal.Open(row.raster).GetMetadataItem("photo") == row.source
    regions = QgsVectorLayer(f"{folder}/predictions.gpkg|layername=credible_regions", "r", "ogr")
    for feature in regions.getFeatures():
        if abs(feature["level"] - 0.9) < 1e-9:
            row = next(r for r in index.rows if r.source == feature["photo"])
            box = feature.geometry().boundingBox()
            assert row.bbox == pytest.approx((box.xMinimum(), box.yMinimum(), box.xMaximum(), box.yMaximum()), abs=1e-3)
            assert row.area_km2 == pytest.approx(feature["area_km2"])
    del points, regions
    older = tmp_path / "older_run"
    shutil.copytree(folder, older)
    gpkg = gdal.OpenEx(str(older / "predictions.gpkg"), gdal.OF_VECTOR | gdal.OF_UPDATE)
    gpkg.ExecuteSQL("DROP TABLE rasters")
    gpkg.ExecuteSQL("SELECT DisableSpatialIndex('credible_regions', 'geom')")
    gpkg = None
    again = read_run(older)
    with closing(sqlite3.connect(older / "predictions.gpkg")) as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
    assert "rasters" not in tables and "rtree_credible_regions_geom" not in tables
    assert [(r.source, r.bbox is not None, r.raster.replace(str(older), folder)) for r in again.rows] == [
        (r.source, True, r.raster) for r in index.rows]
    for before, after in zip(index.rows, again.rows):  # the header's envelope, where the index had the R-tree's
        assert after.bbox == pytest.approx(before.bbox, abs=1e-3)


def test_a_run_is_a_handful_of_layers_browsed_photo_by_photo(plugin, photos, tmp_path, monkeypatch):
    results, browser = run_from_dock(plugin, photos, tmp_path / "out")
    root = QgsProject.instance().layerTreeRoot()
    group = root.children()[0]
    layers = tree_layers(group)
    # one raster for five photos (the first), the regions, the truth lines, the points; the world at the bottom
    assert sorted(lyr.name() for lyr in layers[:3]) == ["Credible regions", "Error to EXIF position",
                                                        "Top-k predictions"]
    assert [lyr.name() for lyr in layers[3:]] == ["paris"]  # under the vectors
    assert len(results[d.RASTERS]) == N_PHOTOS  # all written, one loaded
    bottom = root.children()[-1].layer()
    assert is_basemap(bottom) and bottom.isValid() and len(QgsProject.instance().mapLayers()) == 5
    # the list: every photo, read from the run's GeoPackage
    assert browser.index.folder == read_run(results[d.RUN_FOLDER]).folder
    assert browser.proxy.rowCount() == N_PHOTOS and browser.runs.count() == 1
    names = [browser.proxy.index(i, photo_table.NAME).data() for i in range(N_PHOTOS)]
    assert names == ["paris.jpg", "photo_00.jpg", "photo_01.jpg", "photo_02.jpg", "sydney.jpg"]  # the run's order
    assert browser.model.headerData(photo_table.AREA, Qt.Orientation.Horizontal) == "90% km²"
    # worst error first, photos without EXIF last
    browser.table.sortByColumn(photo_table.ERROR, Qt.SortOrder.DescendingOrder)
    errors = [browser.proxy.index(i, photo_table.ERROR).data(photo_table.SORT_ROLE) for i in range(N_PHOTOS)]
    assert errors[0] >= errors[1] > 0 and errors[2:] == [None, None, None]
    # three photos stepped through with the keyboard
    canvas = plugin.iface.mapCanvas()
    browser.table.setFocus()
    browser.table.setCurrentIndex(browser.proxy.index(0, 0))
    shown = []
    for step in range(3):
        if step:
            QTest.keyClick(browser.table, Qt.Key.Key_Down)
        row = browser.current_row()
        assert_shows(browser, row, canvas)
        shown.append(row.source)
    assert len(set(shown)) == 3
    assert len(QgsProject.instance().mapLayers()) == 5  # the one raster layer showed three photos
    # a row's menu: coordinates to the clipboard, the location in the web map, the photo
    opened = []
    monkeypatch.setattr(results_browser.QDesktopServices, "openUrl", lambda url: opened.append(url.toString()))
    copy, web, photo = browser.row_actions(row)
    copy.trigger()
    assert QGuiApplication.clipboard().text() == f"{row.lat:.6f}, {row.lon:.6f}"
    web.trigger()
    assert opened[-1].startswith("https://www.openstreetmap.org/?mlat=") and f"{row.lon:.6f}" in opened[-1]
    photo.trigger()
    assert opened[-1].startswith("file://") and opened[-1].endswith(row.name)
    browser.show_everything()
    assert len(list(next(lyr for lyr in layers if lyr.name() == "Credible regions").getFeatures())) == 2 * N_PHOTOS


def test_a_saved_project_lists_its_run_again(plugin, photos, tmp_path):
    results, browser = run_from_dock(plugin, photos, tmp_path / "out")
    project_file = tmp_path / "review.qgz"
    assert QgsProject.instance().write(str(project_file))
    QgsProject.instance().clear()
    wait_for(lambda: browser.index is None)
    assert QgsProject.instance().read(str(project_file))
    wait_for(lambda: browser.index is not None)  # rebuilt from the GeoPackage, not from memory
    assert str(browser.index.folder) == results[d.RUN_FOLDER] and browser.proxy.rowCount() == N_PHOTOS
    browser.table.setCurrentIndex(browser.proxy.index(3, 0))
    assert_shows(browser, browser.current_row(), plugin.iface.mapCanvas())
    assert len(QgsProject.instance().mapLayers()) == 5


def test_a_run_folder_from_qgis_process_opens_as_a_handful_of_layers(plugin, photos, tmp_path):
    import processing
    from qgis.core import QgsProcessingContext

    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    out = processing.run("geoclip:geolocatephotos", {d.FOLDER: str(photos), d.TOP_K: TOP_K, d.CELL_SIZE: 2.0,
                                                     d.OUTPUT_FOLDER: str(tmp_path / "out")}, context=context)
    # what any loader (toolbox, batch, model) would add: a handful, whatever the number of photos
    assert len(context.layersToLoadOnCompletion()) == 4
    assert QgsProject.instance().mapLayers() == {}  # nothing loaded: as qgis_process leaves it
    assert_index_matches_the_layers(out[d.RUN_FOLDER], tmp_path)
    browser = plugin.dock.results_tab
    assert browser.open_folder(out[d.RUN_FOLDER])
    assert browser.proxy.rowCount() == N_PHOTOS
    assert len(QgsProject.instance().mapLayers()) == 5  # four and the basemap
    assert browser.open_folder(out[d.RUN_FOLDER])  # a second time: the same group, nothing added
    assert len(QgsProject.instance().mapLayers()) == 5
    browser.table.setCurrentIndex(browser.proxy.index(4, 0))
    assert_shows(browser, browser.current_row(), plugin.iface.mapCanvas())
    # the analyst removed the raster layer: selecting a photo brings one back, in the run's group
    raster = visible_rasters()[0]
    QgsProject.instance().removeMapLayer(raster.id())
    browser.table.setCurrentIndex(browser.proxy.index(1, 0))
    assert_shows(browser, browser.current_row(), plugin.iface.mapCanvas())
    assert not browser.open_folder(str(tmp_path))  # not a run: said why, nothing added
    assert "not a GeoCLIP run folder" in browser.status.text()
    assert len([lyr for lyr in QgsProject.instance().mapLayers().values() if isinstance(lyr, QgsVectorLayer)]) == 4
