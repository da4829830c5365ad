""""Places like here": cosine similarity of every grid cell to a query point in GeoCLIP's GPS space.

Needs only the location encoder, so it runs offline. A cell's value is the mean similarity over
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
from .grid import GridSpec

Progress = Callable[[float, str], None]


def similarity_grid(model, lat: float, lon: float, spec: GridSpec, samples: int = 1,
                    progress: Progress | None = None,
                    is_canceled: Callable[[], bool] | None = None) -> np.ndarray:
    """(height, width) float32 mean cosine similarity in [-1, 1] between each cell and (lat, lon)."""
    query = model.encode_locations(validate_latlon([[lat, lon]]), normalize=True)[0]
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
