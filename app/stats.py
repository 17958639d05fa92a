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

from .redis_store import PREFIX
from .stats_keys import SURFACES, uv

# ARGV: 1 prefix, 2 store, 3 surface|all, 4 lon, 5 lat, 6 radius_m, 7 today, 8 ttl, 9.. days
# Returns, per day: {flat hash, viewers, clickers, orderers, redeemers, local requests},
# then the period's union counts: viewers, clickers, orderers, redeemers.
_READ = """
local p, store, surface = ARGV[1], ARGV[2], ARGV[3]
local lreq_field = 'lreq:' .. ARGV[6]
local out = {}
local uvk, ck, ok, rk = {}, {}, {}, {}
for i = 9, #ARGV do
  local day = ARGV[i]
  local sdk = p .. 'sd:' .. store .. ':' .. day
  local base = p .. 'up:' .. store .. ':' .. day .. ':'
  local vkey = p .. 'uv:' .. store .. ':' .. day .. ':' .. surface
  table.insert(uvk, vkey); table.insert(ck, base .. 'click'); table.insert(ok, base .. 'order')
  table.insert(rk, base .. 'redeem')
  local lreq = redis.call('HGET', sdk, lreq_field)
  if not lreq then
    local rkey = p .. 'req:' .. day
    lreq = #redis.call('GEOSEARCH', rkey, 'FROMLONLAT', ARGV[4], ARGV[5], 'BYRADIUS', ARGV[6], 'm')
    -- A finished day no longer changes: keep its denominator beside the other rollups.
    if day < ARGV[7] and redis.call('EXISTS', rkey) == 1 then
      redis.call('HSET', sdk, lreq_field, lreq)
      redis.call('EXPIRE', sdk, ARGV[8])
    end
  end
  table.insert(out, {redis.call('HGETALL', sdk), redis.call('PFCOUNT', vkey), redis.call('PFCOUNT', base .. 'click'),
                     redis.call('PFCOUNT', base .. 'order'), redis.call('PFCOUNT', base .. 'redeem'), tonumber(lreq)})
end
table.insert(out, {redis.call('PFCOUNT', unpack(uvk)), redis.call('PFCOUNT', unpack(ck)),
                   redis.call('PFCOUNT', unpack(ok)), redis.call('PFCOUNT', unpack(rk))})
return out
"""

EVENT_FIELDS = {"clicks": "click", "detail_views": "detail_view", "directions": "directions", "calls": "call",
                "website": "website", "redemptions": "redeem", "orders": "order", "reviews": "review"}
UNIQUE_FIELDS = ("unique_viewers", "unique_clickers", "unique_orderers", "unique_redeemers")


def days_between(start: date, end: date) -> list[str]:
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def read_store(r: redis.Redis, store: str, lat: float, lon: float, days: list[str], surface: str | None,
               radius_m: float, today: str, ttl_s: int) -> tuple[list[dict], dict]:
    """Per-day raw figures and the period's unique counts for one store."""
    script = r.register_script(_READ)
    res = script(args=[PREFIX, store, surface or "all", lon, lat, radius_m, today, ttl_s, *days])
    return _parse(res, days, surface)


def read_many(r: redis.Redis, stores: list[tuple[str, float, float]], days: list[str], surface: str | None,
              radius_m: float, today: str, ttl_s: int) -> list[tuple[list[dict], dict]]:
    """``read_store`` for several stores in one pipeline."""
    script = r.register_script(_READ)
    pipe = r.pipeline(transaction=False)
    for store, lat, lon in stores:
        script(args=[PREFIX, store, surface or "all", lon, lat, radius_m, today, ttl_s, *days], client=pipe)
    return [_parse(res, days, surface) for res in pipe.execute()]


def _parse(res, days, surface):
    out = []
    for day, (flat, viewers, clickers, orderers, redeemers, lreq) in zip(days, res[:-1]):
        h = {flat[i].decode(): flat[i + 1].decode() for i in range(0, len(flat), 2)}
        out.append(_day_figures(day, h, viewers, clickers, orderers, redeemers, lreq, surface))
    v, c, o, rd = res[-1]
    return out, {"unique_viewers": v, "unique_clickers": c, "unique_orderers": o, "unique_redeemers": rd}


