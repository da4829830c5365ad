"""The dock's "GPS embeddings" tab: runs ``geoclip:gpsembeddings`` as a task, adds the layer, cancels cleanly.

Split from test_gps_embeddings (the algorithm itself).
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from qgis.core import QgsApplication, QgsProject

from tests.embedding_helpers import E_NAMES, FMT, expected_values, folder_files, point_layer, random_latlon, values_of
from tests.qgis_events import wait_for


@pytest.fixture(scope="module")
def model():
    from model_utils.model.geoclip import shared_model

    return shared_model()  # the same instance the algorithm uses


# ---------------------------------------------------------------------------- dock tab
@pytest.fixture()
def plugin(loaded_plugin):
    return loaded_plugin


def embeddings_tab(plugin):
    index = plugin.dock.index_of(plugin.dock.embeddings_tab)
    assert plugin.dock.tabs.tabText(index) == "GPS embeddings"
    return plugin.dock.embeddings_tab, index


def test_dock_tab_exports_through_a_task_and_adds_the_layer(plugin, model, tmp_path, artifacts_dir):
    tab, index = embeddings_tab(plugin)
    latlon = random_latlon(60, seed=12)
    layer = point_layer(latlon)
    layer.setName("sample points")
    QgsProject.instance().addMapLayer(layer)
    chosen = [f.id() for f in layer.getFeatures()][:25]
    layer.selectByIds(chosen)
    tab.layer.setLayer(layer)
    tab.selected_only.setChecked(True)
    tab.normalize.setChecked(True)
    tab.pca.setValue(0)
    tab.format.setCurrentIndex(FMT["gpkg"])
    tab.output.setFilePath(str(tmp_path / "dock_export.csv"))
    tab.format.setCurrentIndex(FMT["shp"])
    assert tab.output.filePath() == str(tmp_path / "dock_export.shp")  # the extension follows the format
    tab.format.setCurrentIndex(FMT["gpkg"])
    assert tab.output.filePath() == str(tmp_path / "dock_export.gpkg")
    for widget in (tab.layer, tab.selected_only, tab.normalize, tab.pca, tab.format, tab.packed, tab.output,
                   tab.controls.run_button, tab.controls.cancel_button, tab.controls.progress, tab.controls.log):
        assert widget.toolTip()
    tab.run()
    assert tab.controls.running and tab.controls.task is not None
    wait_for(lambda: not tab.controls.running)
    log = tab.controls.log.toPlainText()
    assert tab.controls.results.get("FEATURE_COUNT") == 25, log
    assert tab.controls.progress.value() == 100
    added = QgsProject.instance().mapLayersByName("dock_export")
    assert len(added) == 1 and added[0].featureCount() == 25
    feats = list(added[0].getFeatures())
    assert sorted(int(f["src_fid"]) for f in feats) == sorted(chosen)
    got = values_of(feats, E_NAMES)
    assert np.abs(got - expected_values(model, feats, normalize=True)).max() <= 1e-6
    assert "Exported 25 feature(s)" in log

    from qgis.core import QgsSettings

    assert QgsSettings().value("geoclip/embeddings/output") == str(tmp_path / "dock_export.gpkg")
    assert QgsSettings().value("geoclip/embeddings/normalize", type=bool) is True

    plugin.dock.tabs.setCurrentIndex(index)
    plugin.dock.resize(460, 720)
    plugin.dock.show()
    QgsApplication.processEvents()
    png = artifacts_dir / "dock_gps_embeddings.png"
    assert plugin.dock.grab().save(str(png))
    assert png.stat().st_size > 5000

    tab.run()  # same file again: refused, and the log says why
    wait_for(lambda: not tab.controls.running)
    assert "already exists" in tab.controls.log.toPlainText()


class HoldAfterFirstBatch:
    """Wraps the export's batch stream: hands over the first batch, then holds the worker until ``release``.

    The cancel is then issued at a known point (batch 1 written, batch 2 not yet), instead of racing the
    progress bar against the export's end on a fast or a loaded machine.
    """

    def __init__(self, real) -> None:
        self.real = real
        self.first_written = threading.Event()
        self.released = threading.Event()

    def __call__(self, batches, encode):
        stream = self.real(batches, encode)
        yield next(stream)
        self.first_written.set()  # the caller asked for batch 2: batch 1 is in the writer
        assert self.released.wait(120), "the test never released the export"
        yield from stream

    def release(self) -> None:
        self.released.set()


def test_dock_cancel_keeps_nothing(plugin, tmp_path, monkeypatch):
    from geoclip_qgis.processing.io import embedding_export

    hold = HoldAfterFirstBatch(embedding_export.encode_ahead)
    monkeypatch.setattr(embedding_export, "encode_ahead", hold)
    tab, _ = embeddings_tab(plugin)
    layer = point_layer(random_latlon(embedding_export.BATCH_SIZE * 3, seed=13))
    QgsProject.instance().addMapLayer(layer)
    tab.layer.setLayer(layer)
    tab.selected_only.setChecked(False)
    tab.pca.setValue(0)
    tab.format.setCurrentIndex(FMT["shp"])
    tab.output.setFilePath(str(tmp_path / "canceled.shp"))
    tab.run()
    assert tab.controls.running
    try:
        wait_for(hold.first_written.is_set)
        assert tab.controls.running
        tab.cancel_running()  # what the dock calls when the plugin unloads
    finally:
        hold.release()
    wait_for(lambda: not tab.controls.running)
    assert "Canceled" in tab.controls.log.toPlainText()
    assert folder_files(tmp_path) == []
    assert not QgsProject.instance().mapLayersByName("canceled")
