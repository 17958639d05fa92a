"""Merchant statistics: read the daily rollups and turn them into figures.

One Lua call per store reads every day of the range server-side (the hash, the HLL
counts, and the share-of-local-search denominator), so a 90-day read of 10 stores is
ten round trips' worth of work in one pipeline, not thousands of commands.
"""
from __future__ import annotations

import json
from datetime import date, timedelta

import numpy as np
import redis

from app.storage.client import PREFIX
from app.storage.keys import SURFACES

# Fields summed per day, in this order (the Lua script and _parse share it).
FIELDS = ("imp", "imp:nearby", "imp:recommended", "imp:map", "imp:detail", "ev:click", "ev:detail_view",
          "ev:directions", "ev:call", "ev:website", "ev:redeem", "ev:order", "ev:review", "amount", "rank_sum",
          "rank_n", "loc", "lreq")
MAX_RANK = 101

# ARGV: 1 prefix, 2 store, 3 surface|all, 4 totals_only (0|1), 5 fields (space-separated), 6.. days
# Per day (unless totals_only): {FIELDS values..., viewers, clickers, orderers, redeemers, median rank*2};
# then the period: {summed FIELDS..., union viewers, clickers, orderers, redeemers, median rank*2}.
# Aggregation happens here so only a few numbers cross the wire.
_READ = """
local p, store, surface, totals_only = ARGV[1], ARGV[2], ARGV[3], ARGV[4] == '1'
local fields = {}
for f in string.gmatch(ARGV[5], '%S+') do table.insert(fields, f) end
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
for i = 6, #ARGV do
  local day = ARGV[i]
  local sdk = p .. 'sd:' .. store .. ':' .. day
  local base = p .. 'up:' .. store .. ':' .. day .. ':'
  table.insert(uvk, p .. 'uv:' .. store .. ':' .. day .. ':' .. surface)
  table.insert(ck, base .. 'click'); table.insert(ok, base .. 'order'); table.insert(rdk, base .. 'redeem')
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

EVENT_FIELDS = {"clicks": "click", "detail_views": "detail_view", "directions": "directions", "calls": "call",
                "website": "website", "redemptions": "redeem", "orders": "order", "reviews": "review"}
UNIQUE_FIELDS = ("unique_viewers", "unique_clickers", "unique_orderers", "unique_redeemers")


def days_between(start: date, end: date) -> list[str]:
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def read_many(r: redis.Redis, stores: list[str], days: list[str], surface: str | None,
              totals_only: bool = False) -> list[tuple[list[dict], dict]]:
    """Per-day figures (empty with ``totals_only``) and period totals for several stores, one pipeline."""
    script = r.register_script(_READ)
    pipe = r.pipeline(transaction=False)
    for store in stores:
        script(args=[PREFIX, store, surface or "all", int(totals_only), " ".join(FIELDS), *days], client=pipe)
    return [_parse(res, days, surface) for res in pipe.execute()]


def _parse(res, days, surface):
    per_day = [_figures(row, day, surface) for day, row in zip(days, res[:-1])]
    return per_day, _figures(res[-1], None, surface)


def _figures(row, day, surface) -> dict:
    vals = dict(zip(FIELDS, (float(x) for x in row[: len(FIELDS)])))
    viewers, clickers, orderers, redeemers, median2 = row[len(FIELDS):]
    per_surface = {s: int(vals[f"imp:{s}"]) for s in SURFACES}
    fig = {"impressions": per_surface[surface] if surface else int(vals["imp"]),
           "impressions_by_surface": per_surface, "unique_viewers": int(viewers), "unique_clickers": int(clickers),
           "unique_orderers": int(orderers), "unique_redeemers": int(redeemers),
           "order_amount": round(vals["amount"], 2), "local_requests": int(vals["lreq"]),
           "local_appeared": int(vals["loc"]), "_rank_sum": vals["rank_sum"], "_rank_n": vals["rank_n"],
           "_rank_median": None if int(median2) < 0 else int(median2) / 2}
    fig.update({name: int(vals[f"ev:{kind}"]) for name, kind in EVENT_FIELDS.items()})
    return fig if day is None else {"date": day, **fig}


def finish(fig: dict, threshold: int) -> dict:
    """Derived rates, rank mean/median, and the privacy threshold on unique counts."""
    out = {k: v for k, v in fig.items() if not k.startswith("_")}
    imp, clicks = fig["impressions"], fig["clicks"]
    out["funnel"] = {"click_rate": _rate(clicks, imp), "redeem_rate": _rate(fig["redemptions"], clicks),
                     "order_rate": _rate(fig["orders"], clicks),
                     "people": {"click_rate": _rate(fig["unique_clickers"], fig["unique_viewers"]),
                                "order_rate": _rate(fig["unique_orderers"], fig["unique_clickers"])}}
    out["rank"] = {"mean": round(fig["_rank_sum"] / fig["_rank_n"], 3) if fig["_rank_n"] else None,
                   "median": fig["_rank_median"]}
    out["local_search_share"] = _rate(fig["local_appeared"], fig["local_requests"])
    for k in UNIQUE_FIELDS:
        if 0 < out[k] < threshold:
            out[k] = f"<{threshold}"  # as Google does: small unique counts are not shown
    if any(isinstance(out[k], str) for k in UNIQUE_FIELDS):
        out["funnel"]["people"] = {"click_rate": None, "order_rate": None}
    return out


def _rate(a, b):
    return round(a / b, 4) if b else None


NUMERIC = ("impressions", "clicks", "detail_views", "directions", "calls", "website", "redemptions", "orders",
           "reviews", "order_amount", "unique_viewers", "local_search_share")


def change(current: dict, previous: dict) -> dict:
    """Relative change of each headline figure from the previous period (None: nothing before)."""
    out = {}
    for k in NUMERIC:
        a, b = current.get(k), previous.get(k)
        out[k] = round((a - b) / b, 4) if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None
    return out


def peer_median(peer_totals: list[dict]) -> dict:
    out = {}
    for k in NUMERIC:
        vals = [t[k] for t in peer_totals if isinstance(t.get(k), (int, float))]
        out[k] = round(float(np.median(vals)), 4) if vals else None
    return out


def cache_get(r, key):
    try:
        raw = r.get(key)
    except (redis.RedisError, OSError):
        return None
    return json.loads(raw) if raw else None


def cache_set(r, key, value, ttl_s: int) -> None:
    try:
        r.set(key, json.dumps(value), ex=ttl_s)
    except (redis.RedisError, OSError):
        pass
