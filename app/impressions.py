"""Server-side impressions: every store and deal a response shows is logged, best effort.

One ``XADD`` per response (surface, viewer, query cell, the items with their ranks). If
Redis is down or slow, the response is not held up: the write is skipped, the drop is
counted (``/healthz`` shows ``impressions_dropped``) and one warning is logged per outage
window (``app.redis_store.Breaker``).
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime

import redis

from .redis_store import PREFIX

STREAM = PREFIX + "impressions"


def viewer_id(user_id: str | None, client_id: str | None, remote_addr: str | None, day: str) -> str:
    """The user, else a pseudonymous id: a daily-salted hash of the client id or address."""
    if user_id:
        return "u:" + user_id
    raw = f"{day}|{client_id or ''}|{'' if client_id else remote_addr or ''}"
    return "a:" + hashlib.sha256(raw.encode()).hexdigest()[:16]


def query_cell(lat: float, lon: float, size_deg: float = 0.01) -> str:
    return f"{int(lat // size_deg)}_{int(lon // size_deg)}"


def log_impressions(svc, surface: str, viewer: str, lat: float, lon: float, items: list, now: datetime) -> bool:
    """Append one impression record; False if it was dropped. ``items``: [(store_id, rank, deal_id)]."""
    if not svc.config.get("IMPRESSIONS", True) or not items:
        return False
    r, breaker = svc.redis, svc.breaker
    if r is None or not breaker.closed:
        breaker.dropped += 1
        return False
    fields = {"surface": surface, "viewer": viewer, "cell": query_cell(lat, lon), "lat": f"{lat:.5f}",
              "lon": f"{lon:.5f}", "ts": now.isoformat(),
              "items": json.dumps([[s, rank, d] for s, rank, d in items], separators=(",", ":"))}
    try:
        r.xadd(STREAM, fields, maxlen=svc.config["STREAM_MAXLEN"], approximate=True)
        return True
    except (redis.RedisError, OSError) as exc:
        breaker.dropped += 1
        breaker.failed(exc, "impressions")
        return False
