""""Places like here": cosine similarity of every grid cell to a query point in GeoCLIP's GPS space.

Needs only the location encoder, so it runs offline. Grid embeddings go through the gallery cache,
so the first query at a resolution pays the encoding once and later queries are instant.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .gallery import Gallery
from .geo import validate_latlon
from .heatmap import GridSpec

Progress = Callable[[float, str], None]


def similarity_grid(model, lat: float, lon: float, spec: GridSpec, progress: Progress | None = None,
                    is_canceled: Callable[[], bool] | None = None) -> np.ndarray:
    """(height, width) float32 cosine similarity in [-1, 1] between each cell centre and (lat, lon)."""
    query = model.encode_locations(validate_latlon([[lat, lon]]), normalize=True)[0]
    lats, lons = spec.lat_centers, spec.lon_centers
    lon_g, lat_g = np.meshgrid(lons, lats)
    cells = Gallery(np.column_stack([lat_g.ravel(), lon_g.ravel()]),
                    name=f"grid-{spec.cell_size:g}-{spec.width}x{spec.height}")
    emb = model.embed_gallery(cells, progress=progress, is_canceled=is_canceled)
    return (emb @ query).astype(np.float32).reshape(spec.height, spec.width)
