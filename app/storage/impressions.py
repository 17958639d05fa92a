"""Server-side impressions: every store and deal a response shows is logged, best effort.

A response only appends one ``Shown`` tuple to an in-process buffer (about a microsecond); a
daemon thread in each worker flushes the buffer to Redis every ``FLUSH_S`` seconds (two):
one script call appends the batch to the impressions stream, and the rollups are counted
in numpy over the whole batch and written one script call per slot (at most
``_ENTRIES_PER_CALL`` store-days each), so what a request costs Redis and the worker is a
share of a few calls, not a command per item (redis-py's argument packing was most of the
cost). A longer interval aggregates more (popular stores recur) and costs a worker killed
with -9 more. If Redis is down or slow, no response waits for it: the records are dropped
and counted (``/healthz`` shows ``impressions_dropped``) and one warning is logged per
outage window (``app.storage.client.Breaker``). Acknowledged client events never go this way.
"""

from __future__ import annotations

import atexit
import collections
import os
import threading
import time
import weakref
from datetime import UTC, datetime
from typing import NamedTuple

import numpy as np
import orjson
import redis
from redis.crc import key_slot

from app.domain.clock import local_day
from app.domain.grid import FAR_CELL, cell_of, fine_cell_of
from app.domain.stats import LOCAL_SURFACES, SURFACES
from app.storage import keys, scripts
from app.storage.client import STORAGE_ERRORS, Breaker, on_cluster
from app.storage.stats import MAX_RANK
from geo_index import StoreIndex, haversine_m

FLUSH_S = 2.0
#: Viewer cells are kept by name within this many km of the store (north-south and east-west).
VIEWER_CELL_RADIUS_KM = 10.0
_CELL_LAT_DEG = VIEWER_CELL_RADIUS_KM / 111.2


_MAX_BUFFER = 50_000
#: Store-days per rollup script call: one call blocks Redis for about a millisecond at most.
_ENTRIES_PER_CALL = 50
_SURFACE_CODE = {s: i for i, s in enumerate(SURFACES)}


class Shown(NamedTuple):
    """What one response showed: ``items`` are (store_id, rank, deal_id)."""

    surface: str
    viewer: str
    lat: float
    lon: float
    at: datetime
    items: list


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

    @property
    def buffered(self) -> int:
        """Records waiting for the next flush."""
        return len(self._buffer)

    def log(self, surface: str, viewer: str, lat: float, lon: float, items: list, now: datetime) -> None:
        """Queue one impression record. ``items``: [(store_id, rank, deal_id)]."""
        if not self.enabled or (not items and surface not in LOCAL_SURFACES):
            return
        self.add(Shown(surface, viewer, lat, lon, now, items))

    def add(self, shown: Shown) -> None:
        if os.getpid() != self._pid:
            self._start()
        if len(self._buffer) >= _MAX_BUFFER:
            self.breaker.dropped += 1
            return
        self._buffer.append(shown)

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
            queue_stream(pipe, batch, self.maxlen)
            queue_rollups(pipe, batch, self.index, self.local_radius_m, cluster=on_cluster(r))
            pipe.execute()
        except STORAGE_ERRORS as exc:
            breaker.dropped += len(batch)
            breaker.failed(exc, "impressions")
            return 0
        self.written += len(batch)
        return len(batch)


# One call appends a batch to the stream (one key: one slot). ARGV: 1 maxlen, 2 JSON list of
# flat field lists. Packing seven fields per record in redis-py cost more than the rollups.
_APPEND = """
local records = cjson.decode(ARGV[2])
for i = 1, #records do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(records[i]))
end
return #records
"""


def queue_stream(pipe, batch: list[Shown], maxlen: int) -> None:
    """Queue the batch's records for the impressions stream (one script call)."""
    records = [
        [
            "surface",
            b.surface,
            "viewer",
            b.viewer,
            "cell",
            cell_of(b.lat, b.lon),
            "lat",
            f"{b.lat:.5f}",
            "lon",
            f"{b.lon:.5f}",
            "ts",
            b.at.isoformat(),
            "items",
            orjson.dumps([[s, int(rank), d] for s, rank, d in b.items]).decode(),
        ]
        for b in batch
    ]
    append = pipe.register_script(_APPEND)
    scripts.queue(pipe, append, [keys.IMPRESSIONS], [maxlen, orjson.dumps(records)])


