"""Matching and fusion on made-up numbers: exact top-m, a distribution that sums to 1 over the gallery and the
matches' positions, read by the raster and credible-region code unchanged, GeoCLIP's answer untouched when
the best match is weak; the fit's logistic weight and its degenerate cases; the fit stored in the index."""

from __future__ import annotations

import numpy as np
import pytest

from model_utils.model.predictor import Prediction
from model_utils.reference import fit as fitting
from model_utils.reference import match
from model_utils.reference.fusion import MAX_WEIGHT, FusionParams, fuse
from model_utils.reference.match import top_matches

RNG = np.random.default_rng(0)
GALLERY = np.column_stack([RNG.uniform(-60, 70, 500), RNG.uniform(-180, 180, 500)]).astype(np.float32)


def unit(rows: int, dim: int = 512, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def geoclip_pred(seed: int = 0) -> Prediction:
    logits = np.random.default_rng(seed).standard_normal(len(GALLERY)) * 3
    probs = np.exp(logits - logits.max())
    probs = (probs / probs.sum()).astype(np.float32)
    top = np.argsort(-probs)[:5]
    return Prediction(source="q.jpg", lat=GALLERY[top, 0].astype(float), lon=GALLERY[top, 1].astype(float),
                      prob=probs[top], indices=top, gallery_probs=probs, gps=(1.0, 2.0))


def test_top_matches_are_the_exact_nearest_in_chunks_with_exclusions(monkeypatch):
    monkeypatch.setattr(match, "CHUNK_VALUES", 7 * 37)  # 37 references a block: several, and a ragged last one
    refs, queries = unit(300), unit(7, seed=1)
    idx, sims = top_matches(queries, refs, 10)
    full = queries @ refs.T
    np.testing.assert_array_equal(idx, np.argsort(-full, axis=1)[:, :10])
    np.testing.assert_allclose(sims, np.sort(full, axis=1)[:, ::-1][:, :10], rtol=1e-6)
    exclude = np.zeros((7, 300), bool)
    exclude[:, idx[:, 0]] = True
    idx2, _ = top_matches(queries, refs, 3, exclude=exclude)
    assert not np.isin(idx2, idx[:, 0]).any()
    idx3, sims3 = top_matches(queries[:1], refs[:2], 5, exclude=np.array([[True, False]]))
    assert idx3.tolist() == [[1, -1]] and sims3[0, 1] == -np.inf  # fewer references than m: -1 pads


def test_fusion_sums_to_one_over_gallery_and_match_positions_and_feeds_the_raster_code():
    from model_utils.analysis import prediction_regions
    from model_utils.maps.grid import GridSpec
    from model_utils.maps.heatmap import probability_grid

    pred = geoclip_pred()
    ref_latlon = np.array([[10.0, 20.0], [10.0, 20.0], [-30.0, 150.0], [5.0, 5.0]])
    params = FusionParams(temperature=0.05, slope=40.0, threshold=0.8, m=4)
    idx, sims = np.array([1, 0, 2, 3]), np.array([0.95, 0.93, 0.9, 0.5])
    fused = fuse(pred, GALLERY, ["a", "b", "c", "d"], ref_latlon, idx, sims, params, top_k=5)
    assert fused.gallery_probs.sum() == pytest.approx(1.0, abs=1e-6) and (fused.gallery_probs >= 0).all()
    assert fused.support_latlon.shape == (len(GALLERY) + 3, 2)  # two matches at one position pool their mass
    assert fused.weight == pytest.approx(float(params.weight(0.95)))
    assert sum(m.share for m in fused.matches) == pytest.approx(fused.weight)
    assert [(m.rank, m.row, m.path) for m in fused.matches] == [(1, 1, "b"), (2, 0, "a"), (3, 2, "c"), (4, 3, "d")]
    # the top-k are the distribution's own top-k, located on its support
    order = np.argsort(-fused.gallery_probs, kind="stable")[:5]
    np.testing.assert_array_equal(fused.indices, order)
    np.testing.assert_allclose(np.column_stack([fused.lat, fused.lon]), fused.support_latlon[order])
    assert (fused.lat[0], fused.lon[0]) == (10.0, 20.0)  # the pooled position of the two best matches
    np.testing.assert_allclose(fused.geoclip_probs(), pred.gallery_probs, rtol=1e-5)
    assert fused.geoclip.lat.tolist() == pred.lat.tolist() and fused.gps == pred.gps
    # consumed unchanged: the kernel raster and the credible regions take the support as the gallery
    support = fused.support_latlon
    grid = probability_grid(support[:, 0], support[:, 1], fused.gallery_probs, GridSpec.world(2.0), 100.0)
    assert grid.values.sum() == pytest.approx(1.0, abs=1e-5)
    regions = prediction_regions(fused, support, GridSpec.world(2.0), levels=(0.5,), bandwidth_km=100.0)
    assert regions[0].geometry.intersects(__import__("shapely").Point(20.0, 10.0))


def test_a_weak_best_match_leaves_geoclip_alone():
    pred = geoclip_pred(seed=3)
    params = FusionParams(temperature=0.01, slope=200.0, threshold=0.9)
    fused = fuse(pred, GALLERY, ["x"], np.array([[0.0, 0.0]]), np.array([0]), np.array([0.7]), params, top_k=5)
    assert fused.weight < 1e-15
    np.testing.assert_array_equal(fused.lat, pred.lat)
    np.testing.assert_array_equal(fused.lon, pred.lon)
    assert 0.5 * np.abs(fused.gallery_probs[:len(GALLERY)] - pred.gallery_probs).sum() < 1e-6
    none = fuse(pred, GALLERY, [], np.zeros((0, 2)), np.array([-1]), np.array([-np.inf]), params, top_k=5)
    assert none.weight == 0.0 and none.matches == [] and len(none.support_latlon) == len(GALLERY)


def test_weight_and_match_weights():
    params = FusionParams(temperature=0.1, slope=50.0, threshold=0.8)
    w = params.weight(np.array([-np.inf, 0.6, 0.8, 1.0, 10.0]))
    assert w[0] == 0.0 and w[2] == pytest.approx(0.5, abs=1e-3) and np.all(np.diff(w[:4]) > 0)
    assert w[4] == MAX_WEIGHT  # GeoCLIP always keeps a little
    q = params.match_weights(np.array([[0.9, 0.8, -np.inf]]))
    assert q.sum() == pytest.approx(1.0) and q[0, 2] == 0.0
    np.testing.assert_allclose(q[0, 0] / q[0, 1], np.exp(1.0))


def test_the_logistic_weight_learns_where_similarity_stops_meaning_same_place():
    rng = np.random.default_rng(1)
    right = np.r_[rng.normal(0.9, 0.02, 200), rng.normal(0.7, 0.02, 10)]  # leave-one-out: 10 best matches wrong
    labels = np.r_[np.ones(200, bool), np.zeros(10, bool)]
    other = rng.normal(0.7, 0.02, 210)  # own place left out: never right
    params, kind = fitting._fit_weight(right, labels, other, m=10)
    assert kind == "fitted" and 0.75 < params.threshold < 0.85
    assert params.weight(0.9) > 0.98 and params.weight(0.7) < 0.01
    never, kind = fitting._fit_weight(other, np.zeros(210, bool), other, m=10)
    assert kind == "never" and never.weight(1.0) < 1e-100
    only, kind = fitting._fit_weight(right[:200], labels[:200], np.zeros(0), m=10)
    assert kind == "positives only" and only.weight(np.median(right[:200])) == pytest.approx(0.9 * MAX_WEIGHT)


def test_the_fits_top1_is_the_fused_distributions_top1():
    rng = np.random.default_rng(2)
    refs = np.column_stack([rng.uniform(-50, 50, 40), rng.uniform(-100, 100, 40)])
    params = FusionParams(temperature=0.02, slope=30.0, threshold=0.85, m=6)
    for seed in range(20):
        pred = geoclip_pred(seed)
        idx = rng.choice(40, 6, replace=False)
        sims = np.sort(rng.uniform(0.6, 1.0, 6))[::-1]
        fused = fuse(pred, GALLERY, [str(i) for i in range(40)], refs, idx, sims, params, top_k=1)
        top1 = fitting.fused_top1(np.array([[pred.lat[0], pred.lon[0]]]), np.array([pred.prob[0]]), sims[None],
                                  refs, idx[None], params)
        np.testing.assert_allclose(top1[0], [fused.lat[0], fused.lon[0]], atol=1e-5)


def test_a_fit_is_kept_in_the_index_and_read_back(scene_collection, tmp_path):
    from model_utils.reference.fit import FitResult
    from model_utils.reference.index import read_index, write_index

    coll = scene_collection.collection
    path = write_index(coll, tmp_path / "copy.safetensors")
    again, why = read_index(path, coll.model)
    assert why == "" and again.fit == coll.fit
    result = FitResult.from_dict(again.fit)
    assert result.params == scene_collection.fit.params and result.fused == scene_collection.fit.fused
    assert result.content == coll.content_digest()
    assert "GeoCLIP alone" in result.table() and "fused, own 25 km left out" in result.table()
