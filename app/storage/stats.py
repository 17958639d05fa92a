"""Merchant statistics: read the daily rollups into figure dicts (``domain.stats`` finishes them).

One Lua call per store reads every day of the range server-side (the hash, the HLL
counts, and the share-of-local-search denominator), so a 90-day read of 10 stores is
ten round trips' worth of work in one pipeline, not thousands of commands.
"""

from __future__ import annotations

import contextlib
import json

import redis

from app.domain.stats import EVENT_FIELDS, SURFACES
from app.storage import keys, scripts
from app.storage.client import STORAGE_ERRORS

# Fields summed per day, in this order (the Lua script and _parse share it).
FIELDS = (
    "imp",
    "imp:nearby",
    "imp:recommended",
    "imp:map",
    "imp:detail",
    "ev:click",
    "ev:detail_view",
    "ev:directions",
    "ev:call",
    "ev:website",
    "ev:redeem",
    "ev:order",
    "ev:review",
    "amount",
    "rank_sum",
    "rank_n",
    "loc",
)
MAX_RANK = 101

# KEYS: per day, five keys (from app.storage.keys): sd, uv of the surface, up:click, up:order, up:redeem
# ARGV: 1 totals_only (0|1), 2 fields (space-separated)
# Per day (unless totals_only): {FIELDS values..., viewers, clickers, orderers, redeemers, median rank*2};
# then the period: {summed FIELDS..., union viewers, clickers, orderers, redeemers, median rank*2}.
# Aggregation happens here so only a few numbers cross the wire.
_READ = """
local totals_only = ARGV[1] == '1'
local fields = {}
for f in string.gmatch(ARGV[2], '%S+') do table.insert(fields, f) end
local function median2(hist)
  local n = 0
  for r = 1, 101 do n = n + hist[r] end
  if n == 0 then return -1 end
  local lo_i, hi_i = math.floor((n - 1) / 2), math.floor(n / 2)
  local seen, lo, hi = 0, nil, nil
  for r = 1, 101 do
    seen = seen + hist[r]
    if lo == nil and seen > lo_i then lo = r end
    if hi == nil and seen > hi_i then hi = r end
  end
  return lo + hi
end
local out, sums, period_hist = {}, {}, {}
for j = 1, #fields do sums[j] = 0 end
for r = 1, 101 do period_hist[r] = 0 end
local uvk, ck, ok, rdk = {}, {}, {}, {}
for i = 1, #KEYS, 5 do
  local sdk = KEYS[i]
  table.insert(uvk, KEYS[i + 1])
  table.insert(ck, KEYS[i + 2]); table.insert(ok, KEYS[i + 3]); table.insert(rdk, KEYS[i + 4])
  -- One HGETALL: the fields and the rank histogram (rk:N) are in the same small hash.
  local flat = redis.call('HGETALL', sdk)
  local h, day_hist = {}, {}
  for r = 1, 101 do day_hist[r] = 0 end
  for k = 1, #flat, 2 do
    local name = flat[k]
    if string.sub(name, 1, 3) == 'rk:' then
      local r = tonumber(string.sub(name, 4))
      day_hist[r] = tonumber(flat[k + 1]); period_hist[r] = period_hist[r] + day_hist[r]
    else
      h[name] = flat[k + 1]
    end
  end
  local row = {}
  for j = 1, #fields do
    local v = tonumber(h[fields[j]]) or 0
    sums[j] = sums[j] + v
    row[j] = tostring(v)
  end
  if not totals_only then
    table.insert(row, redis.call('PFCOUNT', uvk[#uvk]))
    table.insert(row, redis.call('PFCOUNT', ck[#ck]))
    table.insert(row, redis.call('PFCOUNT', ok[#ok]))
    table.insert(row, redis.call('PFCOUNT', rdk[#rdk]))
    table.insert(row, median2(day_hist))
    table.insert(out, row)
  end
end
local total = {}
for j = 1, #fields do total[j] = tostring(sums[j]) end
table.insert(total, redis.call('PFCOUNT', unpack(uvk)))
table.insert(total, redis.call('PFCOUNT', unpack(ck)))
table.insert(total, redis.call('PFCOUNT', unpack(ok)))
table.insert(total, redis.call('PFCOUNT', unpack(rdk)))
table.insert(total, median2(period_hist))
table.insert(out, total)
return out
"""


