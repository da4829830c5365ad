"""The 'Geolocate a photo archive on a Ray cluster' algorithm without a cluster: what it does when Ray is missing,
and the arguments it hands the batch job."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest


def test_without_ray_the_plugin_loads_and_the_other_algorithms_work(geoclip_provider, monkeypatch, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    monkeypatch.setitem(sys.modules, "ray", None)  # what an install without ray looks like to importlib
    ids = {alg.id() for alg in geoclip_provider.algorithms()}
    assert {"geoclip:geolocateraycluster", "geoclip:placeslikehere", "geoclip:geolocatephotos"} <= ids
    with pytest.raises(QgsProcessingException, match=r"Ray is not installed.*pip install 'ray\[data,default\]'"):
        processing.run("geoclip:geolocateraycluster", {"PHOTOS": str(tmp_path), "OUTPUT": str(tmp_path / "o")})
    result = processing.run("geoclip:placeslikehere", {"POINT": "2.35,48.85 [EPSG:4326]", "CELL_SIZE": 5.0,
                                                      "OUTPUT": str(tmp_path / "like.tif")})
    assert Path(result["OUTPUT"]).is_file()


def test_the_land_switch_reaches_the_batch_job(geoclip_provider, tmp_path):
    """Unticking 'Density on land only' runs the job with --over-sea; the CLI reads it as on_land=False."""
    from qgis.core import QgsApplication, QgsProcessingContext, QgsProcessingFeedback

    from model_utils.batch.__main__ import parser

    alg = QgsApplication.processingRegistry().createAlgorithmById("geoclip:geolocateraycluster")
    for on_land in (True, False):
        job = alg.prepare({"PHOTOS": str(tmp_path), "OUTPUT": str(tmp_path / f"out_{on_land}"), "ON_LAND": on_land,
                           "ADDRESS": "http://127.0.0.1:8265"}, QgsProcessingContext(), QgsProcessingFeedback())
        assert ("--over-sea" in job.args) is not on_land
        args = parser().parse_args(list(job.args))
        assert args.over_sea is not on_land
