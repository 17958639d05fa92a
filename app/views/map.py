"""Map widgets: stores in the visible area as GeoJSON, clustered at low zoom."""

from __future__ import annotations

import numpy as np
from flask import Blueprint, current_app, jsonify, request

from app.domain import clusters
from app.http import paging
from app.http.errors import Problem, field_error
from app.http.openapi import USER_OPTIONAL, documented
from app.http.params import parse_query
from app.http.schemas import FeatureCollection, LeavesQuery, MapQuery, ProblemBody
from app.http.users import request_user
from app.http.viewer import request_viewer, token_signer
from app.services import services
from geo_index import StoreFilter

bp = Blueprint("map", __name__, url_prefix="/v1/map")
#: At POINTS_FROM_ZOOM and above, at most this many stores come back (ordered by id).
MAX_POINTS = 5000


@bp.get("/stores")
@documented(
    summary="Stores in a bounding box as GeoJSON, clustered below zoom 17",
    security=USER_OPTIONAL,
    query=MapQuery,
    tags=["map"],
    responses={200: FeatureCollection, 400: ProblemBody, 401: ProblemBody},
)
def map_stores():
    """Filters apply before clustering; clusters sit on a world-anchored grid, so panning keeps them."""
    query = parse_query(MapQuery, request.args)
    svc = services()
    at = svc.now()
    has_deal = _deal_mask(svc, at)
    positions = _filtered(svc, query, at, has_deal)
    lat, lon = svc.index.column("lat")[positions], svc.index.column("lon")[positions]
    groups, singles = clusters.cluster(positions, lat, lon, query.zoom)
    secret = current_app.config["SECRET_KEY"]
    params = _filter_params()
    features = [_cluster_feature(svc, g, secret, params, has_deal) for g in groups]
    truncated = len(singles) > MAX_POINTS
    singles = singles[:MAX_POINTS]
    viewer = request_viewer(request_user(at), at)
    features += _point_features(svc, singles, has_deal, at, token_signer("map", viewer, at))
    centre_lat = (query.bbox[1] + query.bbox[3]) / 2
    svc.impressions.log(
        "map",
        viewer,
        centre_lat,
        _centre_lon(query.bbox),
        [(svc.index.column("store_id")[p], i + 1, None) for i, p in enumerate(singles.tolist())],
        at,
    )
    return jsonify(type="FeatureCollection", features=features, total=int(len(positions)), truncated=truncated)


@bp.get("/clusters/<cluster_id>/leaves")
@documented(
    summary="The stores of one cluster, paged",
    query=LeavesQuery,
    tags=["map"],
    path={
        "cluster_id": {
            "description": "cluster_id from /v1/map/stores",
            "schema": {"type": "string", "minLength": 1, "maxLength": 2048},
        }
    },
    responses={200: FeatureCollection, 400: ProblemBody},
)
def cluster_leaves(cluster_id: str):
    """Exactly the cluster's members (same filters, same cell), ordered by store id."""
    page = parse_query(LeavesQuery, request.args)
    svc = services()
    data = paging.verify(current_app.config["SECRET_KEY"], cluster_id)
    if data is None or not _cluster_ok(data):
        raise Problem(
            400,
            "Invalid cluster_id.",
            [
                field_error(
                    "cluster_id",
                    "not issued by this service, or altered",
                    "pass it exactly as /v1/map/stores returned it",
                )
            ],
        )
    query = parse_query(MapQuery, _multidict(data["q"]))
    at = svc.now()
    has_deal = _deal_mask(svc, at)
    positions = _filtered(svc, query, at, has_deal)
    members = clusters.members_of(
        positions,
        svc.index.column("lat")[positions],
        svc.index.column("lon")[positions],
        int(data["z"]),
        int(data["x"]),
        int(data["y"]),
    )
    members = np.sort(members)
    chunk = members[page.offset : page.offset + page.limit]
    return jsonify(
        type="FeatureCollection",
        features=_point_features(svc, chunk, has_deal, at),
        total=int(len(members)),
        truncated=False,
    )


