"""Personalised deal lists."""
from __future__ import annotations

from datetime import datetime

import redis
from flask import Blueprint, current_app, jsonify, request

from app.http import paging
from app.storage.events import DEAL_REDEMPTIONS
from app.services import services
from app.storage.impressions import log_impressions, viewer_id
from app.http.openapi import documented
from app.http.params import parse_query
from app.domain.ranking import paginate, rank_deals, reasons
from app.storage.client import PREFIX
from app.http.schemas import ProblemBody, RecommendedQuery, RecommendedResponse
from app.views.stores import now

bp = Blueprint("deals", __name__, url_prefix="/v1/deals")


@bp.get("/recommended")
@documented(summary="Deals near a point, ranked for the user", query=RecommendedQuery, tags=["deals"],
            responses={200: RecommendedResponse, 400: ProblemBody})
def recommended():
    """Active deals with quota left at stores in range, ranked by the served blend, diversified per page."""
    query = parse_query(RecommendedQuery, request.args)
    svc = services()
    svc.models.maybe_reload(svc.redis)
    scorer = svc.models.scorer  # one reference for the whole request, even across a reload
    fp = paging.fingerprint(query.model_dump(exclude={"cursor", "limit", "explain"}))
    page, evaluated_at = 0, now()
    if query.cursor:
        state = paging.decode(current_app.config["SECRET_KEY"], query.cursor, fp)
        page, evaluated_at = int(state["k"][0]), datetime.fromisoformat(state["t"])
    ordered = set()
    taste = _taste(scorer, query.user_id)

    def fetch_state(deal_ids):
        redeemed, used, stores = _user_state(svc, query.user_id, deal_ids)
        ordered.update(stores)
        return redeemed, used

    ranked, quota_used = rank_deals(svc.index, svc.deals, scorer, svc.models, query, evaluated_at, fetch_state)
    picked, more = paginate(ranked, svc.deals, svc.index, query.limit, page,
                            current_app.config["DEALS_PER_STORE"], current_app.config["DEALS_PER_CATEGORY"])
    out = [_deal_json(svc, ranked, j, evaluated_at, quota_used) for j in picked]
    if query.explain:
        for row, j in zip(out, picked):
            row["reasons"] = reasons(ranked, j, svc.deals, svc.index, scorer, ordered, taste)
    viewer = viewer_id(query.user_id, request.headers.get("X-Client-Id"), request.remote_addr,
                       evaluated_at.date().isoformat())
    log_impressions(svc, "recommended", viewer, query.lat, query.lon,
                    [(d["store_id"], page * query.limit + i + 1, d["deal_id"]) for i, d in enumerate(out)], now())
    cursor = paging.encode(current_app.config["SECRET_KEY"], fp, [page + 1, 0, ""], evaluated_at.isoformat()) \
        if more else None
    return jsonify(deals=out, next_cursor=cursor, model_version=scorer.version if scorer else None)


def _user_state(svc, user_id, deal_ids):
    """(deals the user redeemed, redemptions per deal, stores the user ordered at), in one
    round trip; without Redis only the base history is known and every quota counts as free."""
    ordered = set(svc.history.get(user_id, ())) if user_id else set()
    if svc.redis is None or not svc.breaker.closed:
        return set(), {}, ordered
    try:
        pipe = svc.redis.pipeline(transaction=False)
        if user_id:
            pipe.smembers(PREFIX + f"user:{user_id}:redeemed")
            pipe.smembers(PREFIX + f"user:{user_id}:stores")
        if deal_ids:
            pipe.hmget(DEAL_REDEMPTIONS, deal_ids)
        res = pipe.execute()
    except (redis.RedisError, OSError) as exc:
        svc.breaker.failed(exc, "quota and redemption checks")
        return set(), {}, ordered
    used = {d: int(v) for d, v in zip(deal_ids, res[-1]) if v is not None} if deal_ids else {}
    if user_id:
        return {x.decode() for x in res[0]}, used, ordered | {x.decode() for x in res[1]}
    return set(), used, ordered


def _taste(scorer, user_id) -> dict:
    """The known user's category shares, from their ``ucat=`` features."""
    if scorer is None or user_id is None:
        return {}
    space = scorer.space
    row = space.user_index_.get(user_id)
    if row is None:
        return {}
    m = space.user_matrix()
    n_ids = len(space.user_ids_) if space.config.identity else 0
    names = space.user_feature_names
    cols, vals = m.indices[m.indptr[row]:m.indptr[row + 1]], m.data[m.indptr[row]:m.indptr[row + 1]]
    cats = {names[c - n_ids][5:]: float(v) for c, v in zip(cols, vals) if c >= n_ids and names[c - n_ids].startswith("ucat=")}
    total = sum(cats.values()) or 1.0
    return {c: v / total for c, v in cats.items()}


def _deal_json(svc, ranked, j, at, quota_used) -> dict:
    deals, index = svc.deals, svc.index
    r = ranked.rows[j]
    pos = int(deals.store_pos[r])
    code = int(index.column("hours_code")[pos])
    is_open = index.schedules.is_open(code, at) if code >= 0 else None
    opens = index.schedules.next_open(code, at) if code >= 0 and not is_open else None
    quota = deals.quota[r]
    return {
        "deal_id": deals.ids[r], "store_id": deals.store_ids[r], "store_name": index.column("name")[pos],
        "category": index.categories[index.column("category")[pos]], "title": deals.titles[r],
        "discount_pct": float(deals.discount[r]),
        "starts_at": _iso(deals.starts[r]), "ends_at": _iso(deals.ends[r]),
        "distance_m": round(float(ranked.distances[j]), 2), "score": round(float(ranked.score[j]), 6),
        "open_now": is_open, "opens_at": opens.isoformat() if opens else None,
        "quota_left": None if quota != quota else int(max(0, quota - quota_used.get(deals.ids[r], 0))),
    }


def _iso(t) -> str:
    return str(t.astype("datetime64[s]")) + "Z"
