"""Server-side impressions: every store and deal a response shows is logged, best effort.

A response only appends one record to an in-process buffer (microseconds); a daemon
thread in each worker flushes the buffer to Redis every ``FLUSH_S`` seconds in one
pipeline of ``XADD``s. If Redis is down or slow, no response waits for it: the records
are dropped and counted (``/healthz`` shows ``impressions_dropped``) and one warning is
logged per outage window (``app.redis_store.Breaker``). A worker killed with -9 loses at
most one flush interval of impressions; acknowledged client events never go this way.
"""
from __future__ import annotations

import atexit
import collections
import hashlib
import json
import os
import threading
import time
from datetime import datetime

import redis

from .redis_store import PREFIX

STREAM = PREFIX + "impressions"
FLUSH_S = 0.2
_MAX_BUFFER = 50_000


def viewer_id(user_id: str | None, client_id: str | None, remote_addr: str | None, day: str) -> str:
    """The user, else a pseudonymous id: a daily-salted hash of the client id or address."""
    if user_id:
        return "u:" + user_id
    raw = f"{day}|{client_id or ''}|{'' if client_id else remote_addr or ''}"
    return "a:" + hashlib.sha256(raw.encode()).hexdigest()[:16]


def query_cell(lat: float, lon: float, size_deg: float = 0.01) -> str:
    return f"{int(lat // size_deg)}_{int(lon // size_deg)}"


class ImpressionLog:
    """The per-process buffer and its flusher thread (started lazily, after any fork)."""

    def __init__(self, svc, maxlen: int):
        self.svc = svc
        self.maxlen = maxlen
        self._buffer: collections.deque = collections.deque()
        self._lock = threading.Lock()
        self._pid = None
        self.written = 0

    def add(self, fields: dict) -> None:
        if os.getpid() != self._pid:
            self._start()
        if len(self._buffer) >= _MAX_BUFFER:
            self.svc.breaker.dropped += 1
            return
        self._buffer.append(fields)

    def _start(self) -> None:
        with self._lock:
            if os.getpid() == self._pid:
                return
            self._pid = os.getpid()
            self._buffer.clear()  # records copied from the parent belong to the parent
            threading.Thread(target=self._run, name="impressions-flush", daemon=True).start()
            atexit.register(self.flush)

    def _run(self) -> None:
        while True:
            time.sleep(FLUSH_S)
            self.flush()

    def flush(self) -> int:
        """Write what is buffered now; returns how many records were written."""
        batch = []
        while self._buffer and len(batch) < 5000:
            batch.append(self._buffer.popleft())
        if not batch:
            return 0
        r, breaker = self.svc.redis, self.svc.breaker
        if r is None or not breaker.closed:
            breaker.dropped += len(batch)
            return 0
        try:
            pipe = r.pipeline(transaction=False)
            for fields in batch:
                pipe.xadd(STREAM, fields, maxlen=self.maxlen, approximate=True)
            pipe.execute()
        except (redis.RedisError, OSError) as exc:
            breaker.dropped += len(batch)
            breaker.failed(exc, "impressions")
            return 0
        self.written += len(batch)
        return len(batch)


def log_impressions(svc, surface: str, viewer: str, lat: float, lon: float, items: list, now: datetime) -> None:
    """Queue one impression record. ``items``: [(store_id, rank, deal_id)]."""
    if not svc.config.get("IMPRESSIONS", True) or not items or svc.impressions is None:
        return
    svc.impressions.add({"surface": surface, "viewer": viewer, "cell": query_cell(lat, lon),
                         "lat": f"{lat:.5f}", "lon": f"{lon:.5f}", "ts": now.isoformat(),
                         "items": json.dumps([[s, rank, d] for s, rank, d in items], separators=(",", ":"))})
