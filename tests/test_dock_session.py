"""The dock in a long QGIS session: threads, screen size, Setup choices, unloading mid-run.

Each test here failed on the dock as it was before these fixes (see the desktop-session issue).
"""

from __future__ import annotations

import gc
import os
import re
import threading
import weakref

import pytest
from qgis.core import QgsApplication, QgsProject, QgsSettings
from qgis.PyQt.QtCore import QThread

from geoclip_qgis.guard import LOG_TAG
from tests.qgis_events import settle_canvas, use_folder, wait_for
from tools.samples.photos import write_photos


# ------------------------------------------------------------------ 1. widgets only on the main thread
def test_feedback_from_a_worker_thread_reaches_the_log_on_the_main_thread(loaded_plugin):
    controls = loaded_plugin.dock.geolocate_tab.controls
    from geoclip_qgis.ui.task_runner import PanelFeedback

    feedback = PanelFeedback()
    seen_on: list[bool] = []
    feedback.line.connect(lambda _text: seen_on.append(QThread.currentThread() is QgsApplication.instance().thread()))
    feedback.line.connect(controls.append)
    controls.log.clear()
    worker = threading.Thread(target=lambda: [feedback.pushInfo(f"line {i}") for i in range(50)])
    worker.start()
    worker.join()
    assert controls.log.toPlainText() == ""  # nothing touched the widget from the worker
    wait_for(lambda: controls.log.blockCount() >= 50)
    assert controls.log.toPlainText().splitlines() == [f"line {i}" for i in range(50)]
    assert seen_on == [True] * 50


def test_the_log_follows_its_last_line(loaded_plugin):
    controls = loaded_plugin.dock.geolocate_tab.controls
    loaded_plugin.dock.show()
    controls.log.setFixedHeight(80)
    for i in range(300):
        controls.append(f"line {i}")
    bar = controls.log.verticalScrollBar()
    assert bar.maximum() > 0 and bar.value() == bar.maximum()
    loaded_plugin.dock.hide()


# ------------------------------------------------------------------ 2. fits a laptop screen
def test_every_tab_fits_a_1366x768_laptop(loaded_plugin, artifacts_dir):
    dock = loaded_plugin.dock
    dock.show()
    for index in range(dock.tabs.count()):
        dock.tabs.setCurrentIndex(index)
        QgsApplication.processEvents()
        hint = dock.minimumSizeHint()
        assert hint.width() < 1366 and hint.height() < 600, (dock.tabs.tabText(index), hint)
    dock.resize(420, 600)
    dock.tabs.setCurrentIndex(dock.index_of(dock.setup_tab))
    QgsApplication.processEvents()
    assert dock.grab().save(str(artifacts_dir / "dock_setup_420x600.png"))
    dock.hide()


# ------------------------------------------------------------------ 4. Setup choices without a button
def test_a_clip_folder_shown_in_setup_is_used_by_the_next_run(loaded_plugin, tiny_clip, tmp_path, monkeypatch):
    monkeypatch.delenv("GEOCLIP_CLIP_MODEL", raising=False)
    QgsSettings().remove("geoclip/clip_model")
    dock = loaded_plugin.dock
    dock.setup_tab.clip_model.setText(str(tiny_clip))  # typed, never saved, no button pressed
    tab = dock.geolocate_tab
    write_photos(tmp_path / "photos", n=2)
    use_folder(tab, str(tmp_path / "photos"), str(tmp_path / "out"))
    tab.results.regional.setChecked(False)
    tab.run()
    wait_for(lambda: not tab.controls.running)
    assert tab.controls.results.get("N_PHOTOS") == 2, tab.controls.log.toPlainText()
    assert "HF_HUB_OFFLINE" not in tab.controls.log.toPlainText()
    dock.setup_tab.clip_model.setText("")  # leaving the field saves it: leave nothing behind


def test_the_saved_setting_reaches_algorithms_run_without_the_dock(geoclip_provider, tiny_clip, tmp_path,
                                                                   monkeypatch):
    import processing

    from geoclip_qgis import settings

    monkeypatch.delenv("GEOCLIP_CLIP_MODEL", raising=False)
    settings.CLIP_MODEL.write(str(tiny_clip))
    try:
        write_photos(tmp_path / "photos", n=1)
        result = processing.run("geoclip:geolocatephotos", {
            "FOLDER": str(tmp_path / "photos"), "TOP_K": 1, "RASTERS": False, "OUTPUT_FOLDER": str(tmp_path / "o")})
        assert result["N_PHOTOS"] == 1
    finally:
        settings.CLIP_MODEL.write("")


