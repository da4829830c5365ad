"""The Geolocate tab's "Reference photos" choice: remembered, turned into the algorithms' parameters (a collection
used as it is, a photo folder or layer built first), refused with a reason, and a run that builds then geolocates."""

from __future__ import annotations

import shutil

import pytest
from qgis.core import QgsApplication, QgsProcessingContext, QgsProject, QgsVectorLayer

from geoclip_qgis import settings
from geoclip_qgis.processing import definitions as d
from geoclip_qgis.ui.geolocate_tab import GeolocateTab
from geoclip_qgis.ui.reference_choice import COLLECTIONS, INDEX_FILE, ReferenceMode
from tests.test_geolocate_dock import run_groups, wait_until_idle

REMEMBERED = (settings.GEOLOCATE_REFERENCE_MODE, settings.GEOLOCATE_REFERENCE_FOLDER,
              settings.GEOLOCATE_REFERENCE_FIELD)


@pytest.fixture()
def forgetting(qgis_app):  # noqa: ARG001 - QgsSettings needs the application
    for setting in REMEMBERED:
        setting.forget()
    yield
    for setting in REMEMBERED:
        setting.forget()


def test_the_choice_is_remembered_and_becomes_the_parameters(forgetting, geoclip_provider, tmp_path):
    from model_utils.reference.index import INDEX_FILE as MODEL_INDEX_FILE

    assert INDEX_FILE == MODEL_INDEX_FILE  # the dock's copy of the name (no model_utils at plugin load)
    tab = GeolocateTab(None)
    assert tab.references.current == ReferenceMode.NONE and d.REFERENCES not in tab.parameters()
    assert tab.references.build_parameters(str(tmp_path)) is None
    collection = tmp_path / "collection"
    collection.mkdir()
    (collection / INDEX_FILE).write_bytes(b"")
    tab.references.mode.setCurrentIndex(ReferenceMode.FOLDER)
    assert "choose a folder" in tab.refusal()
    tab.references.folder.setFilePath(str(collection))
    assert tab.refusal() is None and tab.references.build_parameters(str(tmp_path)) is None
    sent = tab.parameters()[d.REFERENCES]  # an existing collection: geolocation uses it as it is
    assert sent == str(collection)
    algorithm = QgsApplication.processingRegistry().algorithmById(tab.ALGORITHM)
    context = QgsProcessingContext()
    assert algorithm.parameterDefinition(d.REFERENCES).checkValueIsAcceptable(sent, context)
    photos = tmp_path / "photos"
    photos.mkdir()
    tab.references.folder.setFilePath(str(photos))  # photos: the collection is built first, under the output
    assert d.REFERENCES not in tab.parameters()
    build = tab.references.build_parameters(str(tmp_path / "out"))
    assert build[d.FOLDER] == str(photos) and build[d.COLLECTION].startswith(str(tmp_path / "out" / COLLECTIONS))
    assert build == tab.references.build_parameters(str(tmp_path / "out"))  # the same photos, the same collection
    builder = QgsApplication.processingRegistry().algorithmById("geoclip:buildreferences")
    for key, value in build.items():
        assert builder.parameterDefinition(key).checkValueIsAcceptable(value, context), key
    tab.remember()
    again = GeolocateTab(None)
    assert again.references.current == ReferenceMode.FOLDER and again.references.folder.filePath() == str(photos)
    assert again.references.stack.currentIndex() == ReferenceMode.FOLDER  # the folder picker shows


def test_a_layer_choice_builds_from_the_layer_and_an_empty_one_is_refused(forgetting, geoclip_provider, tmp_path):
    tab = GeolocateTab(None)
    tab.references.mode.setCurrentIndex(ReferenceMode.LAYER)
    assert "choose a point layer" in tab.refusal()
    layer = QgsVectorLayer("Point?crs=EPSG:4326&field=photo:string", "field photos", "memory")
    QgsProject.instance().addMapLayer(layer)
    try:
        tab.references.layer.setLayer(layer)
        assert tab.refusal() is None
        build = tab.references.build_parameters(str(tmp_path))
        assert build[d.PHOTO_LAYER] == layer.id() and "field_photos-" in build[d.COLLECTION]
    finally:
        QgsProject.instance().removeMapLayer(layer.id())


def test_a_photo_folder_is_built_then_used_and_the_matches_appear(forgetting, loaded_plugin, clip_env, scene_photos,
                                                                   tmp_path):
    refs = tmp_path / "refs"
    refs.mkdir()
    for photo in scene_photos:
        if not photo.query and photo.scene < 3:
            shutil.copy(photo.path, refs / photo.path.name)
    query = next(p for p in scene_photos if p.query and p.scene == 0)
    tab = loaded_plugin.dock.geolocate_tab
    tab.folder.setFilePath("")
    tab.files.setFilePath(f'"{query.path}"')
    tab.cell.setValue(2.0)
    tab.output.setFilePath(str(tmp_path / "out"))
    tab.references.mode.setCurrentIndex(ReferenceMode.FOLDER)
    tab.references.folder.setFilePath(str(refs))
    tab.run()
    assert tab.controls.running
    wait_until_idle(tab.controls, timeout=300)
    log = tab.controls.log.toPlainText()
    assert "Build reference collection done" in log and "15 photos with a position" in log, log
    assert tab.controls.results.get("N_PHOTOS") == 1, log
    layers = {node.layer().name() for node in run_groups()[0].findLayers()}
    assert {"Matched reference photos", "Best guess to matched references", "Top-k predictions"} <= layers
    assert settings.GEOLOCATE_REFERENCE_MODE.read() == ReferenceMode.FOLDER
    collections = list((tmp_path / "out" / COLLECTIONS).iterdir())
    assert len(collections) == 1 and (collections[0] / INDEX_FILE).is_file()
