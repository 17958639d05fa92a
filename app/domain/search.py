"""Nearby search: filters, ordering and keyset paging over the store index.

No Flask here: the view parses the request into a ``NearbyQuery`` and calls ``nearby``.
Orderings are total: (primary, distance, store_id), where primary is 0 for
``sort=distance``, minus the rating (unrated last) or minus the popularity.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from app.http.schemas import NearbyQuery
from geo_index import StoreFilter, StoreIndex


@dataclass(frozen=True)
class NearbyPage:
    positions: np.ndarray
    distances_m: np.ndarray
    last_key: list | None  # sort key of the last row, when another page follows
    radius_m: float | None


def store_filter(query: NearbyQuery, evaluated_at: datetime) -> StoreFilter:
    open_at = query.open_at if query.open_at is not None else (evaluated_at if query.open_now else None)
    return StoreFilter(
        categories=tuple(query.category),
        exclude_categories=tuple(query.exclude_category),
        price_levels=tuple(query.price),
        min_rating=query.min_rating,
        open_at=open_at,
        text=query.q,
    )


def nearby(
    index: StoreIndex,
    query: NearbyQuery,
    evaluated_at: datetime,
    after: list | None,
    ranked_radius_m: float,
    personal=None,
) -> NearbyPage:
    """One page of stores for ``query``, strictly after sort key ``after`` (None: first page).

    ``personal(positions, distances) -> primary`` supplies the sort key for
    ``sort=personalised`` (without a model it falls back to distance order).
    """
    where = store_filter(query, evaluated_at).predicate(index)
    if query.sort == "distance" or (query.sort == "personalised" and personal is None):
        return _nearest_page(index, query, where, after)
    radius = query.radius_m if query.radius_m is not None else ranked_radius_m
    hits = index.within(query.lat, query.lon, radius, where=where)
    primary = (
        personal(hits.positions, hits.distances_m)
        if query.sort == "personalised"
        else sort_primary(index, hits.positions, query.sort)
    )
    ids = index.column("store_id")[hits.positions]
    order = np.lexsort((ids, hits.distances_m, primary))
    pos, d, p, ids = hits.positions[order], hits.distances_m[order], primary[order], ids[order]
    if after is not None:
        keep = _after(p, d, ids, after)
        pos, d, p, ids = pos[keep], d[keep], p[keep], ids[keep]
    return _cut(pos, d, p, ids, query.limit, radius)


def _nearest_page(index, query, where, after) -> NearbyPage:
    ids_col = index.column("store_id")
    k = query.limit + 1
    while True:
        hits = index.nearest(query.lat, query.lon, k, max_distance_m=query.radius_m, where=where)
        pos, d = hits.positions, hits.distances_m
        ids = ids_col[pos]
        p = np.zeros(len(pos))
        if after is not None:
            keep = _after(p, d, ids, after)
            pos, d, p, ids = pos[keep], d[keep], p[keep], ids[keep]
        # Enough rows past the cursor, or the index had no more to give.
        if len(pos) > query.limit or len(hits) < k:
            return _cut(pos, d, p, ids, query.limit, query.radius_m)
        k *= 4


def sort_primary(index: StoreIndex, pos: np.ndarray, sort: str) -> np.ndarray:
    if sort == "rating":
        r = index.column("rating")[pos]
        return np.where(np.isnan(r), 1.0, -r)
    if sort == "popularity":
        return -index.column("popularity")[pos]
    return np.zeros(len(pos))


def _after(p, d, ids, key) -> np.ndarray:
    pl, dl, il = float(key[0]), float(key[1]), str(key[2])
    later_id = np.asarray(ids > il, dtype=bool) if len(ids) else np.zeros(0, bool)
    return (p > pl) | ((p == pl) & ((d > dl) | ((d == dl) & later_id)))


def _cut(pos, d, p, ids, limit, radius) -> NearbyPage:
    more = len(pos) > limit
    last = [float(p[limit - 1]), float(d[limit - 1]), str(ids[limit - 1])] if more else None
    return NearbyPage(pos[:limit], d[:limit], last, radius)
