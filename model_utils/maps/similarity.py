""""Places like here": which places does GeoCLIP confuse with a query place?

Two answers, both from the location encoder only (offline, no image backbone):

* ``analogue_probs`` / ``analogue_grid`` (the default in QGIS): the query's GPS embedding scored against
  GeoCLIP's 100K gallery of real photo locations exactly as a photo embedding is (``logit_scale.exp()``
  times cosine, softmax), optionally leaving out the query's own neighbourhood, spread with the same
  geodesic kernel as the photo rasters. Mass lies where photos were taken, which is where the encoder
  was trained: a probability raster that sums to 1.
* ``similarity_grid``: the raw cosine between the query and every grid cell's embedding. Meaningless where
  GeoCLIP saw no photos (oceans, ice, empty land), whose embeddings are arbitrary.

A query is one point or several (a region): their unit embeddings are averaged and renormalised.

For the raw field, a cell's value is the mean similarity over
``samples`` x ``samples`` points spread evenly inside it: GeoCLIP's finest random-Fourier capsule
(sigma 2^8) changes within ~100 km, so a single centre sample per coarse cell aliases into speckle.
Cell embeddings go through the gallery cache (keyed by the sampling too), so the first query at a
resolution pays the encoding once and later queries are instant.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..geo import validate_latlon
from ..model.gallery import Gallery
from ..progress import IsCanceled, Progress
from .grid import GridSpec


def query_embedding(model, latlon) -> np.ndarray:
    """The unit (512,) embedding of a query place: one point, or the renormalised mean of several."""
    emb = model.encode_locations(validate_latlon(np.atleast_2d(np.asarray(latlon, dtype=np.float64))),
                                 normalize=True)
    mean = np.asarray(emb, dtype=np.float64).mean(axis=0)
    norm = np.linalg.norm(mean)
    if norm < 1e-9:
        raise ValueError("the query points' embeddings cancel out: give fewer or closer points")
    return (mean / norm).astype(np.float32)


def analogue_probs(model, latlon, exclude_km: float = 0.0, is_canceled: IsCanceled | None = None
                   ) -> np.ndarray:
    """(N,) probabilities over the model's gallery: the query place scored like a photo (softmax of
    ``logit_scale.exp()`` x cosine), with gallery points within ``exclude_km`` of any query point left out."""
    from ..geo import geodesic_km

    points = validate_latlon(np.atleast_2d(np.asarray(latlon, dtype=np.float64)))
    query = query_embedding(model, points)
    gallery = model.gallery.latlon
    emb = model.gallery_embeddings(is_canceled=is_canceled).cpu().numpy()
    logits = float(model.logit_scale.exp()) * (emb @ query).astype(np.float64)
    if exclude_km > 0:
        near = np.zeros(len(gallery), dtype=bool)
        reach = exclude_km / 110.5  # a degree of latitude is >= 110.57 km: points further in latitude are out
        for lat, lon in points:  # a region brings thousands: measure only the gallery points within reach
            close = np.flatnonzero(np.abs(gallery[:, 0] - lat) <= reach)
            near[close] |= geodesic_km(lat, lon, gallery[close, 0], gallery[close, 1]) < exclude_km
        if near.all():
            raise ValueError(f"every gallery point lies within {exclude_km:g} km of the query: use a smaller radius")
        logits[near] = -np.inf
    logits -= logits.max()
    probs = np.exp(logits)
    return (probs / probs.sum()).astype(np.float32)


def analogue_grid(model, latlon, spec: GridSpec, bandwidth_km: float = 50.0, exclude_km: float = 0.0,
                  density: bool = False, progress: Progress | None = None,
                  is_canceled: IsCanceled | None = None, land=True):
    """The analogue probabilities spread over ``spec`` with the photo rasters' geodesic kernel
    (a ``ProbabilityGrid``: values, mass in the extent); ``land`` as ``probability_grid`` (True: on land)."""
    from .heatmap import probability_grid

    probs = analogue_probs(model, latlon, exclude_km, is_canceled=is_canceled)
    gallery = model.gallery.latlon
    return probability_grid(gallery[:, 0], gallery[:, 1], probs, spec, bandwidth_km=bandwidth_km, density=density,
                            progress=progress, is_canceled=is_canceled, land=land)


def similarity_grid(model, latlon, spec: GridSpec, samples: int = 1, progress: Progress | None = None,
                    is_canceled: IsCanceled | None = None) -> np.ndarray:
    """(height, width) float32 mean cosine similarity in [-1, 1] between each cell and the query place
    (one [lat, lon] or several)."""
    query = query_embedding(model, latlon)
    lon_g, lat_g = np.meshgrid(spec.lon_centers, spec.lat_centers)
    name = f"grid-{spec.cell_size:g}-{spec.width}x{spec.height}" + (f"-s{samples}" if samples > 1 else "")
    cells = Gallery(np.column_stack([lat_g.ravel(), lon_g.ravel()]), name=name)
    if samples <= 1:
        emb = model.embed_gallery(cells, progress=progress, is_canceled=is_canceled)
    else:
        emb = model.embed_gallery(cells, progress=progress, is_canceled=is_canceled,
                                  encode=_cell_mean(model, spec.cell_size, samples), variant=f"cell-mean-{samples}")
    return (emb @ query).astype(np.float32).reshape(spec.height, spec.width)


def _cell_mean(model, cell: float, samples: int) -> Callable[[np.ndarray], np.ndarray]:
    """Centres (n, 2) -> mean of the unit-length embeddings of samples x samples points in each cell."""
    offsets = ((np.arange(samples) + 0.5) / samples - 0.5) * cell

    def encode(centres: np.ndarray) -> np.ndarray:
        total = np.zeros((len(centres), 512), dtype=np.float32)
        for dlat in offsets:
            for dlon in offsets:
                total += model.encode_locations(centres + np.array([dlat, dlon]), normalize=True)
        return total / samples**2

    return encode
