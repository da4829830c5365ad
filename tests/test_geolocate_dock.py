"""The dock's "Geolocate photos" tab: Run adds a styled group per run; Cancel keeps nothing."""

from __future__ import annotations

import time

import pytest
from qgis.core import (
    QgsApplication,
    QgsLayerTreeGroup,
    QgsProject,
    QgsRasterLayer,
    QgsSingleBandPseudoColorRenderer,
    QgsVectorLayer,
)

from tools.samples.official import kauai_png
from tools.samples.photos import write_gps_photo, write_photos
from tools.samples.rendering import world_basemap


@pytest.fixture()
def plugin(loaded_plugin, tiny_clip, monkeypatch):
    monkeypatch.setenv("GEOCLIP_CLIP_MODEL", str(tiny_clip))
    return loaded_plugin


def wait_until_idle(controls, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while controls.running and time.monotonic() < deadline:
        QgsApplication.processEvents()
        time.sleep(0.02)
    assert not controls.running, "task did not finish in time"


def run_groups():
    root = QgsProject.instance().layerTreeRoot()
    return [c for c in root.children() if isinstance(c, QgsLayerTreeGroup) and c.name().startswith("GeoCLIP ")]


def test_dock_run_adds_one_styled_group(plugin, tmp_path, artifacts_dir, render_canvas):
    tab = plugin.dock.geolocate_tab
    photos = tmp_path / "photos"
    write_photos(photos, n=1)
    write_gps_photo(photos / "paris.jpg", 48.8584, 2.2945)
    (photos / "clip.mp4").write_bytes(b"\x00")  # said in the log, by reason
    tab.folder.setFilePath(str(photos))
    tab.files.setFilePath(f'"{kauai_png()}"')
    tab.top_k.setValue(3)
    tab.cell.setValue(0.5)
    tab.bandwidth.setValue(150)
    tab.output.setFilePath(str(tmp_path / "out"))
    tab.run()
    assert tab.controls.running
    wait_until_idle(tab.controls)
    assert tab.controls.results["N_PHOTOS"] == 3, tab.controls.log.toPlainText()
    assert "1 .mp4 file skipped: videos are not photos (clip.mp4)" in tab.controls.log.toPlainText()
    assert tab.results.on_land.isChecked() and tab.results.parameters()["ON_LAND"] is True  # on land by default
    groups = run_groups()
    assert len(groups) == 1
    layers = [node.layer() for node in groups[0].findLayers()]
    rasters = [lyr for lyr in layers if isinstance(lyr, QgsRasterLayer)]
    points = [lyr for lyr in layers if isinstance(lyr, QgsVectorLayer) and lyr.name() == "Top-k predictions"]
    # one raster layer per run (the first photo's; the results browser shows the others in it), all three on disk
    assert [r.name() for r in rasters] == ["Kauai"]
    assert len(tab.controls.results["RASTERS"]) == 3
    assert len(points) == 1 and points[0].featureCount() == 9
    # one colour per photo, named in the legend; the map tip shows the photo; an action opens it
    from qgis.core import QgsCategorizedSymbolRenderer

    renderer = points[0].renderer()
    assert isinstance(renderer, QgsCategorizedSymbolRenderer) and renderer.classAttribute() == "photo_name"
    assert sorted(c.label() for c in renderer.categories()) == ["Kauai.png", "paris.jpg", "photo_00.jpg"]
    assert len({c.symbol().color().name() for c in renderer.categories()}) == 3
    assert "<img" in points[0].mapTipTemplate() and '"photo"' in points[0].mapTipTemplate()
    assert [a.name() for a in points[0].actions().actions()] == ["Open photo"]
    viewer = points[0].editorWidgetSetup(points[0].fields().indexOf("photo"))
    assert viewer.type() == "ExternalResource" and viewer.config()["DocumentViewer"] == 1  # identify shows the image
    # the photo with EXIF GPS gets a line from its top-1 guess to its true position, labelled in km
    truth = [lyr for lyr in layers if isinstance(lyr, QgsVectorLayer) and lyr.name() == "Error to EXIF position"]
    assert len(truth) == 1 and truth[0].featureCount() == 1 and truth[0].labelsEnabled()
    line = next(truth[0].getFeatures())
    end = line.geometry().asPolyline()[-1]
    assert (end.y(), end.x()) == pytest.approx((48.8584, 2.2945), abs=1e-3)  # the EXIF position
    assert line["photo_name"] == "paris.jpg"
    # each photo's 50% and 90% credible regions, outlines between the lines and the rasters
    regions = [lyr for lyr in layers if isinstance(lyr, QgsVectorLayer) and lyr.name() == "Credible regions"]
    assert len(regions) == 1 and regions[0].featureCount() == 3 * 2
    assert layers.index(regions[0]) > layers.index(truth[0]) and layers.index(regions[0]) < layers.index(rasters[0])
    for raster in rasters:
        renderer = raster.renderer()
        assert isinstance(renderer, QgsSingleBandPseudoColorRenderer)
        items = renderer.shader().rasterShaderFunction().colorRampItemList()
        assert items[0].color.alpha() == 0  # low values transparent
        top = raster.dataProvider().bandStatistics(1).maximumValue
        assert renderer.classificationMax() == pytest.approx(top)
    assert points[0].labelsEnabled() and points[0].labeling() is not None
    assert tab.controls.results["REPORT_HTML"].endswith(".html")
    # a picture a person can look at: photo heatmap and points over the world basemap
    basemap = world_basemap()
    png = render_canvas([points[0], regions[0], rasters[0], basemap], "geolocate_dock_run")
    assert png.stat().st_size > 10_000
    assert plugin.dock.grab().save(str(artifacts_dir / "dock_geolocate.png"))
    # the project saves and reloads with the results
    project_file = tmp_path / "results.qgz"
    assert QgsProject.instance().write(str(project_file))
    QgsProject.instance().clear()
    assert QgsProject.instance().read(str(project_file))
    reloaded = [lyr for lyr in QgsProject.instance().mapLayers().values()]
    assert len(reloaded) == 5 and all(lyr.isValid() for lyr in reloaded)  # the run's four and the world map


def test_dock_cancel_keeps_no_files_and_no_layers(plugin, tmp_path):
    tab = plugin.dock.geolocate_tab
    write_photos(tmp_path / "photos", n=12)
    tab.folder.setFilePath(str(tmp_path / "photos"))
    tab.output.setFilePath(str(tmp_path / "out"))
    tab.run()
    tab.cancel_running()
    wait_until_idle(tab.controls)
    assert "Canceled" in tab.controls.log.toPlainText()
    assert run_groups() == []
    assert QgsProject.instance().mapLayers() == {}
    out = tmp_path / "out"
    assert not out.exists() or list(out.iterdir()) == []  # no run folder, no .part leftovers


def test_dock_reports_bad_input_clearly(plugin, tmp_path):
    tab = plugin.dock.geolocate_tab
    tab.folder.setFilePath("")  # the folder of an earlier test is remembered; clear it
    tab.files.setFilePath("")
    tab.output.setFilePath(str(tmp_path / "out"))
    tab.run()  # no photos at all
    wait_until_idle(tab.controls)
    assert "No photos given" in tab.controls.log.toPlainText()
    assert run_groups() == []