def _day_figures(day, h, viewers, clickers, orderers, redeemers, lreq, surface) -> dict:
    num = lambda k: int(float(h.get(k, 0)))  # noqa: E731
    per_surface = {s: num(f"imp:{s}") for s in SURFACES}
    hist = {int(k[3:]): int(v) for k, v in h.items() if k.startswith("rk:")}
    fig = {"date": day, "impressions": per_surface[surface] if surface else num("imp"),
           "impressions_by_surface": per_surface, "unique_viewers": viewers, "unique_clickers": clickers,
           "unique_orderers": orderers, "unique_redeemers": redeemers,
           "order_amount": round(float(h.get("amount", 0.0)), 2),
           "local_requests": int(lreq or 0), "local_appeared": num("loc"),
           "_rank_sum": num("rank_sum"), "_rank_n": num("rank_n"), "_rank_hist": hist}
    fig.update({name: num(f"ev:{kind}") for name, kind in EVENT_FIELDS.items()})
    return fig


def summarise(days: list[dict], uniques: dict) -> dict:
    """Period totals from per-day figures (unique counts are the period's unions)."""
    tot = {"impressions": sum(d["impressions"] for d in days),
           "impressions_by_surface": {s: sum(d["impressions_by_surface"][s] for d in days) for s in SURFACES},
           "order_amount": round(sum(d["order_amount"] for d in days), 2),
           "local_requests": sum(d["local_requests"] for d in days),
           "local_appeared": sum(d["local_appeared"] for d in days),
           "_rank_sum": sum(d["_rank_sum"] for d in days), "_rank_n": sum(d["_rank_n"] for d in days),
           "_rank_hist": _merge_hist(d["_rank_hist"] for d in days)}
    tot.update({name: sum(d[name] for d in days) for name in EVENT_FIELDS})
    tot.update(uniques)
    return tot


def _merge_hist(hists) -> dict:
    out: dict = {}
    for h in hists:
        for k, v in h.items():
            out[k] = out.get(k, 0) + v
    return out


def finish(fig: dict, threshold: int) -> dict:
    """Derived rates, rank mean/median, and the privacy threshold on unique counts."""
    out = {k: v for k, v in fig.items() if not k.startswith("_")}
    imp, clicks = fig["impressions"], fig["clicks"]
    out["funnel"] = {"click_rate": _rate(clicks, imp), "redeem_rate": _rate(fig["redemptions"], clicks),
                     "order_rate": _rate(fig["orders"], clicks),
                     "people": {"click_rate": _rate(fig["unique_clickers"], fig["unique_viewers"]),
                                "order_rate": _rate(fig["unique_orderers"], fig["unique_clickers"])}}
    out["rank"] = {"mean": round(fig["_rank_sum"] / fig["_rank_n"], 3) if fig["_rank_n"] else None,
                   "median": _hist_median(fig["_rank_hist"])}
    out["local_search_share"] = _rate(fig["local_appeared"], fig["local_requests"])
    for k in UNIQUE_FIELDS:
        if 0 < out[k] < threshold:
            out[k] = f"<{threshold}"  # as Google does: small unique counts are not shown
    if any(isinstance(out[k], str) for k in UNIQUE_FIELDS):
        out["funnel"]["people"] = {"click_rate": None, "order_rate": None}
    return out


def _rate(a, b):
    return round(a / b, 4) if b else None


def _hist_median(hist: dict):
    n = sum(hist.values())
    if not n:
        return None
    ranks = sorted(hist)
    cum = np.cumsum([hist[k] for k in ranks])
    lo = ranks[int(np.searchsorted(cum, (n + 1) // 2))]
    hi = ranks[int(np.searchsorted(cum, n // 2 + 1))]
    return (lo + hi) / 2


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
