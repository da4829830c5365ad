"""PCA of GeoCLIP embeddings, fitted in one streaming pass and saved so anyone can project new points.

Fitted batch by batch (scikit-learn's IncrementalPCA), so an export of millions of points never holds
them all; saved as a plain ``.npz`` that says in its ``usage`` entry how to apply it.
"""

from __future__ import annotations

import os
from typing import Any, BinaryIO

import numpy as np

PCA_USAGE = ("pcs = (GeoCLIP.encode_locations(latlon, normalize=bool(normalize)).astype('float64') - mean) "
             "@ components.T   # latlon: (N, 2) degrees [lat, lon] in WGS84")


class StreamingPCA:
    """IncrementalPCA fed batch by batch; a batch shorter than ``n_components`` joins the one before
    (``partial_fit`` needs at least ``n_components`` rows per call)."""

    def __init__(self, n_components: int) -> None:
        from sklearn.decomposition import IncrementalPCA

        self.pca = IncrementalPCA(n_components=n_components)
        self.k = n_components
        self.held: np.ndarray | None = None

    def add(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        if self.held is None:
            self.held = values
        elif len(values) < self.k:
            self.held = np.concatenate([self.held, values])
        else:
            self.pca.partial_fit(self.held)
            self.held = values

    def finish(self):
        """The fitted IncrementalPCA (after the last held rows)."""
        if self.held is not None:
            self.pca.partial_fit(self.held)
            self.held = None
        return self.pca


def save_pca(fitted, out: str | os.PathLike | BinaryIO, normalize: bool, columns: list[str]) -> None:
    """Write a fitted PCA as ``.npz``: components, mean, variances, the embedding options it expects
    (``normalize``), the output column names and the usage line."""
    np.savez(out, components=fitted.components_.astype(np.float64), mean=fitted.mean_.astype(np.float64),
             explained_variance=fitted.explained_variance_, explained_variance_ratio=fitted.explained_variance_ratio_,
             singular_values=fitted.singular_values_, n_samples=np.int64(fitted.n_samples_seen_),
             normalize=np.bool_(normalize), columns=np.array(columns), usage=np.array(PCA_USAGE))


def load_pca(path: str | os.PathLike) -> dict[str, Any]:
    """A saved PCA as plain arrays (``components``, ``mean``, ``normalize``, ``columns``, …)."""
    with np.load(path, allow_pickle=False) as saved:
        return {key: saved[key] for key in saved.files}


def project(embeddings: np.ndarray, pca: dict[str, Any]) -> np.ndarray:
    """Principal components of GeoCLIP embeddings with a saved PCA (the ``usage`` line, as a function)."""
    return (np.asarray(embeddings, dtype=np.float64) - pca["mean"]) @ pca["components"].T