def test_the_parameter_beats_the_setting_which_beats_the_environment(qgis_app, monkeypatch):  # noqa: ARG001
    from geoclip_qgis import settings

    monkeypatch.setenv("GEOCLIP_WEIGHTS", "/from/env")
    settings.WEIGHTS.write("/from/setting")
    try:
        assert settings.resolve(settings.WEIGHTS, "/from/parameter") == "/from/parameter"
        assert settings.resolve(settings.WEIGHTS, "") == "/from/setting"
        settings.WEIGHTS.write("")
        assert settings.resolve(settings.WEIGHTS, None) is None  # model_utils then reads $GEOCLIP_WEIGHTS
        from model_utils.errors import WeightsError
        from model_utils.model.weights import find_weights

        with pytest.raises(WeightsError, match="/from/env"):
            find_weights(settings.resolve(settings.WEIGHTS))
    finally:
        settings.WEIGHTS.write("")


def test_one_loaded_model_per_process(tiny_clip, tmp_path):
    from model_utils.model.geoclip import shared_model

    first = shared_model(clip_model=str(tiny_clip), device="cpu")
    assert shared_model(clip_model=str(tiny_clip), device="cpu") is first
    gone = weakref.ref(first)
    del first
    second = shared_model(clip_model=str(tiny_clip), device="cpu", cache_dir=str(tmp_path / "other-cache"))
    gc.collect()
    assert gone() is None, "the previous model is still held"
    assert second.cache_dir == tmp_path / "other-cache"


# ------------------------------------------------------------------ 5. unload during a run
def test_unloading_the_plugin_mid_run_stops_the_task_cleanly(qgis_iface, qgis_processing, qgis_new_project,  # noqa: ARG001
                                                             clip_env, tmp_path, message_log):
    import geoclip_qgis

    registry = QgsApplication.processingRegistry()
    if registry.providerById("geoclip") is not None:
        registry.removeProvider(registry.providerById("geoclip"))
    plugin = geoclip_qgis.classFactory(qgis_iface)
    plugin.initGui()
    tab = plugin.dock.geolocate_tab
    write_photos(tmp_path / "photos", n=16)
    use_folder(tab, str(tmp_path / "photos"), str(tmp_path / "out"))
    tab.run()
    assert tab.controls.running
    plugin.unload()  # while the task runs
    wait_for(lambda: QgsApplication.taskManager().countActiveTasks() == 0)
    for _ in range(20):
        QgsApplication.processEvents()
    problems = [m for m in message_log if m[1] in (LOG_TAG, "Python error", "Python warning")]
    assert problems == []
    assert QgsProject.instance().mapLayers() == {}  # nothing loaded into a project the plugin has left


def test_nothing_writes_the_shared_environment(loaded_plugin):
    before = dict(os.environ)
    loaded_plugin.dock.setup_tab.save()
    assert dict(os.environ) == before


# ------------------------------------------------------------------ 3. results styled right on every run
def _legend_range(model, layer) -> tuple[str, str]:
    """(minimum, maximum) label of the raster's colour-ramp legend as the layer panel holds it."""
    from qgis.core import QgsColorRampLegendNode

    node = QgsProject.instance().layerTreeRoot().findLayer(layer.id())
    ramps = [n for n in model.layerLegendNodes(node) if isinstance(n, QgsColorRampLegendNode)]
    assert len(ramps) == 1
    return ramps[0].settings().minimumLabel(), ramps[0].settings().maximumLabel()


def _run_groups():
    from qgis.core import QgsLayerTreeGroup

    root = QgsProject.instance().layerTreeRoot()
    return [c for c in root.children() if isinstance(c, QgsLayerTreeGroup) and c.name().startswith("GeoCLIP ")]


def test_every_run_has_points_on_top_and_legends_equal_to_the_data(loaded_plugin, clip_env, tmp_path):  # noqa: ARG001
    from qgis.core import QgsLayerTreeModel, QgsRasterLayer, QgsVectorLayer

    model = QgsLayerTreeModel(QgsProject.instance().layerTreeRoot())  # the desktop's layer panel, before any run
    tab = loaded_plugin.dock.geolocate_tab
    write_photos(tmp_path / "photos", n=3)
    use_folder(tab, str(tmp_path / "photos"), str(tmp_path / "out"))
    tab.cell.setValue(2.0)
    for run in range(2):
        tab.run()
        wait_for(lambda: not tab.controls.running)
        groups = _run_groups()
        assert len(groups) == run + 1, tab.controls.log.toPlainText()
        newest, older = groups[0], groups[1:]
        assert re.fullmatch(r"GeoCLIP Photos \d{4}-\d\d-\d\d \d\d:\d\d \(3\)", newest.name()), newest.name()
        assert not tab.controls.report_link.isVisible()  # no photo has GPS: no report, no link
        children = newest.findLayers()
        assert isinstance(children[0].layer(), QgsVectorLayer)  # points above every raster
        rasters = [n for n in children if isinstance(n.layer(), QgsRasterLayer)]
        assert [n.isVisible() for n in rasters] == [True]  # one raster layer per run: the browser swaps its file
        for node in rasters:
            top = node.layer().dataProvider().bandStatistics(1).maximumValue
            assert _legend_range(model, node.layer()) == ("0", f"{top:.3g}")
        assert newest.isExpanded() and newest.itemVisibilityChecked()
        assert all(not g.isExpanded() and not g.itemVisibilityChecked() for g in older)
    settle_canvas(loaded_plugin.iface)
    model.deleteLater()  # gone before the layers it shows are removed
    QgsApplication.processEvents()
    QgsProject.instance().removeAllMapLayers()
    QgsProject.instance().layerTreeRoot().removeAllChildren()


