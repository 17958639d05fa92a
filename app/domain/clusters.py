"""Server-side map clustering on a grid anchored to the world, not to the viewport.

A store's cell at zoom ``z`` is its Web-Mercator pixel position (256 px tiles, the
convention of web maps) divided by ``CELL_PX``; a cell with two or more stores is a
cluster at their mean position. Because cells are fixed in world pixels, panning never
moves a cluster; only cells cut by the viewport edge change count. Follows
supercluster's output where it fits: ``cluster``, ``cluster_id``, ``point_count``,
``point_count_abbreviated``, ``expansion_zoom`` (the zoom at which the cluster splits).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

CELL_PX = 64
#: From this zoom on, stores are returned one by one.
POINTS_FROM_ZOOM = 17
MAX_LAT = 85.05112878


def world_px(lat: np.ndarray, lon: np.ndarray, zoom: int) -> tuple[np.ndarray, np.ndarray]:
    """Web-Mercator pixel coordinates at ``zoom`` (the world is 256 * 2**zoom pixels wide)."""
    size = 256.0 * (2**zoom)
    la = np.radians(np.clip(lat, -MAX_LAT, MAX_LAT))
    x = (np.asarray(lon) + 180.0) / 360.0 * size
    y = (1.0 - np.log(np.tan(la) + 1.0 / np.cos(la)) / math.pi) / 2.0 * size
    return x, y


@dataclass(frozen=True)
class Cluster:
    zoom: int
    cx: int
    cy: int
    members: np.ndarray  # row positions in the index


def cluster(positions: np.ndarray, lat: np.ndarray, lon: np.ndarray, zoom: int):
    """Split ``positions`` into clusters (2+ stores per cell) and single stores."""
    if zoom >= POINTS_FROM_ZOOM or len(positions) == 0:
        return [], positions
    x, y = world_px(lat, lon, zoom)
    cx = np.floor(x / CELL_PX).astype(np.int64)
    cy = np.floor(y / CELL_PX).astype(np.int64)
    key = cx * (1 << 32) + cy
    order = np.argsort(key, kind="stable")
    key_sorted = key[order]
    starts = np.flatnonzero(np.r_[True, key_sorted[1:] != key_sorted[:-1]])
    ends = np.r_[starts[1:], len(key_sorted)]
    clusters, singles = [], []
    for a, b in zip(starts.tolist(), ends.tolist()):
        members = positions[order[a:b]]
        if b - a == 1:
            singles.append(members[0])
        else:
            i = order[a]
            clusters.append(Cluster(zoom, int(cx[i]), int(cy[i]), np.sort(members)))
    return clusters, np.array(singles, dtype=np.int64)


def members_of(positions: np.ndarray, lat: np.ndarray, lon: np.ndarray, zoom: int, cx: int, cy: int) -> np.ndarray:
    """The stores among ``positions`` that fall in cell (cx, cy) at ``zoom``."""
    x, y = world_px(lat, lon, zoom)
    inside = (np.floor(x / CELL_PX) == cx) & (np.floor(y / CELL_PX) == cy)
    return positions[inside]


def expansion_zoom(lat: np.ndarray, lon: np.ndarray, zoom: int) -> int:
    """The first zoom above ``zoom`` at which these points fall into two or more cells."""
    for z in range(zoom + 1, POINTS_FROM_ZOOM):
        x, y = world_px(lat, lon, z)
        cells = np.floor(x / CELL_PX) * 1e9 + np.floor(y / CELL_PX)
        if cells.min() != cells.max():
            return z
    return POINTS_FROM_ZOOM


def abbreviate(n: int) -> str:
    """supercluster's point_count_abbreviated: 999, 1.2k, 35k, 1.2M."""
    if n >= 1_000_000:
        return f"{n / 1e6:.1f}M".replace(".0M", "M") if n < 10_000_000 else f"{n // 1_000_000}M"
    if n >= 10_000:
        return f"{n // 1000}k"
    if n >= 1000:
        return f"{n / 1000:.1f}k".replace(".0k", "k")
    return str(n)
