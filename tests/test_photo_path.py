"""One rule for a photo path read from a layer's field (photo geolocation and the downstream classifier)."""

from __future__ import annotations

from pathlib import Path

import pytest
from qgis.core import NULL
from qgis.PyQt.QtCore import QVariant

from geoclip_qgis.processing.io.geometry import photo_path


@pytest.mark.parametrize("value", [None, NULL, QVariant(), "", "   ", "\t\n"])
def test_null_and_blank_values_are_no_path(value):
    assert photo_path(value, Path("/layers")) is None


def test_relative_paths_join_the_layer_folder_and_others_stay(tmp_path):
    assert photo_path("  trip/a.jpg ", tmp_path) == str(tmp_path / "trip" / "a.jpg")
    assert photo_path("trip/a.jpg", None) == "trip/a.jpg"  # no layer folder (a memory layer): as written
    assert photo_path("/photos/b.jpg", tmp_path) == "/photos/b.jpg"
    assert photo_path("~/c.jpg", tmp_path) == str(Path.home() / "c.jpg")
    assert photo_path(Path("d.png"), tmp_path) == str(tmp_path / "d.png")