def read_many(
    r: redis.Redis,
    stores: list[str],
    days: list[str],
    surface: str | None,
    totals_only: bool = False,
    local_cells=None,
) -> list[tuple[list[dict], dict]]:
    """Per-day figures (empty with ``totals_only``) and period totals for several stores, one pipeline.

    ``local_cells(store)``: the fine cells around the store whose local searches count
    toward its share-of-search denominator (``local_requests``; 0 without it).
    """
    script = r.register_script(_READ)
    pipe = r.pipeline(transaction=False)
    for store in stores:
        day_keys = [
            k
            for day in days
            for k in (
                keys.sd(store, day),
                keys.uv(store, day, surface or "all"),
                keys.up(store, day, "click"),
                keys.up(store, day, "order"),
                keys.up(store, day, "redeem"),
            )
        ]
        scripts.queue(pipe, script, day_keys, [int(totals_only), " ".join(FIELDS)])
    if local_cells is not None:
        for store in stores:
            cells = list(local_cells(store))
            for day in days:
                pipe.hmget(keys.lreq_cells(day), cells) if cells else pipe.echo("")
    res = pipe.execute()
    out = [_parse(x, days, surface) for x in res[: len(stores)]]
    if local_cells is not None:
        found = iter(res[len(stores) :])
        for per_day, period in out:
            total = 0
            for i in range(len(days)):
                got = next(found)
                n = sum(int(v) for v in got if v is not None) if isinstance(got, list) else 0
                total += n
                if per_day:
                    per_day[i]["local_requests"] = n
            period["local_requests"] = total
    return out


def _parse(res, days, surface):
    per_day = [_figures(row, day, surface) for day, row in zip(days, res[:-1])]
    return per_day, _figures(res[-1], None, surface)


def _figures(row, day, surface) -> dict:
    vals = dict(zip(FIELDS, (float(x) for x in row[: len(FIELDS)])))
    viewers, clickers, orderers, redeemers, median2 = row[len(FIELDS) :]
    per_surface = {s: int(vals[f"imp:{s}"]) for s in SURFACES}
    fig = {
        "impressions": per_surface[surface] if surface else int(vals["imp"]),
        "impressions_by_surface": per_surface,
        "unique_viewers": int(viewers),
        "unique_clickers": int(clickers),
        "unique_orderers": int(orderers),
        "unique_redeemers": int(redeemers),
        "order_amount": round(vals["amount"], 2),
        "local_requests": 0,  # from the fine cells around the store (read_many's local_cells)
        "local_appeared": int(vals["loc"]),
        "_rank_sum": vals["rank_sum"],
        "_rank_n": vals["rank_n"],
        "_rank_median": None if int(median2) < 0 else int(median2) / 2,
    }
    fig.update({name: int(vals[f"ev:{kind}"]) for name, kind in EVENT_FIELDS.items()})
    return fig if day is None else {"date": day, **fig}


def previous_totals(
    r: redis.Redis, store_ids: list[str], days: list[str], surface: str | None, local_cells=None
) -> list[dict]:
    """Period totals of each store; cached, since past days change only by late events."""
    key = keys.previous_cache(days, surface, store_ids)
    cached = _cache_get(r, key)
    if cached is None:
        cached = [
            period
            for _none, period in read_many(r, store_ids, days, surface, totals_only=True, local_cells=local_cells)
        ]
        _cache_set(r, key, cached)
    return cached


def cached_peers(r: redis.Redis, store: str, days: list[str], surface: str | None, compute) -> dict:
    """The peer comparison of ``store``, from the cache or ``compute()`` (then cached)."""
    key = keys.peer_cache(store, days, surface)
    cached = _cache_get(r, key)
    if cached is None:
        cached = compute()
        _cache_set(r, key, cached)
    return cached


def viewer_cell_counts(r: redis.Redis, store_ids: list[str], days: list[str]) -> list[tuple[dict, dict]]:
    """Per store-day: (impressions by viewer cell, people by viewer cell)."""
    pipe = r.pipeline(transaction=False)
    for store in store_ids:
        for day in days:
            pipe.hgetall(keys.vc(store, day))
            pipe.hgetall(keys.vp(store, day))
    res = pipe.execute()
    decode = lambda h: {cell.decode(): int(n) for cell, n in h.items()}  # noqa: E731
    return [(decode(imp), decode(people)) for imp, people in zip(res[::2], res[1::2])]


def _cache_get(r, key):
    try:
        raw = r.get(key)
    except STORAGE_ERRORS:
        return None
    return json.loads(raw) if raw else None


def _cache_set(r, key, value) -> None:
    with contextlib.suppress(*STORAGE_ERRORS):  # a cache: a failed write only costs a recomputation
        r.set(key, json.dumps(value), ex=keys.STATS_CACHE_TTL_S)
