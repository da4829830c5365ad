"""One progress bar per run, in stages (QgsProcessingMultiStepFeedback): it only moves forward and ends at 100.

Before, photo geolocation ran the CLIP tower's download over 0..100 % and then started the gallery at 0 %:
a user saw the bar fill and drop back. Progress is read from ``progressChanged`` (a multi-step feedback calls
``setProgress`` from C++, past any Python override), in the thread that reports it."""

from __future__ import annotations

import pytest
from qgis.core import QgsProcessingFeedback
from qgis.PyQt.QtCore import Qt

from model_utils.model.geoclip import GeoCLIP
from tests.downstream_helpers import GPS, LATLON, city_layer
from tools.samples.official import kauai_png
from tools.samples.photos import write_photos


class ProgressLog(QgsProcessingFeedback):
    """Every progress value the run reported, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.values: list[float] = []
        self.progressChanged.connect(self.values.append, Qt.ConnectionType.DirectConnection)


def assert_forward_to_100(values: list[float], stages: int) -> None:
    assert len(values) >= stages, values  # at least one value per stage
    backwards = [(a, b) for a, b in zip(values, values[1:]) if b < a]
    assert not backwards, f"the bar went back: {backwards} in {values}"
    assert values[-1] == pytest.approx(100.0), values


@pytest.fixture()
def downloading_towers(monkeypatch):
    """Each CLIP tower reports a download (30 %, 100 %) before it loads, as a first run does."""
    for name in ("load_backbone", "load_text_tower"):
        original = getattr(GeoCLIP, name)

        def load(self, progress=None, is_canceled=None, _original=original):
            if progress is not None:
                progress(0.3, "Downloading the CLIP backbone: 30 %")
                progress(1.0, "Downloading the CLIP backbone: 100 %")
            return _original(self, progress, is_canceled)

        monkeypatch.setattr(GeoCLIP, name, load)


def test_photo_geolocation_progress_only_moves_forward(geoclip_provider, clip_env, downloading_towers, tmp_path):
    import processing

    photos = write_photos(tmp_path / "in", n=5)
    feedback = ProgressLog()
    out = processing.run("geoclip:geolocatephotos", {
        "PHOTOS": [str(p) for p in photos] + [str(kauai_png())], "BATCH_SIZE": 2, "CELL_SIZE": 5.0,
        "OUTPUT_FOLDER": str(tmp_path / "out")}, feedback=feedback)
    assert out["N_PHOTOS"] == 6
    assert_forward_to_100(feedback.values, 4)
    assert 7.5 in feedback.values  # the download's 30 % is 30 % of its own stage (1 of 4) of the bar
    assert sum(50 < v <= 75 for v in feedback.values) == 3  # the third stage: one step per batch of 2 photos


def test_text_geolocation_progress_only_moves_forward(geoclip_provider, clip_env, downloading_towers, tmp_path):
    import processing

    feedback = ProgressLog()
    out = processing.run("geoclip:geolocatetext", {
        "QUERIES": "Pyramids of Giza\nEiffel Tower\nSydney Opera House", "BATCH_SIZE": 1, "CELL_SIZE": 5.0,
        "OUTPUT_FOLDER": str(tmp_path / "out")}, feedback=feedback)
    assert out["N_QUERIES"] == 3
    assert_forward_to_100(feedback.values, 4)


@pytest.mark.parametrize("features", [LATLON, GPS])
def test_classifier_progress_only_moves_forward(geoclip_provider, cities, tmp_path, features):
    import processing

    feedback = ProgressLog()
    out = processing.run("geoclip:downstreamclassifier", {
        "INPUT": city_layer(cities[:1500]), "LABEL_FIELD": "continent", "FEATURES": features, "DEVICE": 1,
        "OUTPUT_FOLDER": str(tmp_path / "r")}, feedback=feedback)
    assert out["N_TEST"] > 0
    assert_forward_to_100(feedback.values, 3)


def test_places_like_here_progress_only_moves_forward(geoclip_provider, tmp_path):
    import processing

    feedback = ProgressLog()
    processing.run("geoclip:placeslikehere", {
        "POINT": "2.3522,48.8566 [EPSG:4326]", "CELL_SIZE": 1.0, "EXTENT": "-10,30,35,60 [EPSG:4326]", "SAMPLES": 1,
        "MODE": 1, "OUTPUT": str(tmp_path / "like.tif")}, feedback=feedback)
    assert_forward_to_100(feedback.values, 2)
    assert 50.0 in feedback.values  # the grid filled the first half; writing the GeoTIFF is the second