# The rollups of many store-days in one call; every key of a call is in one slot on a cluster
# (``queue_rollups`` groups them). ARGV: 1 ttl, 2 pair-set ttl, 3 JSON list of entries, one per
# store-day: [nkeys, fields, cells, cell|viewer pairs, [viewers per HLL]], fields and cells
# flat name-count lists. KEYS, per entry: sd, vc, vp, vs, then one HLL per viewer list.
_ROLLUP = """
local ttl, pair_ttl = ARGV[1], ARGV[2]
local k = 0
local iterate = pairs
-- One read and one write for all of a hash's fields (a HINCRBY each cost a call apiece). A key
-- gets its TTL when none of the fields was there (so when it is made), not at every flush.
local function add(key, flat)
  if #flat == 0 then return end
  local names, values = {}, {}
  for i = 1, #flat, 2 do names[#names + 1] = flat[i] end
  local old = redis.call('HMGET', key, unpack(names))
  local fresh = true
  for i = 1, #names do
    if old[i] then fresh = false end
    values[#values + 1] = names[i]
    values[#values + 1] = (tonumber(old[i]) or 0) + flat[2 * i]
  end
  redis.call('HSET', key, unpack(values))
  if fresh then redis.call('EXPIRE', key, ttl) end
end
for _, e in ipairs(cjson.decode(ARGV[3])) do
  local sd, vc, vp, vs = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4]
  add(sd, e[2])
  add(vc, e[3])
  local pairs = e[4]
  if #pairs > 0 then  -- people per cell: a viewer counts once per cell and day
    local seen = redis.call('SMISMEMBER', vs, unpack(pairs))
    local new, cells = {}, {}
    for j = 1, #pairs do
      if seen[j] == 0 then
        new[#new + 1] = pairs[j]
        local cell = string.match(pairs[j], '^[^|]*')
        cells[cell] = (cells[cell] or 0) + 1
      end
    end
    if #new > 0 then
      if #new == #pairs and redis.call('EXISTS', vs) == 0 then
        redis.call('SADD', vs, unpack(new))
        redis.call('EXPIRE', vs, pair_ttl)
      else
        redis.call('SADD', vs, unpack(new))
      end
      local flat = {}
      for cell, n in iterate(cells) do flat[#flat + 1] = cell; flat[#flat + 1] = n end
      add(vp, flat)
    end
  end
  local hlls = e[5]
  for j = 1, #hlls do  -- PFADD answers 1 when it made or changed the key: only then can it lack a TTL
    local key = KEYS[k + 4 + j]
    if redis.call('PFADD', key, unpack(hlls[j])) == 1 and redis.call('TTL', key) == -1 then
      redis.call('EXPIRE', key, ttl)
    end
  end
  k = k + e[1]
end
return k
"""

# The share-of-search denominator of one day. KEYS: 1 lreq hash. ARGV: 1 ttl, 2 JSON flat cell-count list.
_COUNT_CELLS = """
local c = cjson.decode(ARGV[2])
for i = 1, #c, 2 do redis.call('HINCRBY', KEYS[1], c[i], c[i + 1]) end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return #c
"""


def queue_rollups(pipe, batch: list[Shown], index: StoreIndex, local_radius_m: float, cluster: bool = False) -> None:
    """Queue the statistics updates of a batch, counted over the whole batch first.

    Per store and local day: impressions by surface, the rank histogram and sum, local
    searches it appeared in (``loc``), impressions and people by viewer cell, and viewers
    (HLL) by surface. Per day and fine cell: local searches, the share-of-search denominator
    (a store's is the sum over the cells within the local radius, read when the statistics
    are read; ``domain.grid`` states the error bound). Redis work is one field update per
    distinct (store-day, field) of the batch, and redis-py packs a few calls per flush.

    ``cluster``: one call per slot (on one server, calls of ``_ENTRIES_PER_CALL`` entries).
    """
    if not batch:
        return
    items = _Items(batch, index)
    entries = _store_day_entries(items, index, local_radius_m)
    script = pipe.register_script(_ROLLUP)
    groups: dict[int, list] = collections.defaultdict(list)
    for entry_keys, entry in entries:
        groups[key_slot(entry_keys[0].encode()) if cluster else 0].append((entry_keys, entry))
    for group in groups.values():
        for i in range(0, len(group), _ENTRIES_PER_CALL):
            chunk = group[i : i + _ENTRIES_PER_CALL]
            scripts.queue(
                pipe,
                script,
                [k for entry_keys, _ in chunk for k in entry_keys],
                [keys.ROLLUP_TTL_S, keys.PAIR_TTL_S, orjson.dumps([e for _, e in chunk])],
            )
    count = pipe.register_script(_COUNT_CELLS)
    for day, cells in _local_searches(batch, items, index).items():
        flat = [x for cell_n in cells.items() for x in cell_n]
        scripts.queue(pipe, count, [keys.lreq_cells(day)], [keys.ROLLUP_TTL_S, orjson.dumps(flat)])


