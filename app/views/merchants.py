"""Merchant visibility statistics: only ever the caller's own stores."""
from __future__ import annotations

import csv
import io
from datetime import date, timedelta

import numpy as np
import redis
from flask import Blueprint, current_app, jsonify, request

from app.storage import stats
from app.http.auth import require_merchant
from app.http.errors import Problem
from app.services import services
from app.http.openapi import documented
from app.http.params import parse_query
from app.http.schemas import ProblemBody, StatsQuery, StatsResponse, ViewersResponse
from app.storage.keys import CELL_DEG, vc

bp = Blueprint("merchants", __name__, url_prefix="/v1/merchants")
_SECURITY = [{"bearer": []}]
_PATH = {"merchant_id": {"description": "The merchant whose stores to read; a key reads only its own.",
                         "schema": {"type": "string", "minLength": 1, "maxLength": 128}}}
_PEERS = 20


@bp.get("/<merchant_id>/stats")
@documented(summary="Daily visibility and funnel of a merchant's stores", query=StatsQuery, path=_PATH,
            tags=["merchants"], security=_SECURITY, also={200: ["text/csv"]},
            responses={200: StatsResponse, 400: ProblemBody, 401: ProblemBody, 403: ProblemBody, 404: ProblemBody,
                       503: ProblemBody})
def merchant_stats(merchant_id: str):
    """Per store and day, plus period totals, change from the previous period, and same-category peers
    nearby. CSV with Accept: text/csv or format=csv."""
    svc, query, stores, start, end = _prepare(merchant_id)
    cfg = current_app.config
    threshold = cfg["STATS_PRIVACY_THRESHOLD"]
    days = stats.days_between(start, end)
    prev_start = start - (end - start) - timedelta(days=1)
    prev_days = stats.days_between(prev_start, start - timedelta(days=1))
    index = svc.index
    ids = [s for s, _p in stores]
    try:
        current = stats.read_many(svc.redis, ids, days, query.surface)
        previous = _previous_totals(svc, ids, prev_days, query.surface)
        out = []
        for (store, pos), (per_day, period), (_none, prev_period) in zip(stores, current, previous):
            totals = stats.finish(period, threshold)
            before = stats.finish(prev_period, threshold)
            out.append({"store_id": store, "name": index.column("name")[pos],
                        "category": index.categories[index.column("category")[pos]],
                        "days": [stats.finish(d, threshold) for d in per_day], "totals": totals,
                        "previous": before, "change": stats.change(totals, before),
                        "peers": _peers(svc, pos, merchant_id, days, query.surface, threshold)})
    except (redis.RedisError, OSError):
        raise Problem(503, "Statistics store unavailable; retry.", headers={"Retry-After": "5"}) from None
    body = {"merchant_id": merchant_id, "from": start.isoformat(), "to": end.isoformat(), "surface": query.surface,
            "privacy_threshold": threshold, "local_radius_m": cfg["STATS_LOCAL_RADIUS_M"], "stores": out}
    if query.format == "csv" or request.accept_mimetypes.best == "text/csv":
        return _csv(body)
    return jsonify(body)


@bp.get("/<merchant_id>/stats/viewers")
@documented(summary="Where a merchant's viewers were: impressions by grid cell", query=StatsQuery, path=_PATH,
            tags=["merchants"], security=_SECURITY,
            responses={200: ViewersResponse, 400: ProblemBody, 401: ProblemBody, 403: ProblemBody,
                       404: ProblemBody, 503: ProblemBody})
def merchant_viewers(merchant_id: str):
    """Cells of a fixed 0.01-degree grid (about 1.1 km north-south); cells under the privacy
    threshold are merged into one unlocated 'other' count."""
    svc, query, stores, start, end = _prepare(merchant_id)
    threshold = current_app.config["STATS_PRIVACY_THRESHOLD"]
    days = stats.days_between(start, end)
    try:
        pipe = svc.redis.pipeline(transaction=False)
        for store, _pos in stores:
            for day in days:
                pipe.hgetall(vc(store, day))
        counts: dict = {}
        for h in pipe.execute():
            for cell, n in h.items():
                counts[cell.decode()] = counts.get(cell.decode(), 0) + int(n)
    except (redis.RedisError, OSError):
        raise Problem(503, "Statistics store unavailable; retry.", headers={"Retry-After": "5"}) from None
    cells, other = [], 0
    for cell, n in sorted(counts.items()):
        if n < threshold:
            other += n
            continue
        la, lo = (int(x) for x in cell.split("_"))
        cells.append({"cell": cell, "min_lat": round(la * CELL_DEG, 6), "min_lon": round(lo * CELL_DEG, 6),
                      "max_lat": round((la + 1) * CELL_DEG, 6), "max_lon": round((lo + 1) * CELL_DEG, 6),
                      "impressions": n})
    return jsonify(merchant_id=merchant_id, cell_deg=CELL_DEG, privacy_threshold=threshold, cells=cells,
                   other=other)


