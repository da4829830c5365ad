"""From gallery scores to maps: grids, the geodesic kernel, similarity fields."""
