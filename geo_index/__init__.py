"""Stores near a point: catalogue loading and an exact great-circle R-tree index.

A plain library: no Flask, no recommender.
"""

from .catalogue import COLUMNS, load_catalogue, validate_stores
from .filters import StoreFilter
from .geodesy import EARTH_RADIUS_M, haversine_m
from .hours import Schedule, hours_problem, timezone_problem
from .index import Hits, StoreIndex
from .report import LoadError, LoadReport, RowProblem

__all__ = [
    "COLUMNS",
    "EARTH_RADIUS_M",
    "Hits",
    "LoadError",
    "LoadReport",
    "RowProblem",
    "Schedule",
    "StoreFilter",
    "StoreIndex",
    "haversine_m",
    "hours_problem",
    "load_catalogue",
    "timezone_problem",
    "validate_stores",
]
