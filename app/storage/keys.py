"""Redis layout of the merchant statistics (all under ``o2o:v1:``).

==================================  =====  ==================================================
key                                 type   content
==================================  =====  ==================================================
``sd:{store}:{day}``                hash   ``imp``, ``imp:{surface}``, ``rk:{rank}`` (rank
                                           histogram, 101 = beyond 100), ``rank_sum``,
                                           ``rank_n``, ``loc`` (local searches it appeared
                                           in), ``ev:{type}`` per event type, ``amount``,
                                           ``lreq`` (local search requests near the store)
``uv:{store}:{day}:{surface|all}``  HLL    viewers who saw the store
``up:{store}:{day}:{type}``         HLL    people behind each event type (funnel in people)
``vc:{store}:{day}``                hash   impressions by viewer cell (0.01 degree grid)
==================================  =====  ==================================================

``day`` is the store's local date. Rollups live ``ROLLUP_TTL_S`` (410 days); the raw
event and impression streams are trimmed to ``O2O_STREAM_MAXLEN`` entries. Measured
size: see the README.
"""
from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from app.storage.client import PREFIX

ROLLUP_TTL_S = 410 * 86400
SURFACES = ("nearby", "recommended", "map", "detail")
EVENT_TYPES = ("click", "detail_view", "redeem", "order", "review", "directions", "call", "website")
CELL_DEG = 0.01


def sd(store: str, day: str) -> str:
    return f"{PREFIX}sd:{store}:{day}"


def uv(store: str, day: str, surface: str = "all") -> str:
    return f"{PREFIX}uv:{store}:{day}:{surface}"


def up(store: str, day: str, kind: str) -> str:
    return f"{PREFIX}up:{store}:{day}:{kind}"


def vc(store: str, day: str) -> str:
    return f"{PREFIX}vc:{store}:{day}"


@lru_cache(maxsize=4096)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_day(instant: datetime, tz: str) -> str:
    return instant.astimezone(_zone(tz)).date().isoformat()


def cell_of(lat: float, lon: float) -> str:
    """Grid cell name: floor of lat and lon in units of CELL_DEG ("6016_2493")."""
    return f"{int(lat // CELL_DEG)}_{int(lon // CELL_DEG)}"
