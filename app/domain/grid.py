"""The fixed 0.01-degree grid that places viewers (about 1.1 km north-south).

Impressions record the cell of each request point, and merchants read impressions by cell;
both use these functions, so a cell name means the same thing everywhere.
"""

from __future__ import annotations

import functools
import math

CELL_DEG = 0.01


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
    la0, la1 = math.floor((lat - dlat) / FINE_DEG), math.floor((lat + dlat) / FINE_DEG)
    lo0, lo1 = math.floor((lon - dlon) / FINE_DEG), math.floor((lon + dlon) / FINE_DEG)
    out = []
    for la in range(la0, la1 + 1):
        c_lat = (la + 0.5) * FINE_DEG
        for lo in range(lo0, lo1 + 1):
            if _haversine_m(lat, lon, c_lat, (lo + 0.5) * FINE_DEG) <= radius_m:
                out.append(f"{la}_{lo}")
    return tuple(out)


def _haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(min(1.0, math.sqrt(h)))
