"""Store search and details."""

from __future__ import annotations

from datetime import datetime

import numpy as np
from flask import Blueprint, current_app, jsonify, request

from app.domain.search import nearby as search_nearby
from app.http import paging
from app.http.errors import Problem
from app.http.openapi import USER_OPTIONAL, documented
from app.http.params import parse_query
from app.http.schemas import DetailQuery, NearbyQuery, NearbyResponse, ProblemBody, StoreDetail
from app.http.users import request_user
from app.http.viewer import request_viewer, token_signer
from app.services import services

bp = Blueprint("stores", __name__, url_prefix="/v1/stores")

_PAGE_INDEPENDENT = ("cursor", "limit", "fields")
#: Rows a cursor may say were shown before it (it ranks impressions: kept to sane numbers).
MAX_SHOWN = 1_000_000


def nearby_key_ok(key) -> bool:
    """A nearby cursor key: [sort primary, metres, store id, rows shown so far]."""
    return (
        isinstance(key, list)
        and len(key) == 4
        and paging.is_number(key[0], -1e15, 1e15)
        and paging.is_number(key[1], 0.0, 1e8)
        and isinstance(key[2], str)
        and len(key[2]) <= 256
        and paging.is_int(key[3], 0, MAX_SHOWN)
    )


@bp.get("/nearby")
@documented(
    summary="Stores near a point: filtered, sorted, paged",
    security=USER_OPTIONAL,
    query=NearbyQuery,
    tags=["stores"],
    responses={200: NearbyResponse, 400: ProblemBody, 401: ProblemBody},
)
def nearby():
    """Exact great-circle search. Walking next_cursor returns every match once, in order."""
    query = parse_query(NearbyQuery, request.args)
    fp = paging.fingerprint(query.model_dump(exclude=set(_PAGE_INDEPENDENT)))
    secret = current_app.config["SECRET_KEY"]
    svc = services()
    after, evaluated_at = None, svc.now()
    if query.cursor:
        state = paging.decode(secret, query.cursor, fp, nearby_key_ok)
        after, evaluated_at = state["k"], state["t"]
    user = request_user(svc.now())
    personal = _personal_primary(svc, user) if query.sort == "personalised" else None
    page = search_nearby(svc.index, query, evaluated_at, after, current_app.config["RANKED_RADIUS_M"], personal)
    stores = store_rows(svc.index, page.positions, page.distances_m, evaluated_at, query.fields)
    # The cursor key is (primary, distance, id, rows shown so far): the count ranks impressions.
    rank0 = 0 if after is None else after[3]
    cursor = (
        None
        if page.last_key is None
        else paging.encode(secret, fp, page.last_key + [rank0 + len(stores)], evaluated_at.isoformat())
    )
    now = svc.now()
    viewer = request_viewer(user, now)
    sign = token_signer("nearby", viewer, now)
    for i, s in enumerate(stores):
        s["impression_token"] = sign.token(s["id"], rank0 + i + 1)
    svc.impressions.log(
        "nearby", viewer, query.lat, query.lon, [(s["id"], rank0 + i + 1, None) for i, s in enumerate(stores)], now
    )
    return jsonify(stores=stores, next_cursor=cursor, radius_m=page.radius_m, evaluated_at=evaluated_at.isoformat())


@bp.get("/<store_id>")
@documented(
    summary="One store with open_now, next_open and next_close",
    security=USER_OPTIONAL,
    tags=["stores"],
    query=DetailQuery,
    path={
        "store_id": {
            "description": "A store_id from the catalogue, e.g. osm-n1007416273",
            "schema": {"type": "string", "minLength": 1, "maxLength": 128},
        }
    },
    responses={200: StoreDetail, 400: ProblemBody, 401: ProblemBody, 404: ProblemBody},
)
def detail(store_id: str):
    """Full details of one store."""
    parse_query(DetailQuery, request.args)
    svc = services()
    user = request_user(svc.now())
    index = svc.index
    pos = index.position(store_id)
    if pos is None:
        raise Problem(404, f"No store with id {store_id[:128]!r}. Ids come from /v1/stores/nearby.")
    at = svc.now()
    row = store_rows(index, np.array([pos]), None, at, ())[0]
    code = int(index.column("hours_code")[pos])
    schedule = index.schedules.schedules[code] if code >= 0 else None
    row["next_open"] = _iso(schedule.next_open(at)) if schedule else None
    row["next_close"] = _iso(schedule.next_close(at)) if schedule else None
    viewer = request_viewer(user, at)
    row["impression_token"] = token_signer("detail", viewer, at).token(store_id, 1)
    svc.impressions.log("detail", viewer, row["lat"], row["lon"], [(store_id, 1, None)], at)
    return jsonify(row)


def _personal_primary(svc, user: str | None):
    """sort=personalised: minus the served blend of preference and distance (lower sorts first)."""
    svc.models.maybe_reload(svc.redis)
    scorer = svc.models.scorer
    if scorer is None:
        return None
    state = scorer.user_state(user)
    ids = svc.index.column("store_id")

    def primary(positions, distances):
        store_ids = ids[positions].tolist()
        svc.models.ensure_items(scorer, store_ids)
        pref = scorer.score_rows(state, scorer.rows_for(store_ids)).astype(float)
        return -np.round(scorer.blend.combine(pref, distances), 9)

    return primary


def store_rows(index, positions, distances, at: datetime, fields) -> list[dict]:
    """JSON-ready store dicts; ``fields`` narrows them (id and distance_m always stay)."""
    opened = index.open_now(positions, at)
    rows = index.records(positions)
    dist = None if distances is None else np.round(distances, 2).tolist()
    wanted = (set(fields) | {"id", "distance_m"}) if fields else None
    for i, rec in enumerate(rows):
        rec["open_now"] = opened[i]
        if dist is not None:
            rec["distance_m"] = dist[i]
        if wanted is not None:
            rows[i] = {k: v for k, v in rec.items() if k in wanted}
    return rows


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
