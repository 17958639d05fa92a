"""Great-circle geometry shared by the index, its filters and its tests.

Coordinates are always degrees, latitude first in argument lists (``lat, lon``) and
longitude first only where a format demands it (GeoJSON, ``bbox=minLon,minLat,...``).
The index works on points of the unit sphere: Euclidean (chord) distance between unit
vectors is a monotone function of great-circle distance, so an R-tree over them answers
k-nearest exactly, with no degree-space corrections at the antimeridian or the poles.
"""

from __future__ import annotations

import numpy as np

#: Mean Earth radius (IUGG), metres. Every distance the service reports uses it.
EARTH_RADIUS_M = 6_371_008.8


def haversine_m(lat1, lon1, lat2, lon2):
    """Great-circle distance in metres (haversine on a sphere of radius ``EARTH_RADIUS_M``).

    Parameters
    ----------
    lat1, lon1, lat2, lon2 : float or array_like
        Degrees; broadcast together.
    """
    p2 = np.radians(lat2)
    return haversine_rad(lat1, lon1, p2, np.cos(p2), lon2)


def haversine_rad(lat1, lon1, lat2_rad, cos_lat2, lon2):
    """``haversine_m`` with the second point's latitude given in radians and its cosine.

    The index keeps both as columns; the arithmetic, and so every rounding, is the same as
    ``haversine_m``'s, so the index and a brute-force scan agree to the last bit.
    """
    p1 = np.radians(lat1)
    dphi = lat2_rad - p1
    dlmb = np.radians(np.asarray(lon2) - lon1)
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * cos_lat2 * np.sin(dlmb / 2) ** 2
    # a >= 0 by construction; the cap guards asin against 1 + rounding at antipodes.
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.minimum(a, 1.0)))


def to_unit_xyz(lat, lon):
    """Unit vectors, shape ``(n, 3)``, for degree arrays ``lat`` and ``lon``."""
    la = np.radians(np.asarray(lat, dtype=np.float64))
    lo = np.radians(np.asarray(lon, dtype=np.float64))
    cl = np.cos(la)
    return np.column_stack([cl * np.cos(lo), cl * np.sin(lo), np.sin(la)])


def chord_for_distance(distance_m: float) -> float:
    """Chord length on the unit sphere that spans ``distance_m`` of great circle."""
    angle = min(float(distance_m) / EARTH_RADIUS_M, np.pi)
    return 2.0 * np.sin(angle / 2.0)


def normalise_lon(lon):
    """Longitude folded into [-180, 180)."""
    return (np.asarray(lon, dtype=np.float64) + 180.0) % 360.0 - 180.0
