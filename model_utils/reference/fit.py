"""Fit the fusion on the collection itself, and say how much the collection helps.

Every reference photo (up to ``max_queries``, a seeded sample beyond) is geolocated twice against the others:

* **leave-one-out**: against every other photo, as a new photo of a place the collection covers would be;
* **own place left out**: against the photos more than ``place_km`` away from it, as a photo of a place the
  collection does not cover would be.

The mixing weight is the probability that the best match shows the query's own place (its position within
``place_km``), as a logistic function of the best similarity, fitted by (lightly regularised) maximum
likelihood on both sets: the first gives the similarities of right matches, the second those of matches that
cannot be right, so the weight learns where similarity stops meaning "same place" and a query unlike the
collection keeps GeoCLIP's answer. The temperature of the softmax over the matches is chosen on the
leave-one-out queries with a right best match, by the likelihood of their true position under a
``place_km`` kernel around the matches. The report is the paper's accuracy table (top-1 error within
1/25/200/750/2500 km) for GeoCLIP alone and fused, leave-one-out, and fused with the own place left out
(which should stay close to GeoCLIP alone: the collection must not pull photos from elsewhere).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

import numpy as np

from ..evaluation.accuracy import AccuracyReport, accuracy_at_thresholds
from ..geo import geodesic_km, haversine_km
from .fusion import DEFAULT_M, FusionParams, reference_mass
from .index import CollectionError, ReferenceCollection
from .match import top_matches

PLACE_KM = 25.0  # "the query's own place": the paper's city threshold
MAX_QUERIES = 2000
QUERY_CHUNK = 256
TEMPERATURES = np.geomspace(1e-5, 1.0, 51)
RIDGE = 1.0  # penalty on the logistic slope (standardised similarity): finite when the classes separate
NEVER = FusionParams(temperature=0.01, slope=1000.0, threshold=2.0)  # cosine <= 1: weight about 0


class FitError(CollectionError):
    """The collection cannot be fitted (too few photos)."""


@dataclass
class FitResult:
    """The fitted ``params``, how they were found (``kind``: "fitted", "positives only" when every photo is of
    one place, "never" when no photo's best match was of its own place), the accuracy tables and their sizes."""

    params: FusionParams
    kind: str
    n_queries: int
    positives: int
    negatives: int
    geoclip: AccuracyReport
    fused: AccuracyReport
    place_left_out: AccuracyReport | None
    place_km: float
    seconds: float
    content: str = ""
    gallery: str = ""

    def to_dict(self) -> dict:
        """Plain JSON data (as kept in the index: tuples become lists)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, data: dict) -> FitResult:
        def report(value):
            if value is None:
                return None
            return AccuracyReport(**{**value, "thresholds_km": tuple(value["thresholds_km"]),
                                     "share_within": tuple(value["share_within"])})

        return cls(**{**data, "params": FusionParams.from_dict(data["params"]), "geoclip": report(data["geoclip"]),
                      "fused": report(data["fused"]), "place_left_out": report(data["place_left_out"])})

    def table(self) -> str:
        """The report as text: the three rows of the accuracy table and what was fitted."""
        head = "".join(f"{t:>8g} km" for t in self.geoclip.thresholds_km)
        lines = [f"Leave-one-out on {self.n_queries} reference photos (top-1 within):",
                 f"{'':28}{head}   median"]
        rows = [("GeoCLIP alone", self.geoclip), ("fused", self.fused),
                (f"fused, own {self.place_km:g} km left out", self.place_left_out)]
        for name, rep in rows:
            if rep is not None:
                lines.append(f"{name:28}" + "".join(f"{100 * s:10.1f}%" for s in rep.share_within)
                             + f"  {rep.median_km:,.0f} km")
        p = self.params
        lines.append(f"Fitted ({self.kind}): references get half the probability at similarity {p.threshold:.4f} "
                     f"(slope {p.slope:.4g}), temperature {p.temperature:.3g} over the top {p.m}; "
                     f"{self.positives} of {self.n_queries} photos had a best match of their own place, "
                     f"{self.negatives} tries without their place; {self.seconds:.1f} s.")
        return "\n".join(lines)


def fit_collection(model, collection: ReferenceCollection, m: int = DEFAULT_M, place_km: float = PLACE_KM,
                   max_queries: int = MAX_QUERIES, seed: int = 0) -> FitResult:
    """Fit the fusion of ``collection`` by leave-one-out (see the module note); ``model`` gives GeoCLIP's answers."""
    n = len(collection)
    if n < 2:
        raise FitError(f"The reference collection has {n} photo(s): leave-one-out needs at least 2. Add photos.")
    model.gallery_embeddings()  # the gallery's one-time encoding (cached on disk) is not the fit's time
    start = time.perf_counter()
    rows = np.arange(n) if n <= max_queries else np.sort(
        np.random.default_rng(seed).choice(n, max_queries, replace=False))
    latlon = collection.latlon
    loo, lpo = _neighbours(collection.embeddings, latlon, rows, m, place_km)
    truth = latlon[rows]
    right = loo[0][:, 0] >= 0
    right[right] = haversine_km(*truth[right].T, *latlon[loo[0][right, 0]].T) <= place_km
    has_others = lpo[0][:, 0] >= 0
    params, kind = _fit_weight(loo[1][:, 0], right, lpo[1][has_others, 0], m)
    params = FusionParams(_fit_temperature(loo[1][right], latlon[loo[0][right]], truth[right], place_km),
                          params.slope, params.threshold, m) if right.any() else params
    geo_latlon, geo_p = geoclip_top1(model, collection.embeddings[rows])
    fused = fused_top1(geo_latlon, geo_p, loo[1], latlon, loo[0], params)
    alone = fused_top1(geo_latlon[has_others], geo_p[has_others], lpo[1][has_others], latlon, lpo[0][has_others],
                       params) if has_others.any() else None
    return FitResult(params, kind, len(rows), int(right.sum()), int(has_others.sum()), _table(truth, geo_latlon),
                     _table(truth, fused), _table(truth[has_others], alone) if alone is not None else None,
                     place_km, time.perf_counter() - start, collection.content_digest(), model.gallery.digest)


def fit_or_reason(model, collection: ReferenceCollection) -> tuple[FitResult | None, str]:
    """(the fit, "") or (None, why the collection cannot be fitted)."""
    try:
        return fit_collection(model, collection), ""
    except FitError as exc:
        return None, str(exc)


def _table(truth: np.ndarray, guess: np.ndarray) -> AccuracyReport:
    return accuracy_at_thresholds(geodesic_km(truth[:, 0], truth[:, 1], guess[:, 0], guess[:, 1]))


def _neighbours(emb: np.ndarray, latlon: np.ndarray, rows: np.ndarray, m: int, place_km: float):
    """Top-m matches of each query row: ((indices, sims) leave-one-out, (indices, sims) with its place left out)."""
    parts: list[list] = [[], [], [], []]
    everyone = np.arange(len(emb))
    for start in range(0, len(rows), QUERY_CHUNK):
        chunk = rows[start:start + QUERY_CHUNK]
        q = emb[chunk]
        for k, exclude in enumerate((chunk[:, None] == everyone[None, :],
                                     haversine_km(latlon[chunk, :1], latlon[chunk, 1:], latlon[None, :, 0],
                                                  latlon[None, :, 1]) <= place_km)):
            idx, sims = top_matches(q, emb, m, exclude=exclude)
            parts[2 * k].append(idx)
            parts[2 * k + 1].append(sims)
    loo_i, loo_s, lpo_i, lpo_s = (np.concatenate(p) for p in parts)
    return (loo_i, loo_s), (lpo_i, lpo_s)


def _fit_weight(right_s1: np.ndarray, right: np.ndarray, other_s1: np.ndarray, m: int) -> tuple[FusionParams, str]:
    """The logistic weight from the best similarities of leave-one-out queries (label: right match or not) and of
    own-place-left-out queries (never right)."""
    x = np.concatenate([right_s1, other_s1]).astype(np.float64)
    y = np.concatenate([right, np.zeros(len(other_s1), bool)]).astype(np.float64)
    finite = np.isfinite(x)
    x, y = x[finite], y[finite]
    if not y.any():
        return FusionParams(NEVER.temperature, NEVER.slope, NEVER.threshold, m), "never"
    if y.all():  # one place only: weight 0.5 at the 5th percentile of the right matches, 0.9 at their median
        low, mid = np.quantile(x, [0.05, 0.5])
        return FusionParams(NEVER.temperature, float(np.log(9.0) / max(mid - low, 1e-4)), float(low), m), \
            "positives only"
    mu, sd = float(x.mean()), max(float(x.std()), 1e-9)
    a, b = _logistic((x - mu) / sd, y)
    if a <= 0:  # a more similar best match is not more often right: the collection cannot be trusted
        return FusionParams(NEVER.temperature, NEVER.slope, NEVER.threshold, m), "never"
    return FusionParams(NEVER.temperature, a / sd, mu - b * sd / a, m), "fitted"


def _logistic(z: np.ndarray, y: np.ndarray, iterations: int = 100) -> tuple[float, float]:
    """(slope, intercept) of P(y=1) = sigmoid(slope * z + intercept) by Newton's method, slope ridge RIDGE."""
    a, b = 1.0, 0.0
    for _ in range(iterations):
        p = 0.5 * (1.0 + np.tanh(0.5 * (a * z + b)))
        w = p * (1 - p)
        grad = np.array([np.dot(p - y, z) + RIDGE * a, np.sum(p - y)])
        hess = np.array([[np.dot(w, z * z) + RIDGE, np.dot(w, z)], [np.dot(w, z), np.sum(w) + 1e-9]])
        step = np.linalg.solve(hess, grad)
        a, b = a - step[0], b - step[1]
        if np.max(np.abs(step)) < 1e-10:
            break
    return float(a), float(b)


def _fit_temperature(sims: np.ndarray, match_latlon: np.ndarray, truth: np.ndarray, place_km: float) -> float:
    """The temperature under which the matches' softmax puts most likelihood on the true positions (a
    ``place_km`` kernel around each match); of equally good ones the highest (the smoothest)."""
    d = haversine_km(truth[:, None, 0], truth[:, None, 1], match_latlon[..., 0], match_latlon[..., 1])
    kernel = np.where(np.isfinite(sims), np.exp(-0.5 * (d / place_km) ** 2), 0.0)
    scores = []
    for t in TEMPERATURES:
        q = FusionParams(t, 1.0, 0.0).match_weights(sims)
        scores.append(float(np.mean(np.log((q * kernel).sum(axis=1) + 1e-9))))
    scores = np.asarray(scores)
    return float(TEMPERATURES[np.flatnonzero(scores >= scores.max() - 1e-6)[-1]])


def geoclip_top1(model, embeddings: np.ndarray, chunk: int = QUERY_CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """GeoCLIP's own best guess (lat, lon) and its probability for each image embedding (no backbone run)."""
    import torch

    search = model.search()
    guess, prob = np.zeros((len(embeddings), 2)), np.zeros(len(embeddings))
    for start in range(0, len(embeddings), chunk):
        feats = torch.from_numpy(np.ascontiguousarray(embeddings[start:start + chunk])).to(search.embeddings.device)
        for i, pred in enumerate(search.rank(feats, [""] * len(feats), 1), start):
            guess[i], prob[i] = (pred.lat[0], pred.lon[0]), pred.prob[0]
    return guess, prob


def fused_top1(geo_latlon: np.ndarray, geo_prob: np.ndarray, sims: np.ndarray, ref_latlon: np.ndarray,
               indices: np.ndarray, params: FusionParams) -> np.ndarray:
    """The fused distribution's top-1 per query, as ``fusion.fuse`` ranks it (GeoCLIP's best gallery point
    unless a reference position holds strictly more), without building the whole distribution."""
    out = np.array(geo_latlon, dtype=np.float64, copy=True)
    weights = params.weight(sims[:, 0])
    for i in range(len(out)):
        positions, mass, _ = reference_mass(sims[i], ref_latlon[np.maximum(indices[i], 0)], params)
        if len(mass) and weights[i] * mass.max() > (1 - weights[i]) * geo_prob[i]:
            out[i] = positions[int(np.argmax(mass))]
    return out
