"""Server-side impressions: every store and deal a response shows is logged, best effort.

A response only appends one record to an in-process buffer (microseconds); a daemon
thread in each worker flushes the buffer to Redis every ``FLUSH_S`` seconds (one) in one
pipeline: an ``XADD`` per record and the rollups aggregated over the batch, one script call
per store-day. A longer interval aggregates more (popular stores recur) and costs a worker
killed with -9 more. If Redis is down or slow, no response waits for it: the records
are dropped and counted (``/healthz`` shows ``impressions_dropped``) and one warning is
logged per outage window (``app.storage.client.Breaker``). A worker killed with -9 loses at
most one flush interval of impressions; acknowledged client events never go this way.
"""

from __future__ import annotations

import atexit
import collections
import json
import math
import os
import threading
import time
import weakref
from collections import defaultdict
from datetime import datetime

import redis

from app.domain.clock import local_day
from app.domain.grid import FAR_CELL, cell_of, fine_cell_of
from app.domain.stats import LOCAL_SURFACES
from app.storage import keys
from app.storage.client import STORAGE_ERRORS, Breaker
from geo_index import StoreIndex, haversine_m

FLUSH_S = 1.0
#: Viewer cells are kept by name within this many km of the store (north-south and east-west).
VIEWER_CELL_RADIUS_KM = 10.0
_CELL_LAT_DEG = VIEWER_CELL_RADIUS_KM / 111.2


def _cell_lon_deg(lat: float) -> float:
    return VIEWER_CELL_RADIUS_KM / (111.2 * max(math.cos(math.radians(lat)), 0.01))


_MAX_BUFFER = 50_000


class ImpressionLog:
    """The per-process buffer and its flusher thread (started lazily, after any fork)."""

    #: Every log of this process, so that whoever ends a unit of work (a test, a shutdown) can
    #: flush them all: a buffer flushed later would write into whatever Redis state comes next.
    instances: weakref.WeakSet = weakref.WeakSet()

    def __init__(
        self,
        r: redis.Redis | None,
        breaker: Breaker,
        index: StoreIndex,
        local_radius_m: float,
        maxlen: int,
        enabled: bool = True,
    ):
        self.redis, self.breaker, self.index = r, breaker, index
        self.local_radius_m = local_radius_m
        self.maxlen = maxlen
        self.enabled = enabled
        self.instances.add(self)
        self._buffer: collections.deque = collections.deque()
        self._lock = threading.Lock()
        # One flush at a time: when flush() returns, everything added before it is written.
        self._flush_lock = threading.Lock()
        self._pid = None
        self.written = 0

    def log(self, surface: str, viewer: str, lat: float, lon: float, items: list, now: datetime) -> None:
        """Queue one impression record. ``items``: [(store_id, rank, deal_id)].

        Fields starting with ``_`` feed the rollups and are not written to the stream.
        """
        if not self.enabled or (not items and surface not in LOCAL_SURFACES):
            return
        self.add(
            {
                "surface": surface,
                "viewer": viewer,
                "cell": cell_of(lat, lon),
                "lat": f"{lat:.5f}",
                "lon": f"{lon:.5f}",
                "ts": now.isoformat(),
                "items": json.dumps([[s, rank, d] for s, rank, d in items], separators=(",", ":")),
                "_lat": lat,
                "_lon": lon,
                "_now": now,
                "_items": items,
            }
        )

    def add(self, fields: dict) -> None:
        if os.getpid() != self._pid:
            self._start()
        if len(self._buffer) >= _MAX_BUFFER:
            self.breaker.dropped += 1
            return
        self._buffer.append(fields)

    def _start(self) -> None:
        with self._lock:
            if os.getpid() == self._pid:
                return
            self._pid = os.getpid()
            self._buffer.clear()  # records copied from the parent belong to the parent
            self._flush_lock = threading.Lock()  # a lock copied mid-flush would stay held
            threading.Thread(target=self._run, name="impressions-flush", daemon=True).start()
            atexit.register(self.flush)

    def _run(self) -> None:
        while True:
            time.sleep(FLUSH_S)
            self.flush()

    def flush(self) -> int:
        """Write what is buffered now; returns how many records were written."""
        with self._flush_lock:
            return self._flush()

    @classmethod
    def flush_all(cls) -> None:
        """Empty every buffer of this process (a flush writes at most 5,000 records at a time)."""
        for log in list(cls.instances):
            while log._buffer and log.flush():
                pass

    def _flush(self) -> int:
        batch = []
        while self._buffer and len(batch) < 5000:
            batch.append(self._buffer.popleft())
        if not batch:
            return 0
        r, breaker = self.redis, self.breaker
        if r is None or not breaker.closed:
            breaker.dropped += len(batch)
            return 0
        try:
            pipe = r.pipeline(transaction=False)
            for fields in batch:
                pipe.xadd(
                    keys.IMPRESSIONS,
                    {k: v for k, v in fields.items() if not k.startswith("_")},
                    maxlen=self.maxlen,
                    approximate=True,
                )
            rollup_commands(pipe, batch, self.index, self.local_radius_m)
            pipe.execute()
        except STORAGE_ERRORS as exc:
            breaker.dropped += len(batch)
            breaker.failed(exc, "impressions")
            return 0
        self.written += len(batch)
        return len(batch)


