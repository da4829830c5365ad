"""Photos and text queries share one geolocation run; each reports its own count under its own name."""

from __future__ import annotations

from geoclip_qgis.processing.algorithms.geolocate_photos import GeolocatePhotos
from geoclip_qgis.processing.algorithms.geolocate_text import GeolocateText


def _texts(alg) -> tuple[dict[str, str], dict[str, str]]:
    alg.initAlgorithm()
    return ({o.name(): o.description() for o in alg.outputDefinitions()},
            {p.name(): p.description() for p in alg.parameterDefinitions()})


def test_text_queries_are_counted_as_queries_with_english_plurals(qgis_app):  # noqa: ARG001 - needs QGIS
    outputs, params = _texts(GeolocateText())
    assert outputs["N_QUERIES"] == "Queries geolocated" and "N_PHOTOS" not in outputs
    assert outputs["N_FAILED"] == "Queries that failed" and outputs["ERRORS"] == "Per-query errors"
    assert params["BATCH_SIZE"] == "Queries per batch"
    assert not [t for t in (*outputs.values(), *params.values()) if "querys" in t.lower()]
    assert (GeolocateText.KIND.count(1), GeolocateText.KIND.count(3)) == ("1 query", "3 queries")


def test_photos_keep_their_count_output(qgis_app):  # noqa: ARG001 - needs QGIS
    outputs, params = _texts(GeolocatePhotos())
    assert outputs["N_PHOTOS"] == "Photos geolocated" and "N_QUERIES" not in outputs
    assert outputs["N_FAILED"] == "Photos that failed" and params["BATCH_SIZE"] == "Photos per batch"
    assert (GeolocatePhotos.KIND.count(1), GeolocatePhotos.KIND.count(2)) == ("1 photo", "2 photos")
