"""GeoCLIP's distribution mixed with mass on the matched reference photos' positions.

For a query photo with matches (best first, similarities s_1 >= s_2 ...) the fused distribution is

    p = (1 - w) * GeoCLIP's probabilities over its gallery  +  w * sum_j q_j * [the position of match j]

with q = softmax(s / temperature) over the top-m matches and w = sigmoid(slope * (s_1 - threshold)): the
probability that the best matches show the query's own place (fitted by leave-one-out, see ``fit``), scaled
by MAX_WEIGHT so that GeoCLIP always keeps a little. A query
unlike every reference has a small s_1, so w is about 0 and the answer is GeoCLIP's. Matches at the same
position pool their mass.

The result is a discrete distribution over the gallery followed by the matches' distinct positions: a
``Prediction`` whose ``gallery_probs`` run over ``support_latlon``, so the raster kernel, the credible regions
and the top-k code take it as they take GeoCLIP's own (pass ``support_latlon`` where they take the gallery).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..model.predictor import Prediction

DEFAULT_M = 10
# GeoCLIP always keeps at least this share: its own distribution stays recoverable from the fused one, and a
# wrong match can never leave the rest of the world with no probability at all.
MAX_WEIGHT = 0.999


@dataclass(frozen=True)
class FusionParams:
    """``temperature`` of the softmax over the matches' similarities; the mixing weight's ``slope`` and
    ``threshold`` (the best similarity at which the references get half the probability); ``m`` matches used."""

    temperature: float
    slope: float
    threshold: float
    m: int = DEFAULT_M

    def weight(self, best_similarity) -> np.ndarray:
        """The share of the probability given to the references, from the best match's similarity (at most
        MAX_WEIGHT)."""
        z = self.slope * (np.asarray(best_similarity, dtype=np.float64) - self.threshold)
        return MAX_WEIGHT * 0.5 * (1.0 + np.tanh(0.5 * z))  # the logistic function, without overflow

    def match_weights(self, similarities: np.ndarray) -> np.ndarray:
        """Softmax of the similarities over the last axis; -inf (no match) gets 0."""
        s = np.asarray(similarities, dtype=np.float64) / self.temperature
        top = np.max(s, axis=-1, keepdims=True)
        e = np.exp(s - np.where(np.isfinite(top), top, 0.0))
        total = e.sum(axis=-1, keepdims=True)
        return np.divide(e, total, out=np.zeros_like(e), where=total > 0)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> FusionParams:
        return cls(float(data["temperature"]), float(data["slope"]), float(data["threshold"]), int(data["m"]))


@dataclass(frozen=True)
class Match:
    """A matched reference photo: its rank (1 = most similar), its ``row`` in the collection, path, position, cosine
    similarity to the query, and ``share``: the part of the fused probability placed on it."""

    rank: int
    row: int
    path: str
    lat: float
    lon: float
    similarity: float
    share: float


@dataclass
class FusedPrediction(Prediction):
    """A Prediction over the gallery followed by the matches' distinct positions (``support_latlon``), with
    ``geoclip`` (GeoCLIP alone: top-k, no full vector), the ``matches`` and the mixing ``weight``."""

    gallery_latlon: np.ndarray = field(default_factory=lambda: np.empty((0, 2)))
    extra_latlon: np.ndarray = field(default_factory=lambda: np.empty((0, 2)))
    geoclip: Prediction | None = None
    matches: list[Match] = field(default_factory=list)
    weight: float = 0.0

    @property
    def support_latlon(self) -> np.ndarray:
        """Where ``gallery_probs`` put their mass: the gallery, then the matched references' positions."""
        return np.concatenate([np.asarray(self.gallery_latlon, dtype=np.float64), self.extra_latlon])

    def geoclip_probs(self) -> np.ndarray:
        """GeoCLIP's own probabilities over its gallery (recovered from the mixture)."""
        n = len(self.gallery_latlon)
        return self.gallery_probs[:n] / max(1.0 - self.weight, np.finfo(np.float64).tiny)


def reference_mass(similarities: np.ndarray, latlon: np.ndarray, params: FusionParams
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For one query's matches (best first; -inf pads): (distinct positions (U, 2), their pooled mass (U,)
    summing to 1, each match's mass q (m,))."""
    valid = np.isfinite(similarities)
    q = np.zeros(len(similarities))
    if not valid.any():
        return np.zeros((0, 2)), np.zeros(0), q
    q[valid] = params.match_weights(similarities[valid])
    positions, inverse = np.unique(latlon[valid], axis=0, return_inverse=True)
    return positions, np.bincount(inverse.reshape(-1), weights=q[valid], minlength=len(positions)), q


def fuse(pred: Prediction, gallery_latlon: np.ndarray, paths, ref_latlon: np.ndarray, indices: np.ndarray,
         similarities: np.ndarray, params: FusionParams, top_k: int) -> FusedPrediction:
    """GeoCLIP's ``pred`` fused with its matches (``indices`` into the collection's ``paths`` / ``ref_latlon``,
    -1 for none, and their ``similarities``, best first)."""
    valid = indices >= 0
    idx, sims = indices[valid], similarities[valid]
    w = float(params.weight(sims[0])) if len(sims) else 0.0
    positions, mass, q = reference_mass(sims, ref_latlon[idx], params)
    probs = np.concatenate([(1.0 - w) * pred.gallery_probs.astype(np.float64), w * mass])
    probs /= probs.sum()
    top_k = int(min(max(top_k, 1), len(probs)))
    top = np.argpartition(-probs, top_k - 1)[:top_k]
    top = top[np.argsort(-probs[top], kind="stable")]
    at = support_points(gallery_latlon, positions, top)
    matches = [Match(rank + 1, int(i), str(paths[i]), float(ref_latlon[i, 0]), float(ref_latlon[i, 1]), float(s),
                     float(w * share)) for rank, (i, s, share) in enumerate(zip(idx, sims, q))]
    geoclip = Prediction(source=pred.source, lat=pred.lat, lon=pred.lon, prob=pred.prob, indices=pred.indices,
                         gps=pred.gps)
    return FusedPrediction(source=pred.source, lat=at[:, 0], lon=at[:, 1], prob=probs[top].astype(np.float32),
                           indices=top.astype(np.int64), gallery_probs=probs.astype(np.float32), gps=pred.gps,
                           gallery_latlon=gallery_latlon, extra_latlon=positions, geoclip=geoclip, matches=matches,
                           weight=w)


def support_points(gallery_latlon: np.ndarray, extra_latlon: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """(lat, lon) of support ``indices`` (the gallery's first, then the extra points), without joining the two."""
    n = len(gallery_latlon)
    out = np.empty((len(indices), 2))
    in_gallery = indices < n
    out[in_gallery] = gallery_latlon[indices[in_gallery]]
    out[~in_gallery] = extra_latlon[indices[~in_gallery] - n]
    return out