def _filtered(svc, query: MapQuery, at, has_deal: np.ndarray) -> np.ndarray:
    index = svc.index
    base = StoreFilter(
        categories=tuple(query.category),
        exclude_categories=tuple(query.exclude_category),
        price_levels=tuple(query.price),
        min_rating=query.min_rating,
        open_at=at if query.open_now else None,
        text=query.q,
    ).predicate(index)
    deals = has_deal if query.has_deals else None

    def where(pos):
        mask = np.ones(len(pos), dtype=bool) if base is None else base(pos)
        return mask if deals is None else mask & deals[pos]

    min_lon, min_lat, max_lon, max_lat = query.bbox
    return index.in_bbox(min_lon, min_lat, max_lon, max_lat, where=where, ordered=False)


def _deal_mask(svc, at) -> np.ndarray:
    return svc.deals.window(svc.index, at).has_deal


def _filter_params() -> dict:
    """The request's parameters as given (minus the viewer): a cluster id replays them for its leaves."""
    return dict(request.args.lists())


def _cluster_ok(data: dict) -> bool:
    """Types and ranges of a signed cluster id (a leaked secret must not turn into a 500)."""
    z, q = data.get("z"), data.get("q")
    if not paging.is_int(z, 0, 22):
        return False
    cells = (1 << z) * 256 // clusters.CELL_PX + 1  # cells across the world at zoom z
    return (
        paging.is_int(data.get("x"), 0, cells)
        and paging.is_int(data.get("y"), 0, cells)
        and isinstance(q, dict)
        and len(q) <= 20
        and all(isinstance(v, list) and len(v) <= 50 and all(isinstance(x, str) for x in v) for v in q.values())
    )


def _multidict(params: dict):
    from werkzeug.datastructures import MultiDict

    return MultiDict([(k, v) for k, values in params.items() for v in values])


def _cluster_feature(svc, g: clusters.Cluster, secret: str, params: dict, has_deal: np.ndarray) -> dict:
    index = svc.index
    lat, lon = index.column("lat")[g.members], index.column("lon")[g.members]
    cats = index.column("category")[g.members]
    top = int(np.bincount(cats).argmax())
    n = len(g.members)
    token = paging.sign(secret, {"z": g.zoom, "x": g.cx, "y": g.cy, "q": params})
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [float(lon.mean()), float(lat.mean())]},
        "properties": {
            "cluster": True,
            "cluster_id": token,
            "point_count": n,
            "point_count_abbreviated": clusters.abbreviate(n),
            "expansion_zoom": clusters.expansion_zoom(lat, lon, g.zoom),
            "with_deals": int(has_deal[g.members].sum()),
            "top_category": index.categories[top],
        },
    }


def _point_features(svc, positions: np.ndarray, has_deal: np.ndarray, at, sign=None) -> list[dict]:
    """Point features; with ``sign`` (the map itself, not a cluster's leaves) each carries an
    impression token, ranked in the order shown."""
    index = svc.index
    opened = index.open_now(positions, at)
    out = []
    for rank, (rec, pos, is_open) in enumerate(zip(index.records(positions), positions.tolist(), opened), 1):
        props = {
            "cluster": False,
            "id": rec["id"],
            "name": rec["name"],
            "category": rec["category"],
            "price_level": rec["price_level"],
            "rating": rec["rating"],
            "has_deal": bool(has_deal[pos]),
            "open_now": is_open,
        }
        if sign is not None:
            props["impression_token"] = sign.token(rec["id"], rank)
        out.append(
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [rec["lon"], rec["lat"]]},
                "properties": props,
            }
        )
    return out


def _centre_lon(bbox) -> float:
    min_lon, _a, max_lon, _b = bbox
    if min_lon <= max_lon:
        return (min_lon + max_lon) / 2
    centre = (min_lon + max_lon + 360) / 2
    return centre - 360 if centre > 180 else centre
