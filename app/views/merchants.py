"""Merchant visibility statistics: only ever the caller's own stores."""

from __future__ import annotations

from datetime import date, timedelta

from flask import Blueprint, current_app, jsonify, request

from app.domain import stats
from app.domain.clock import days_between
from app.domain.grid import CELL_DEG, fine_cells_within
from app.http.auth import require_merchant
from app.http.errors import Problem, field_error, storage_or_503, unavailable
from app.http.openapi import documented
from app.http.params import parse_query
from app.http.schemas import ProblemBody, StatsQuery, StatsResponse, ViewersResponse
from app.services import Services, services
from app.storage import stats as stats_store

bp = Blueprint("merchants", __name__, url_prefix="/v1/merchants")
_SECURITY = [{"bearer": []}]
_PATH = {
    "merchant_id": {
        "description": "The merchant whose stores to read; a key reads only its own.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 128},
    }
}
_RESPONSES = {400: ProblemBody, 401: ProblemBody, 403: ProblemBody, 404: ProblemBody, 503: ProblemBody}
_PEERS = 20
_UNAVAILABLE = "Statistics store unavailable; retry."


@bp.get("/<merchant_id>/stats")
@documented(
    summary="Daily visibility and funnel of a merchant's stores",
    query=StatsQuery,
    path=_PATH,
    tags=["merchants"],
    security=_SECURITY,
    also={200: ["text/csv"]},
    responses={200: StatsResponse, **_RESPONSES},
)
def merchant_stats(merchant_id: str):
    """Per store and day, plus period totals, change from the previous period, and same-category peers
    nearby. CSV with Accept: text/csv or format=csv."""
    svc, query, stores, days = _prepare(merchant_id)
    threshold = current_app.config["STATS_PRIVACY_THRESHOLD"]
    ids = [s for s, _p in stores]
    with storage_or_503(_UNAVAILABLE):
        current = stats_store.read_many(svc.redis, ids, days, query.surface, local_cells=_local_cells(svc))
        previous = stats_store.previous_totals(
            svc.redis, ids, _previous_period(days), query.surface, local_cells=_local_cells(svc)
        )
        out = [
            _store_stats(svc, store, pos, merchant_id, per_day, period, prev, days, query.surface, threshold)
            for (store, pos), (per_day, period), prev in zip(stores, current, previous)
        ]
    body = {
        "merchant_id": merchant_id,
        "from": days[0],
        "to": days[-1],
        "surface": query.surface,
        "privacy_threshold": threshold,
        "local_radius_m": current_app.config["STATS_LOCAL_RADIUS_M"],
        "stores": out,
    }
    if query.format == "csv" or request.accept_mimetypes.best == "text/csv":
        resp = current_app.response_class(stats.to_csv(body), mimetype="text/csv")
        resp.headers["Content-Disposition"] = f'attachment; filename="stats-{merchant_id}.csv"'
        return resp
    return jsonify(body)


@bp.get("/<merchant_id>/stats/viewers")
@documented(
    summary="Where a merchant's viewers were: impressions by grid cell",
    query=StatsQuery,
    path=_PATH,
    tags=["merchants"],
    security=_SECURITY,
    responses={200: ViewersResponse, **_RESPONSES},
)
def merchant_viewers(merchant_id: str):
    """Cells of a fixed 0.01-degree grid (about 1.1 km north-south). A cell's impressions of a
    store and day are located only when at least the privacy threshold of different people saw
    the store from there that day; the rest are merged into one unlocated 'other' count."""
    svc, _query, stores, days = _prepare(merchant_id)
    threshold = current_app.config["STATS_PRIVACY_THRESHOLD"]
    with storage_or_503(_UNAVAILABLE):
        counts = stats_store.viewer_cell_counts(svc.redis, [s for s, _p in stores], days)
    cells, other = stats.viewer_cells(counts, threshold)
    return jsonify(merchant_id=merchant_id, cell_deg=CELL_DEG, privacy_threshold=threshold, cells=cells, other=other)


