"""Distances for the recommender's own use (it does not import geo_index).

On a sphere of the same radius the service reports in, in plain numpy: sklearn's
``haversine_distances`` computes the same but validates its input for about a millisecond
per call, which a request that scores 200 stores cannot afford.
"""

from __future__ import annotations

import numpy as np

EARTH_RADIUS_M = 6_371_008.8


def pairwise_m(lat_a, lon_a, lat_b, lon_b) -> np.ndarray:
    """Great-circle metres between every point of A (rows) and of B (columns).

    Through unit vectors: the chord between two points is a matrix product (BLAS), and
    the arc follows from it; within a few millimetres of the haversine at short range,
    except near 0 m, where 2 - 2 a.b cancels: a point is up to ~0.13 m from itself.
    (``kernels`` takes |a - b|^2 instead, pair by pair.)
    """
    a, b = unit_vectors(lat_a, lon_a), unit_vectors(lat_b, lon_b)
    chord2 = np.maximum(2.0 - 2.0 * (a @ b.T), 0.0)
    return 2 * EARTH_RADIUS_M * np.arcsin(np.minimum(np.sqrt(chord2) / 2, 1.0))


def unit_vectors(lat, lon) -> np.ndarray:
    """Points as rows of (x, y, z) on the unit sphere (C-contiguous: the kernels read rows)."""
    p, lam = np.radians(np.asarray(lat, float)), np.radians(np.asarray(lon, float))
    return np.column_stack([np.cos(p) * np.cos(lam), np.cos(p) * np.sin(lam), np.sin(p)])


def area_cell(lat, lon, size_deg: float = 0.01) -> np.ndarray:
    """Coarse grid cell names ("c6017_2493" for 0.01 degrees, about 1.1 km x 0.55 km in Helsinki)."""
    la = np.floor(np.asarray(lat, dtype=float) / size_deg).astype(np.int64)
    lo = np.floor(np.asarray(lon, dtype=float) / size_deg).astype(np.int64)
    return np.char.add(np.char.add("c", la.astype(str)), np.char.add("_", lo.astype(str)))
