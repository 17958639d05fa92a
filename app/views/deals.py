"""Personalised deal lists."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from app.domain.ranking import paginate, rank_deals, reasons
from app.http import paging, ratelimit
from app.http.openapi import USER_OPTIONAL, documented
from app.http.params import parse_query
from app.http.schemas import ProblemBody, RecommendedQuery, RecommendedResponse
from app.http.users import request_user
from app.http.viewer import request_viewer, token_signer
from app.services import Services, services
from app.storage.client import STORAGE_ERRORS
from app.storage.events import read_user_state

bp = Blueprint("deals", __name__, url_prefix="/v1/deals")
#: Pages a deal list runs to: each page walks the ones before it (diversity defers deals),
#: so the bound keeps any cursor's work small. 100 pages of up to 50 deals.
MAX_PAGES = 100


def deals_key_ok(key) -> bool:
    return isinstance(key, list) and len(key) == 3 and paging.is_int(key[0], 1, MAX_PAGES - 1)


@bp.get("/recommended")
@ratelimit.charged_in_view  # its hit rides on the user-state read, after the bounded spatial search
@documented(
    summary="Deals near a point, ranked for the user",
    security=USER_OPTIONAL,
    query=RecommendedQuery,
    tags=["deals"],
    responses={200: RecommendedResponse, 400: ProblemBody, 401: ProblemBody},
)
def recommended():
    """Active deals with quota left at stores in range, ranked by the served blend, diversified per page."""
    query = parse_query(RecommendedQuery, request.args)
    svc, cfg = services(), current_app.config
    svc.models.maybe_reload(svc.redis)
    scorer = svc.models.scorer  # one reference for the whole request, even across a reload
    fp = paging.fingerprint(query.model_dump(exclude={"cursor", "limit", "explain"}))
    page, evaluated_at = 0, svc.now()
    user = request_user(evaluated_at)
    if query.cursor:
        state = paging.decode(cfg["SECRET_KEY"], query.cursor, fp, deals_key_ok)
        page, evaluated_at = state["k"][0], state["t"]
    ordered: set[str] = set()

    def fetch_state(deal_ids):
        redeemed, used, stores = _user_state(svc, user, deal_ids)
        ordered.update(stores)
        return redeemed, used

    ranked, quota_used = rank_deals(svc.index, svc.deals, scorer, svc.models, query, user, evaluated_at, fetch_state)
    picked, more = paginate(
        ranked, svc.deals, svc.index, query.limit, page, cfg["DEALS_PER_STORE"], cfg["DEALS_PER_CATEGORY"]
    )
    opened = svc.index.open_now(svc.deals.store_pos[ranked.rows[picked]], evaluated_at)  # the page at once
    out = _deals_json(svc, ranked, picked, evaluated_at, quota_used, opened)
    if query.explain:
        taste = scorer.category_shares(user) if scorer is not None else {}
        for row, j in zip(out, picked):
            row["reasons"] = reasons(ranked, j, svc.deals, svc.index, scorer, ordered, taste)
    now = svc.now()
    viewer = request_viewer(user, now)
    shown = [(d["store_id"], page * query.limit + i + 1, d["deal_id"]) for i, d in enumerate(out)]
    sign = token_signer("recommended", viewer, now)
    for d, (store, rank, deal) in zip(out, shown):
        d["impression_token"] = sign.token(store, rank, deal)
    svc.impressions.log("recommended", viewer, query.lat, query.lon, shown, now)
    more = more and page + 1 < MAX_PAGES
    cursor = paging.encode(cfg["SECRET_KEY"], fp, [page + 1, 0, ""], evaluated_at.isoformat()) if more else None
    return jsonify(deals=out, next_cursor=cursor, model_version=scorer.version if scorer else None)


def _user_state(svc: Services, user_id: str | None, deal_ids: list[str]):
    """(deals the user redeemed, redemptions per deal, stores the user ordered at); without
    Redis only the base history is known and every quota counts as free.

    The request's rate-limit hit goes in the same round trip (a 429 from here on)."""
    ordered = set(svc.history.get(user_id, ())) if user_id else set()
    if svc.redis is not None and svc.breaker.closed:
        try:
            redeemed, used, stores = read_user_state(svc.redis, user_id, deal_ids, also=ratelimit.deferred_hits())
            return redeemed, used, ordered | stores
        except STORAGE_ERRORS as exc:
            svc.breaker.failed(exc, "quota and redemption checks")
    ratelimit.charge_deferred()  # Redis is out: the per-process limiter counts it, before the ranking
    return set(), {}, ordered


def _deals_json(svc: Services, ranked, picked, at, quota_used, opened: list) -> list[dict]:
    """The page's deals as JSON objects; each column is read once for the page, as a list."""
    deals, index = svc.deals, svc.index
    rows = ranked.rows[picked]
    pos = deals.store_pos[rows]
    codes = index.column("hours_code")[pos].tolist()
    categories = [index.categories[c] for c in index.column("category")[pos].tolist()]
    ids = deals.ids[rows].tolist()
    columns = zip(
        ids,
        deals.store_ids[rows].tolist(),
        index.column("name")[pos].tolist(),
        categories,
        deals.titles[rows].tolist(),
        deals.discount[rows].tolist(),
        deals.starts_iso[rows].tolist(),
        deals.ends_iso[rows].tolist(),
        ranked.distances[picked].tolist(),
        ranked.score[picked].tolist(),
        opened,
        codes,
        deals.quota[rows].tolist(),
    )
    out = []
    for deal, store, name, category, title, discount, starts, ends, dist, score, is_open, code, q in columns:
        opens = index.schedules.next_open(code, at) if is_open is False else None
        out.append(
            {
                "deal_id": deal,
                "store_id": store,
                "store_name": name,
                "category": category,
                "title": title,
                "discount_pct": discount,
                "starts_at": starts,
                "ends_at": ends,
                "distance_m": round(dist, 2),
                "score": round(score, 6),
                "open_now": is_open,
                "opens_at": opens.isoformat() if opens else None,
                "quota_left": None if q != q else int(max(0, q - quota_used.get(deal, 0))),
            }
        )
    return out
