"""Distances for the recommender's own use (it does not import geo_index).

sklearn's haversine on a sphere of the same radius the service reports in.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics.pairwise import haversine_distances

EARTH_RADIUS_M = 6_371_008.8


def pairwise_m(lat_a, lon_a, lat_b, lon_b) -> np.ndarray:
    """Great-circle metres between every point of A (rows) and of B (columns)."""
    a = np.radians(np.column_stack([lat_a, lon_a]))
    b = np.radians(np.column_stack([lat_b, lon_b]))
    return haversine_distances(a, b) * EARTH_RADIUS_M


def area_cell(lat, lon, size_deg: float = 0.01) -> np.ndarray:
    """Coarse grid cell names ("c6017_2493" for 0.01 degrees, about 1.1 km x 0.55 km in Helsinki)."""
    la = np.floor(np.asarray(lat, dtype=float) / size_deg).astype(np.int64)
    lo = np.floor(np.asarray(lon, dtype=float) / size_deg).astype(np.int64)
    return np.char.add(np.char.add("c", la.astype(str)), np.char.add("_", lo.astype(str)))
