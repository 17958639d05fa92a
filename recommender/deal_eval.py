"""Offline evaluation of deal lists: which deal did the user redeem, and where was it ranked?

``scripts.evaluate`` measures the second stage on stores over a whole later window. A deal
list is asked at one moment and ranks the deals on offer then. Each TEST order that
redeemed a deal is replayed as such a request:

- the moment is the order's time; the deals on offer are those running then;
- the request point is the caller's: the user's most visited TRAIN store (the offline
  ``point_m`` stand-in, ``Sources.home``), or where the user was at that moment
  (generated data know it); the candidates are the running deals of the
  ``NEAREST_STORES`` nearest stores that have one, as ``app.domain.ranking`` picks them;
- the hit is the redeemed deal; a deal outside the candidates is a miss for every ranker.

Each ranker orders the same candidates. Quotas are left out. With ``pages`` each ranker is
also scored as its pages show it (``<name>_paged``: the per-store and per-category caps of
``diversity``, as served). Metrics per case, averaged: NDCG@k with the one relevant deal,
hit@k, and the reciprocal rank.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from .diversity import paged_order
from .geo import pairwise_m

#: As ``app.domain.ranking.NEAREST_STORES`` (the deal list without a radius).
NEAREST_STORES = 200


def deal_cases(train: pd.DataFrame, test: pd.DataFrame, deals: pd.DataFrame) -> pd.DataFrame:
    """TEST orders that redeemed a known deal: user_id, deal_id, ts."""
    known = set(deals["deal_id"].astype(str))
    if "deal_id" not in test:
        return test.iloc[:0][["user_id", "store_id", "ts"]].assign(deal_id=pd.Series(dtype=str))
    t = test[test["deal_id"].notna()]
    t = t[t["deal_id"].astype(str).isin(known) & t["user_id"].isin(set(train["user_id"]))]
    return t[["user_id", "deal_id", "ts"]].reset_index(drop=True)


def evaluate_deal_lists(
    cases: pd.DataFrame,
    deals: pd.DataFrame,
    stores: pd.DataFrame,
    points: dict | Callable,
    rankers: dict[str, Callable],
    k: int = 10,
    pages: tuple[int, int, int] | None = None,
) -> dict:
    """Per ranker, the mean NDCG@k, hit@k and reciprocal rank over ``cases``; with
    ``pages`` = (limit, per_store, per_category) also as the pages show them.

    ``points``: each user's request point ({user: (lat, lon)}), or ``points(user, ts)`` ->
    (lat, lon) or None; a case without a point is left out.

    ``rankers[name](user_id, lat, lon, store_ids, discount_pct, distance_m) -> scores``
    (higher first; ties go to the bigger discount, then the deal id, as served)."""
    pos = {s: i for i, s in enumerate(stores["store_id"].astype(str))}
    lat, lon = stores["lat"].to_numpy(float), stores["lon"].to_numpy(float)
    d = deals.assign(deal_id=deals["deal_id"].astype(str), store_id=deals["store_id"].astype(str))
    d = d[d["store_id"].isin(pos)].reset_index(drop=True)
    d_store = np.array([pos[s] for s in d["store_id"]], dtype=np.int64)
    d_start = pd.to_datetime(d["starts_at"], utc=True).to_numpy("datetime64[ns]")
    d_end = pd.to_datetime(d["ends_at"], utc=True).to_numpy("datetime64[ns]")
    d_disc = d["discount_pct"].to_numpy(float)
    d_ids = d["deal_id"].to_numpy(object)
    category = stores["category"].astype(str).to_numpy() if "category" in stores else np.zeros(len(stores), str)
    id_rank = np.argsort(np.argsort(d_ids.astype(str)))
    when = pd.to_datetime(cases["ts"], utc=True).to_numpy("datetime64[ns]")
    names = [*rankers, *(f"{n}_paged" for n in rankers if pages)]
    ranks: dict[str, list[float]] = {name: [] for name in names}
    candidates, reached = [], 0
    point_of = (lambda user, _ts, table=points: table.get(user)) if isinstance(points, dict) else points
    for user, deal, t, ts in zip(cases["user_id"], cases["deal_id"].astype(str), when, cases["ts"]):
        point = point_of(user, ts)
        if point is None:
            continue
        on = np.flatnonzero((d_start <= t) & (t < d_end))
        plat, plon = point
        dist = pairwise_m([plat], [plon], lat[d_store[on]], lon[d_store[on]])[0]
        # The nearest NEAREST_STORES stores with a running deal (ties: the lower store), and
        # all their running deals; a store's deals share its distance.
        stores_on, first = np.unique(d_store[on], return_index=True)
        near = stores_on[np.lexsort((stores_on, dist[first]))[:NEAREST_STORES]]
        keep = np.isin(d_store[on], near)
        rows, dist = on[keep], dist[keep]
        candidates.append(len(rows))
        hit = np.flatnonzero(d_ids[rows] == deal)
        if len(hit):
            reached += 1
        store_ids = [stores["store_id"].iat[s] for s in d_store[rows]]
        for name, rank_fn in rankers.items():
            if not len(hit):
                for n in (name, f"{name}_paged"):
                    if n in ranks:
                        ranks[n].append(np.inf)
                continue
            score = np.asarray(rank_fn(user, plat, plon, store_ids, d_disc[rows], dist), dtype=float)
            order = np.lexsort((id_rank[rows], -d_disc[rows], -np.round(score, 9)))
            ranks[name].append(float(np.flatnonzero(order == hit[0])[0] + 1))
            if pages:
                limit, per_store, per_category = pages
                s_of, c_of = d_store[rows][order].tolist(), category[d_store[rows][order]].tolist()
                shown = order[paged_order(s_of, c_of, limit, per_store, per_category)]
                ranks[f"{name}_paged"].append(float(np.flatnonzero(shown == hit[0])[0] + 1))
    out: dict = {"cases": len(candidates), "reached": reached, "candidates_median": float(np.median(candidates or [0]))}
    for name, got in ranks.items():
        r = np.asarray(got, dtype=float)
        out[name] = {
            f"ndcg@{k}": round(float(np.mean(np.where(r <= k, 1.0 / np.log2(r + 1), 0.0))), 4) if len(r) else None,
            f"hit@{k}": round(float(np.mean(r <= k)), 4) if len(r) else None,
            "mrr": round(float(np.mean(1.0 / r)), 4) if len(r) else None,
        }
    return out