class _Items:
    """The batch as arrays: one row per item of a known store (``pos``, ``rank``, its record
    ``rec``, its store-local ``day`` indexing ``days``), and per record its surface, point,
    viewer and cell codes. A day is computed once per (second, time zone), not per item."""

    def __init__(self, batch: list[Shown], index: StoreIndex):
        n_per = np.fromiter((len(b.items) for b in batch), np.int64, len(batch))
        flat = [it for b in batch for it in b.items]
        pos = index.positions_of([s for s, _r, _d in flat])
        rank = np.fromiter((r for _s, r, _d in flat), np.int64, len(flat))
        rec = np.repeat(np.arange(len(batch)), n_per)
        keep = pos >= 0
        self.pos, self.rank, self.rec = pos[keep], rank[keep], rec[keep]
        self.second = np.fromiter((int(b.at.timestamp()) for b in batch), np.int64, len(batch))
        self.surface = np.fromiter((_SURFACE_CODE[b.surface] for b in batch), np.int64, len(batch))
        self.lat = np.fromiter((b.lat for b in batch), np.float64, len(batch))
        self.lon = np.fromiter((b.lon for b in batch), np.float64, len(batch))
        self.viewers, self.viewer = _codes(b.viewer for b in batch)
        self.cells, self.cell = _codes(cell_of(b.lat, b.lon) for b in batch)
        self.day, self.days = local_days(self.second[self.rec], index.column("timezone")[self.pos])


def _codes(values) -> tuple[list[str], np.ndarray]:
    """(distinct values in first-seen order, each value's index into them)."""
    names: dict[str, int] = {}
    codes = [names.setdefault(v, len(names)) for v in values]
    return list(names), np.array(codes, np.int64)


