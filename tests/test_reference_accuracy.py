"""The synthetic collection end to end with the tiny test backbone (tools/samples/scenes.py): held-out variants
of known scenes are placed within 25 km by the fused answer where GeoCLIP alone is near chance; photos unlike
every reference keep GeoCLIP's answer; the fit's report says both; matches and the stored fit."""

from __future__ import annotations

import numpy as np
import pytest

from model_utils.geo import geodesic_km
from model_utils.reference import ReferenceGeolocator, build_collection, load_collection
from tools.samples.scenes import unlike_photos


@pytest.fixture(scope="module")
def geolocator(reference_model, scene_collection):
    return ReferenceGeolocator(reference_model, scene_collection.collection)


@pytest.fixture(scope="module")
def query_preds(geolocator, scene_photos):
    queries = [p for p in scene_photos if p.query]
    return queries, geolocator.predict([str(p.path) for p in queries], top_k=5)


def within(photos, lat, lon) -> np.ndarray:
    return np.array([geodesic_km(p.lat, p.lon, a, b) for p, a, b in zip(photos, lat, lon)]).ravel()


def test_fused_top1_is_within_25_km_for_90_percent_where_geoclip_alone_is_near_chance(query_preds):
    queries, preds = query_preds
    assert len(preds) == 24 and all(p.ok for p in preds)
    fused = within(queries, [p.lat[0] for p in preds], [p.lon[0] for p in preds])
    alone = within(queries, [p.geoclip.lat[0] for p in preds], [p.geoclip.lon[0] for p in preds])
    assert np.mean(fused <= 25) >= 0.9, np.round(fused)
    assert np.mean(alone <= 25) <= 0.1 and np.median(alone) > 2500
    for pred in preds:
        assert pred.gallery_probs.sum() == pytest.approx(1.0, abs=1e-5)


def test_matches_are_ranked_references_with_their_positions(query_preds, scene_collection):
    coll = scene_collection.collection
    _, preds = query_preds
    for pred in preds:
        sims = [m.similarity for m in pred.matches]
        assert [m.rank for m in pred.matches] == list(range(1, 11)) and sims == sorted(sims, reverse=True)
        for m in pred.matches:
            assert coll.paths[m.row] == m.path and (m.lat, m.lon) == tuple(coll.latlon[m.row])


def test_photos_unlike_every_reference_keep_geoclips_answer(geolocator, reference_model, tmp_path):
    photos = unlike_photos(tmp_path)
    fused = geolocator.predict(photos, top_k=5)
    alone = reference_model.predict(photos, top_k=5)
    threshold = geolocator.params.threshold
    for f, a in zip(fused, alone):
        assert f.matches[0].similarity < threshold  # no similar reference: the case in question
        assert f.weight < 1e-3
        np.testing.assert_array_equal(f.lat, a.lat)
        np.testing.assert_array_equal(f.lon, a.lon)
        moved = 0.5 * np.abs(f.gallery_probs[:len(a.gallery_probs)] - a.gallery_probs).sum()
        assert moved <= f.weight + 1e-5  # float32 rounding


def test_the_fit_reports_geoclip_alone_and_fused_on_the_collection(scene_collection):
    fit = scene_collection.fit
    assert fit.kind == "fitted" and fit.n_queries == 60
    assert fit.geoclip.share_within[1] <= 0.1  # 25 km
    assert fit.fused.share_within[1] >= 0.9
    assert fit.place_left_out.share_within[1] == 0.0  # its own place left out, nothing can be within 25 km
    assert fit.positives >= 54 and fit.negatives == 60
    print(fit.table())


def test_a_rebuild_keeps_the_fit_and_a_loaded_collection_is_not_fitted_again(reference_model, scene_collection,
                                                                             monkeypatch):
    from model_utils.reference import geolocator as module

    again = build_collection(reference_model, scene_collection.collection.paths[0].rsplit("/", 1)[0],
                             index=scene_collection.index)
    assert again.embedded == 0 and again.fit.params == scene_collection.fit.params
    def refit(*_args, **_kwargs):
        pytest.fail("fitted again")

    monkeypatch.setattr(module, "fit_collection", refit)
    loaded = ReferenceGeolocator(reference_model, load_collection(scene_collection.index))
    assert loaded.params == scene_collection.fit.params