def _prepare(merchant_id: str):
    """(services, query, [(store_id, position)], days): the caller's own stores and a checked range."""
    svc = services()
    require_merchant(svc, merchant_id)
    query = parse_query(StatsQuery, request.args)
    start, end = query.from_, query.to
    if not (date(2000, 1, 1) <= start <= date(2100, 12, 31) and date(2000, 1, 1) <= end <= date(2100, 12, 31)):
        raise _bad_range("from", "dates must lie between 2000-01-01 and 2100-12-31")
    if end < start:
        raise _bad_range("to", "must not be before from")
    if (end - start).days + 1 > 366:
        raise _bad_range("to", "at most 366 days from 'from'")
    if svc.redis is None:
        raise unavailable("Statistics need Redis, which is off.")
    index = svc.index
    own = index.stores_of(merchant_id).tolist()
    stores = [(index.column("store_id")[p], p) for p in own]
    if query.store_id is not None:
        stores = [s for s in stores if s[0] == query.store_id]
        if not stores:
            # Another merchant's store looks exactly like a missing one: nothing leaks.
            raise Problem(404, f"Merchant {merchant_id!r} has no store {query.store_id!r}.")
    if not stores:
        raise Problem(404, f"Merchant {merchant_id!r} has no stores in the catalogue.")
    return svc, query, stores, days_between(start, end)


def _local_cells(svc: Services):
    """store id -> the fine cells of its local-search circle (``O2O_STATS_LOCAL_RADIUS_M``)."""
    radius, index = current_app.config["STATS_LOCAL_RADIUS_M"], svc.index

    def cells(store: str):
        pos = index.position(store)
        lat, lon = float(index.column("lat")[pos]), float(index.column("lon")[pos])
        return fine_cells_within(round(lat, 7), round(lon, 7), radius)

    return cells


def _bad_range(field: str, message: str) -> Problem:
    return Problem(400, "Invalid date range.", [field_error(field, message)])


def _previous_period(days: list[str]) -> list[str]:
    """The same number of days just before ``days``."""
    start, end = date.fromisoformat(days[0]), date.fromisoformat(days[-1])
    return days_between(start - (end - start) - timedelta(days=1), start - timedelta(days=1))


def _store_stats(svc: Services, store, pos, merchant_id, per_day, period, prev, days, surface, threshold) -> dict:
    totals, before = stats.finish(period, threshold), stats.finish(prev, threshold)
    index = svc.index
    return {
        "store_id": store,
        "name": index.column("name")[pos],
        "category": index.categories[index.column("category")[pos]],
        "days": [stats.finish(d, threshold) for d in per_day],
        "totals": totals,
        "previous": before,
        "change": stats.change(totals, before),
        "peers": stats_store.cached_peers(
            svc.redis, store, days, surface, lambda: _peers(svc, pos, merchant_id, days, surface, threshold)
        ),
    }


def _peers(svc: Services, pos: int, merchant_id: str, days, surface, threshold) -> dict:
    """Median of each figure over same-category stores of other merchants within the peer radius."""
    radius = current_app.config["STATS_PEER_RADIUS_M"]
    index = svc.index
    cat, owner, cats = index.column("category")[pos], index.column("merchant_id"), index.column("category")

    def same_category_other_merchant(p):
        return (cats[p] == cat) & (owner[p] != merchant_id)

    hits = index.nearest(
        float(index.column("lat")[pos]),
        float(index.column("lon")[pos]),
        _PEERS,
        max_distance_m=radius,
        where=same_category_other_merchant,
    )
    peers = [index.column("store_id")[p] for p in hits.positions.tolist()]
    totals = [
        stats.finish(period, 0)
        for _none, period in stats_store.read_many(
            svc.redis, peers, days, surface, totals_only=True, local_cells=_local_cells(svc)
        )
    ]
    # Too few peers to show a median without exposing one of them.
    median = stats.peer_median(totals) if len(peers) >= threshold else None
    return {"stores": len(peers), "radius_m": radius, "median": median}