def local_days(seconds: np.ndarray, zones: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Day codes of (epoch second, time zone) pairs, and the ISO days they index."""
    if not len(seconds):
        return np.zeros(0, np.int64), []
    zone_names, zone_code = np.unique(zones.astype(str), return_inverse=True)
    pairs, pair_code = np.unique(seconds * len(zone_names) + zone_code, return_inverse=True)
    days, day_code = _codes(
        local_day(datetime.fromtimestamp(p // len(zone_names), UTC), str(zone_names[p % len(zone_names)]))
        for p in pairs.tolist()
    )
    return day_code[pair_code], days


def _store_day_entries(items: _Items, index: StoreIndex, local_radius_m: float) -> list[tuple[list, list]]:
    """(keys, payload) per store-day of the batch: ``_ROLLUP``'s entries."""
    if not len(items.pos):
        return []
    rec, pos = items.rec, items.pos
    lat, lon = items.lat[rec], items.lon[rec]
    lat_col, lon_col = index.column("lat")[pos], index.column("lon")[pos]
    surface = items.surface[rec]
    local = np.isin(surface, [_SURFACE_CODE[s] for s in LOCAL_SURFACES])
    within = local & (haversine_m(lat, lon, lat_col, lon_col) <= local_radius_m)
    # Cells near the store by name; the rest of the Earth in one field, so a store-day hash
    # has at most a few hundred fields however far its viewers are spread.
    lon_deg = VIEWER_CELL_RADIUS_KM / (111.2 * np.maximum(np.cos(np.radians(lat)), 0.01))
    close = (np.abs(lat - lat_col) <= _CELL_LAT_DEG) & (np.abs(lon - lon_col) <= lon_deg)
    cell_names = [*items.cells, FAR_CELL]
    cell = np.where(close, items.cell[rec], len(items.cells))
    viewer = items.viewer[rec]
    n_days, n_s, n_c, n_v = len(items.days), len(SURFACES), len(cell_names), len(items.viewers)

    groups, g = np.unique(pos * n_days + items.day, return_inverse=True)
    n_g = len(groups)
    imp = np.bincount(g, minlength=n_g).tolist()
    by_surface = np.bincount(g * n_s + surface, minlength=n_g * n_s).reshape(n_g, n_s).tolist()
    rank_sum = np.bincount(g, weights=items.rank, minlength=n_g).astype(np.int64).tolist()
    loc = np.bincount(g, weights=within, minlength=n_g).astype(np.int64).tolist()

    def per_group(keys_of_rows: np.ndarray, width: int, counts: bool = True):
        """Distinct (group, value) rows: per group, the values (and how often each occurs)."""
        found, n = np.unique(g * width + keys_of_rows, return_counts=True)
        bounds = np.searchsorted(found // width, np.arange(n_g + 1)).tolist()
        values, n = (found % width).tolist(), n.tolist()
        return [(values[a:b], n[a:b]) if counts else values[a:b] for a, b in zip(bounds, bounds[1:])]

    ranks = per_group(np.minimum(items.rank, MAX_RANK), MAX_RANK + 1)
    cells = per_group(cell, n_c)
    pairs = per_group(cell * n_v + viewer, n_c * n_v, counts=False)
    seen_on = per_group(surface * n_v + viewer, n_s * n_v, counts=False)
    seen = per_group(viewer, n_v, counts=False)

    store_ids = index.column("store_id")[groups // n_days].tolist()
    entries = []
    for i, (store, day_code) in enumerate(zip(store_ids, (groups % n_days).tolist())):
        day = items.days[day_code]
        fields: list = ["imp", imp[i], "rank_sum", rank_sum[i], "rank_n", imp[i]]
        if loc[i]:
            fields += ["loc", loc[i]]
        for s, n in zip(SURFACES, by_surface[i]):
            if n:
                fields += [f"imp:{s}", n]
        for r, n in zip(*ranks[i]):
            fields += [f"rk:{r}", n]
        cell_counts = [x for c, n in zip(*cells[i]) for x in (cell_names[c], n)]
        people = [f"{cell_names[p // n_v]}|{items.viewers[p % n_v]}" for p in pairs[i]]
        hll_keys, hlls = [keys.uv(store, day, "all")], [[items.viewers[v] for v in seen[i]]]
        by_s: dict[int, list] = collections.defaultdict(list)
        for p in seen_on[i]:
            by_s[p // n_v].append(items.viewers[p % n_v])
        for s, viewers in by_s.items():
            hll_keys.append(keys.uv(store, day, SURFACES[s]))
            hlls.append(viewers)
        entry_keys = [keys.sd(store, day), keys.vc(store, day), keys.vp(store, day), keys.vs(store, day), *hll_keys]
        entries.append((entry_keys, [len(entry_keys), fields, cell_counts, people, hlls]))
    return entries


def _local_searches(batch: list[Shown], items: _Items, index: StoreIndex) -> dict[str, dict[str, int]]:
    """Local searches per day and fine cell; the day is that of the first store the request
    showed (else of the store nearest to it) in that store's time zone."""
    local = np.flatnonzero(np.isin(items.surface, [_SURFACE_CODE[s] for s in LOCAL_SURFACES]))
    if not len(local):
        return {}
    first_rec, first_item = np.unique(items.rec, return_index=True)
    first = dict(zip(first_rec.tolist(), items.pos[first_item].tolist()))
    recs, positions = [], []
    for r in local.tolist():
        p = first.get(r)
        if p is None:
            hits = index.nearest(batch[r].lat, batch[r].lon, 1)
            p = int(hits.positions[0]) if len(hits) else None
        if p is not None:
            recs.append(r)
            positions.append(p)
    day, days = local_days(items.second[recs], index.column("timezone")[np.array(positions, np.int64)])
    out: dict[str, dict[str, int]] = collections.defaultdict(lambda: collections.defaultdict(int))
    for r, d in zip(recs, day.tolist()):
        out[days[d]][fine_cell_of(batch[r].lat, batch[r].lon)] += 1
    return out