# ------------------------------------------------------------------ 6. counts; 7. cancel, errors, empty input
def _run_folder(tab, folder, out) -> str:
    use_folder(tab, str(folder), str(out))
    tab.controls.log.clear()
    tab.run()
    wait_for(lambda: not tab.controls.running)
    return tab.controls.log.toPlainText()


def test_counts_never_call_a_failure_a_success(loaded_plugin, clip_env, tmp_path):  # noqa: ARG001
    from tools.samples.photos import write_gps_photo

    tab = loaded_plugin.dock.geolocate_tab
    tab.cell.setValue(2.0)
    folder = tmp_path / "mixed"
    write_photos(folder, n=1)
    for name in ("broken_a.jpg", "broken_b.jpg", "broken_c.jpg"):
        (folder / name).write_bytes(b"not a photo at all")
    log = _run_folder(tab, folder, tmp_path / "out")
    assert "4/4 photos done: 1 geolocated, 3 skipped" in log
    assert "1 geolocated, 3 skipped (see above)" in log
    assert tab.controls.results["N_PHOTOS"] == 1 and tab.controls.results["N_FAILED"] == 3
    for name in ("broken_a.jpg", "broken_b.jpg", "broken_c.jpg"):
        assert log.count(name) == 1, log  # each error once

    all_bad = tmp_path / "all_bad"
    all_bad.mkdir()
    for name in ("x.jpg", "y.jpg", "z.jpg"):
        (all_bad / name).write_bytes(b"junk")
    log = _run_folder(tab, all_bad, tmp_path / "out2")
    assert "3/3 photos done: 0 geolocated, 3 skipped" in log
    assert "None of the 3 photos could be geolocated (the reasons are listed above)" in log
    assert all(log.count(name) == 1 for name in ("x.jpg", "y.jpg", "z.jpg")), log

    gps = tmp_path / "gps"
    write_photos(gps, n=2)
    for i, (lat, lon) in enumerate([(48.85, 2.29), (40.71, -74.0), (-33.86, 151.2)]):
        write_gps_photo(gps / f"gps_{i}.jpg", lat, lon)
    _run_folder(tab, gps, tmp_path / "out3")
    report = tab.controls.results["REPORT_HTML"]
    html = open(report, encoding="utf-8").read()
    assert "Photos without ground truth (left out)</th><td>2<" in html
    # the report is one click away in the dock and listed in Processing's Results Viewer
    from processing.core.ProcessingResults import resultsList
    from qgis.PyQt.QtCore import QUrl

    assert not tab.controls.report_link.isHidden()
    assert QUrl.fromLocalFile(report).toString() in tab.controls.report_link.text()
    assert any(result.filename == report for result in resultsList.getResults())


def test_a_canceled_run_is_reported_once_as_canceled(loaded_plugin, clip_env, tmp_path):  # noqa: ARG001
    tab = loaded_plugin.dock.geolocate_tab
    write_photos(tmp_path / "photos", n=12)
    use_folder(tab, str(tmp_path / "photos"), str(tmp_path / "out"))
    tab.controls.log.clear()
    finished: list[bool] = []
    tab.controls.finished.connect(lambda ok, _r: finished.append(ok))
    tab.run()
    tab.cancel_running()  # before the task can finish: the cancel is seen at the first batch boundary
    wait_for(lambda: not tab.controls.running)
    log = tab.controls.log.toPlainText()
    assert log.count("Canceled") == 1 and "■ Canceled: nothing was kept." in log, log
    assert "ERROR" not in log and "Failed" not in log, log
    assert finished == [False]


def test_empty_input_is_refused_before_a_task_starts(loaded_plugin, tmp_path):
    tasks_before = QgsApplication.taskManager().count()
    for tab, message in ((loaded_plugin.dock.geolocate_tab, "No photos given"),
                         (loaded_plugin.dock.text_tab, "No text queries given")):
        if tab is loaded_plugin.dock.geolocate_tab:
            tab.files.setFilePath("")
            tab.folder.setFilePath("")
            tab.layer.setLayer(None)
        else:
            tab.queries.setPlainText("   \n")
            tab.query_file.setFilePath("")
        tab.results.output.setFilePath(str(tmp_path / "out"))
        tab.controls.log.clear()
        tab.run()
        assert not tab.controls.running and tab.controls.task is None
        assert f"ERROR: {message}" in tab.controls.log.toPlainText()
    assert QgsApplication.taskManager().count() == tasks_before


def test_the_missing_backbone_message_names_hf_hub_offline_only_when_set(monkeypatch):
    from model_utils.model.backbone import missing_message

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert "HF_HUB_OFFLINE" not in missing_message("openai/clip-vit-large-patch14", "not cached")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert "unset HF_HUB_OFFLINE" in missing_message("openai/clip-vit-large-patch14", "not cached")
