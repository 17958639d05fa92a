"""The fixed 0.01-degree grid that places viewers (about 1.1 km north-south).

Impressions record the cell of each request point, and merchants read impressions by cell;
both use these functions, so a cell name means the same thing everywhere.
"""

from __future__ import annotations

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
