"""The fixed 0.01-degree grid that places viewers (about 1.1 km north-south).

Impressions record the cell of each request point, and merchants read impressions by cell;
both use these functions, so a cell name means the same thing everywhere.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from geo_index import haversine_m

CELL_DEG = 0.01
#: The viewer-cell field that holds viewers beyond the radius kept by name (unlocated).
FAR_CELL = "far"


def cell_of(lat: float, lon: float) -> str:
    """Grid cell name: floor of lat and lon in units of CELL_DEG ("6016_2493")."""
    return f"{int(lat // CELL_DEG)}_{int(lon // CELL_DEG)}"


def cell_bounds(cell: str) -> dict:
    """The cell's corners in degrees, rounded to 6 places."""
    la, lo = (int(x) for x in cell.split("_"))
    return {
        "min_lat": round(la * CELL_DEG, 6),
        "min_lon": round(lo * CELL_DEG, 6),
        "max_lat": round((la + 1) * CELL_DEG, 6),
        "max_lon": round((lo + 1) * CELL_DEG, 6),
    }


# ------------------------------------------------------------ the share-of-search denominator
#: Fine cells that count local searches: 0.001 degree (111 m north-south, 56 m east-west in
#: Helsinki). A request is counted toward a store when its cell's centre is within the local
#: radius, so only requests within half a cell diagonal of the circle can fall on the wrong
#: side: at most ``FINE_ERROR_M`` (79 m at the equator, 62 m in Helsinki).
FINE_DEG = 0.001
FINE_ERROR_M = 79.0


def fine_cell_of(lat: float, lon: float) -> str:
    return f"{math.floor(lat / FINE_DEG)}_{math.floor(lon / FINE_DEG)}"


@functools.lru_cache(maxsize=65536)
def fine_cells_within(lat: float, lon: float, radius_m: float) -> tuple[str, ...]:
    """Names of the fine cells whose centres lie within ``radius_m`` of (lat, lon)."""
    dlat = radius_m / 111_195.0 + FINE_DEG
    dlon = radius_m / (111_195.0 * max(math.cos(math.radians(lat)), 0.01)) + FINE_DEG
    la = np.arange(math.floor((lat - dlat) / FINE_DEG), math.floor((lat + dlat) / FINE_DEG) + 1)
    lo = np.arange(math.floor((lon - dlon) / FINE_DEG), math.floor((lon + dlon) / FINE_DEG) + 1)
    la, lo = (a.ravel() for a in np.meshgrid(la, lo, indexing="ij"))
    inside = haversine_m(lat, lon, (la + 0.5) * FINE_DEG, (lo + 0.5) * FINE_DEG) <= radius_m
    return tuple(f"{a}_{b}" for a, b in zip(la[inside].tolist(), lo[inside].tolist()))