def _prepare(merchant_id: str):
    svc = services()
    require_merchant(svc, merchant_id)
    query = parse_query(StatsQuery, request.args)
    start, end = query.from_, query.to
    if not (date(2000, 1, 1) <= start <= date(2100, 12, 31) and date(2000, 1, 1) <= end <= date(2100, 12, 31)):
        raise Problem(400, "Invalid date range.", [{"field": "from", "message": "dates must lie between "
                                                    "2000-01-01 and 2100-12-31"}])
    if end < start:
        raise Problem(400, "Invalid date range.", [{"field": "to", "message": "must not be before from"}])
    if (end - start).days + 1 > 366:
        raise Problem(400, "Invalid date range.", [{"field": "to", "message": "at most 366 days from 'from'"}])
    if svc.redis is None:
        raise Problem(503, "Statistics need Redis, which is off.")
    own = np.flatnonzero(svc.index.column("merchant_id") == merchant_id)
    own = [p for p in own.tolist() if svc.index.column("alive")[p]]
    stores = [(svc.index.column("store_id")[p], p) for p in own]
    if query.store_id is not None:
        stores = [s for s in stores if s[0] == query.store_id]
        if not stores:
            # Another merchant's store looks exactly like a missing one: nothing leaks.
            raise Problem(404, f"Merchant {merchant_id!r} has no store {query.store_id!r}.")
    if not stores:
        raise Problem(404, f"Merchant {merchant_id!r} has no stores in the catalogue.")
    return svc, query, stores, start, end


def _previous_totals(svc, ids, days, surface) -> list:
    """The previous period's totals; cached 10 minutes, since past days change only by late events."""
    key = f"o2o:v1:prevcache:{days[0]}:{days[-1]}:{surface or 'all'}:" + ",".join(ids)
    cached = stats.cache_get(svc.redis, key)
    if cached is not None:
        return [(None, period) for period in cached]
    res = stats.read_many(svc.redis, ids, days, surface, totals_only=True)
    stats.cache_set(svc.redis, key, [period for _none, period in res], 600)
    return res


def _peers(svc, pos: int, merchant_id: str, days, surface, threshold) -> dict:
    """Median of each figure over same-category stores of other merchants within the peer radius."""
    cfg = current_app.config
    index = svc.index
    key = f"o2o:v1:peercache:{index.column('store_id')[pos]}:{days[0]}:{days[-1]}:{surface or 'all'}"
    cached = stats.cache_get(svc.redis, key)
    if cached is not None:
        return cached
    cat = index.column("category")[pos]
    owner = index.column("merchant_id")
    others = index.column("category")

    def same_category_other_merchant(p):
        return (others[p] == cat) & (owner[p] != merchant_id)

    hits = index.nearest(float(index.column("lat")[pos]), float(index.column("lon")[pos]), _PEERS,
                         max_distance_m=cfg["STATS_PEER_RADIUS_M"], where=same_category_other_merchant)
    peers = [index.column("store_id")[p] for p in hits.positions.tolist()]
    totals = [stats.finish(period, 0) for _none, period in stats.read_many(svc.redis, peers, days, surface,
                                                                         totals_only=True)]
    result = {"stores": len(peers), "radius_m": cfg["STATS_PEER_RADIUS_M"], "median": stats.peer_median(totals)}
    if len(peers) < threshold:  # too few peers to show a median without exposing one of them
        result["median"] = None
    stats.cache_set(svc.redis, key, result, 600)
    return result


def _csv(body: dict):
    cols = ["store_id", "date", "impressions", *(f"impressions_{s}" for s in ("nearby", "recommended", "map",
                                                                               "detail")),
            "unique_viewers", "clicks", "detail_views", "directions", "calls", "website", "redemptions", "orders",
            "order_amount", "reviews", "unique_clickers", "unique_orderers", "unique_redeemers", "click_rate",
            "redeem_rate", "order_rate", "rank_mean", "rank_median", "local_requests", "local_appeared",
            "local_search_share"]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(cols)
    for s in body["stores"]:
        for d in s["days"]:
            by = d["impressions_by_surface"]
            w.writerow([s["store_id"], d["date"], d["impressions"], by["nearby"], by["recommended"], by["map"],
                        by["detail"], d["unique_viewers"], d["clicks"], d["detail_views"], d["directions"], d["calls"],
                        d["website"], d["redemptions"], d["orders"], d["order_amount"], d["reviews"],
                        d["unique_clickers"], d["unique_orderers"], d["unique_redeemers"], d["funnel"]["click_rate"],
                        d["funnel"]["redeem_rate"], d["funnel"]["order_rate"], d["rank"]["mean"],
                        d["rank"]["median"], d["local_requests"], d["local_appeared"], d["local_search_share"]])
    resp = current_app.response_class(buf.getvalue(), mimetype="text/csv")
    resp.headers["Content-Disposition"] = f'attachment; filename="stats-{body["merchant_id"]}.csv"'
    return resp

