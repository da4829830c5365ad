"""``model_utils.downstream.pca``: the streaming fit equals a one-shot fit, and a saved PCA projects like sklearn."""

from __future__ import annotations

import numpy as np


def test_streaming_fit_with_a_short_last_batch_matches_sklearn(tmp_path):
    from sklearn.decomposition import IncrementalPCA

    from model_utils.downstream.pca import PCA_USAGE, StreamingPCA, load_pca, project, save_pca

    rng = np.random.default_rng(0)
    values = rng.normal(size=(1003, 16)) @ rng.normal(size=(16, 16))
    stream = StreamingPCA(6)
    for start in range(0, 1003, 250):  # batches of 250 and a last one of 3 (< 6 components)
        stream.add(values[start:start + 250])
    fitted = stream.finish()
    reference = IncrementalPCA(n_components=6)
    for start, stop in ((0, 250), (250, 500), (500, 750), (750, 1003)):  # the short batch joined the one before
        reference.partial_fit(values[start:stop])
    np.testing.assert_allclose(fitted.components_, reference.components_, atol=1e-10)
    assert fitted.n_samples_seen_ == 1003

    save_pca(fitted, tmp_path / "fit.npz", normalize=True, columns=[f"pc{i}" for i in range(6)])
    saved = load_pca(tmp_path / "fit.npz")
    assert bool(saved["normalize"]) and list(saved["columns"]) == [f"pc{i}" for i in range(6)]
    assert str(saved["usage"]) == PCA_USAGE
    np.testing.assert_allclose(project(values[:10], saved), fitted.transform(values[:10]), atol=1e-9)