# One script per store-day and flush: every counter of the store's day, its viewer cells and
# its viewer HLLs, in one command (a pipeline of single HINCRBYs cost redis-py ~50 commands
# and as many packings per request). All keys are one store's (one slot once tagged).
# KEYS: 1 sd, 2 vc, 3.. uv HLLs. ARGV: 1 ttl, 2 sd pairs, 3 vc pairs, pairs..., then per HLL
# key its member count and members.
_ROLLUP = """
local ttl, i = ARGV[1], 4
local nsd, nvc = tonumber(ARGV[2]), tonumber(ARGV[3])
for _ = 1, nsd do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]); i = i + 2 end
redis.call('EXPIRE', KEYS[1], ttl)
for _ = 1, nvc do redis.call('HINCRBY', KEYS[2], ARGV[i], ARGV[i + 1]); i = i + 2 end
redis.call('EXPIRE', KEYS[2], ttl)
for k = 3, #KEYS do
  local n = tonumber(ARGV[i]); i = i + 1
  redis.call('PFADD', KEYS[k], unpack(ARGV, i, i + n - 1)); i = i + n
  redis.call('EXPIRE', KEYS[k], ttl)
end
return 1
"""


def rollup_commands(pipe, batch: list, index, local_radius_m: float) -> None:
    """Queue the statistics updates for a batch of impression records, aggregated first: one
    script call per store-day (``_ROLLUP``) and one HINCRBY per searched fine cell. What one
    request adds is bounded by its items (at most a page), never by the stores around it.

    The share-of-search denominator is counted per fine grid cell and day (``lreq:{day}``,
    one field per cell): a store's local requests are the sum over the cells within the
    local radius, read when the statistics are read (``domain.grid`` states the error bound).
    """
    sd: dict = defaultdict(lambda: defaultdict(int))  # (store, day) -> field -> n
    vc: dict = defaultdict(lambda: defaultdict(int))  # (store, day) -> cell -> n
    hll: dict = defaultdict(lambda: defaultdict(set))  # (store, day) -> surface -> viewers
    searched: dict = defaultdict(int)  # (day, fine cell) -> local requests
    tz_col = index.column("timezone")
    lat_col, lon_col = index.column("lat"), index.column("lon")
    for rec in batch:
        surface, viewer, lat, lon, now = rec["surface"], rec["viewer"], rec["_lat"], rec["_lon"], rec["_now"]
        cell = cell_of(lat, lon)
        local = surface in LOCAL_SURFACES
        positions = [index.position(store) for store, _rank, _deal in rec["_items"]]
        if local:
            # The request's day in the time zone of the stores around it.
            first = next((p for p in positions if p is not None), None)
            if first is None:
                hits = index.nearest(lat, lon, 1)
                first = int(hits.positions[0]) if len(hits) else None
            if first is not None:
                searched[(local_day(now, tz_col[first]), fine_cell_of(lat, lon))] += 1
        days: dict = {}  # a record's items share its instant: one time zone conversion per zone
        if local:  # the items' distances from the request point, in one call
            shown = [p for p in positions if p is not None]
            within = dict(
                zip(shown, (haversine_m(lat, lon, lat_col[shown], lon_col[shown]) <= local_radius_m).tolist())
            )
        for (store, rank, _deal), pos in zip(rec["_items"], positions):
            if pos is None:
                continue
            tz = tz_col[pos]
            day = days.get(tz) or days.setdefault(tz, local_day(now, tz))
            f = sd[(store, day)]
            f["imp"] += 1
            f[f"imp:{surface}"] += 1
            f[f"rk:{min(int(rank), 101)}"] += 1
            f["rank_sum"] += int(rank)
            f["rank_n"] += 1
            if local and within[pos]:
                f["loc"] += 1
            # Cells near the store by name; the rest of the Earth in one field, so a store-day
            # hash has at most a few hundred fields however far its viewers are spread.
            close = abs(lat - lat_col[pos]) <= _CELL_LAT_DEG and abs(lon - lon_col[pos]) <= _cell_lon_deg(lat)
            vc[(store, day)][cell if close else FAR_CELL] += 1
            hll[(store, day)][surface].add(viewer)
            hll[(store, day)]["all"].add(viewer)
    script = pipe.register_script(_ROLLUP)
    for (store, day), fields in sd.items():
        cells, viewers = vc[(store, day)], hll[(store, day)]
        args: list = [keys.ROLLUP_TTL_S, len(fields), len(cells)]
        for name, n in (*fields.items(), *cells.items()):
            args += [name, n]
        for members in viewers.values():
            args += [len(members), *members]
        script_keys = [keys.sd(store, day), keys.vc(store, day), *(keys.uv(store, day, s) for s in viewers)]
        script(keys=script_keys, args=args, client=pipe)
    for (day, fine), n in searched.items():
        pipe.hincrby(keys.lreq_cells(day), fine, n)
    for day in {day for day, _fine in searched}:
        pipe.expire(keys.lreq_cells(day), keys.ROLLUP_TTL_S)
