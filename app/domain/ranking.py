"""Personalised deal lists: spatial candidates, business rules, the served ranker, diversity.

With a model that has a second stage, score(deal) is the two-stage ranker's score of the
deal's store for this user asking from this point (``recommender.served``): what
``scripts.evaluate`` measures as ``served``. A model without one falls back to
Blend.combine(preference(user, store), distance(point, store)) (``lightfm_blend`` there).
Ties go to the bigger discount, then deal_id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from geo_index import StoreFilter
from recommender import Blend
from recommender.diversity import page_of
from recommender.served import SecondStage

# Without radius_m, deals come from this many nearest stores that have one.
NEAREST_STORES = 200


@dataclass
class Ranked:
    rows: np.ndarray  # deal rows in the deal book, best first
    distances: np.ndarray  # metres to each deal's store
    preference: np.ndarray  # model preference per deal (0 without a model)
    distance_term: np.ndarray
    score: np.ndarray
    blend: Blend
    user_kind: str
    #: The second stage and its features of each ranked deal (for explanations), or None.
    stage: SecondStage | None = None
    features: np.ndarray | None = None


def rank_deals(
    index,
    deals,
    scorer,
    models,
    query,
    user_id: str | None,
    now: datetime,
    fetch_state,
    user_features: dict | None = None,
) -> tuple[Ranked, dict]:
    """Every eligible deal for the query, ranked for ``user_id`` (None: anonymous);
    diversity is applied per page later.

    ``fetch_state(deal_ids) -> (redeemed_by_user, redemptions_per_deal)`` is asked only
    about the deals at candidate stores, so a request reads a handful of Redis fields.
    Returns the ranking and the redemption counts (for ``quota_left``).
    """
    window = deals.window(index, now)
    has_deal = window.has_deal
    base = StoreFilter(categories=tuple(query.category)).predicate(index)

    def where(pos):
        mask = has_deal[pos]
        return mask if base is None else mask & base(pos)

    if query.radius_m is not None:
        hits = index.within(query.lat, query.lon, query.radius_m, where=where)
    else:
        hits = index.nearest(query.lat, query.lon, NEAREST_STORES, where=where)
    rows, at_hit = window.usable_at(hits.positions)
    ids = deals.ids[rows].tolist()
    redeemed, quota_used = fetch_state(ids)
    keep = np.ones(len(rows), dtype=bool)
    if quota_used:
        used = np.fromiter((quota_used.get(d, 0) for d in ids), dtype=float, count=len(ids))
        keep &= ~(used >= deals.quota[rows])  # NaN quota: unlimited
    if redeemed:
        keep &= np.fromiter((d not in redeemed for d in ids), dtype=bool, count=len(ids))
    if not keep.all():
        rows, at_hit = rows[keep], at_hit[keep]
    dist = hits.distances_m[at_hit]
    blend = scorer.blend if scorer else Blend(weight=1.0, scale_m=1000.0)
    stage, feats = None, None
    # Once per store, not per deal: a store's deals share every score and feature. usable_at
    # keeps a store's rows together, so a store starts wherever at_hit changes.
    starts = np.empty(len(at_hit), dtype=bool)
    starts[:1] = True
    np.not_equal(at_hit[1:], at_hit[:-1], out=starts[1:])
    first, back = np.flatnonzero(starts), np.cumsum(starts) - 1
    store_ids = deals.store_ids[rows[first]].tolist()
    if scorer is not None:
        models.ensure_items(scorer, store_ids)
        state = scorer.user_state(user_id, user_features)
        store_pref = scorer.score_rows(state, scorer.rows_for(store_ids)).astype(float)
        kind, stage = state.kind, scorer.second_stage
    else:
        store_pref, kind = np.zeros(len(first)), "no_model"
    pref, dterm = store_pref[back], blend.distance_term(dist)
    if stage is not None and len(rows):
        per_store = stage.features(user_id, store_ids, store_pref, query.lat, query.lon)
        score, feats = stage.score(per_store)[back], per_store[back]
    else:
        score = blend.preference_term(pref) + blend.weight * dterm
    order = np.lexsort((deals.id_rank[rows], -deals.discount[rows], -np.round(score, 9)))
    ranked = Ranked(rows[order], dist[order], pref[order], dterm[order], score[order], blend, kind, stage)
    if feats is not None:
        ranked.features = feats[order]
    return ranked, quota_used


def paginate(
    ranked: Ranked, deals, index, limit: int, page: int, per_store: int, per_category: int
) -> tuple[np.ndarray, bool]:
    """Positions (into ``ranked``) of page ``page``, and whether more pages follow: the walk
    of ``recommender.diversity.page_of`` over each deal's store and category."""
    pos = deals.store_pos[ranked.rows]
    store_of, cat_of = pos.tolist(), index.column("category")[pos].tolist()  # lists: the walk is per deal
    return page_of(store_of, cat_of, limit, page, per_store, per_category)


def reasons(ranked: Ranked, j: int, deals, index, scorer, ordered_at: set, taste: dict) -> list[dict]:
    """Machine-readable reasons for ranked deal ``j``; the parts add up to its score."""
    r = ranked.rows[j]
    store = deals.store_ids[r]
    category = index.categories[index.column("category")[deals.store_pos[r]]]
    out = []
    if store in ordered_at:
        out.append({"because": "ordered_at", "store_id": store})
    share = taste.get(category, 0.0)
    if share >= 0.15:
        out.append({"because": f"matches_taste:{category}", "share": round(share, 3)})
    if ranked.user_kind in ("anonymous", "no_model"):
        out.append({"because": "popular_nearby"})
    if ranked.distance_term[j] >= 0.5:
        out.append({"because": "close_by", "distance_m": round(float(ranked.distances[j]), 1)})
    if scorer is not None and not scorer.is_trained_item(store):
        out.append({"because": "new_store", "store_id": store})
    if ranked.stage is not None and ranked.features is not None:
        parts = ranked.stage.ranker.contributions(ranked.features[[j]])[0]
        base = parts.pop("base")
        out.append(
            {
                "because": "score",
                "model": "two_stage",
                "score": round(float(ranked.score[j]), 6),
                "base": round(base, 6),
                # Each feature group's share (LightGBM's SHAP values): base + parts = score.
                "parts": {g: round(v, 6) for g, v in sorted(parts.items(), key=lambda kv: -abs(kv[1]))},
            }
        )
        return out
    b = ranked.blend
    out.append(
        {
            "because": "score",
            "model": "blend",
            "preference": round(float(ranked.preference[j]), 6),
            "preference_term": round(float(ranked.preference[j] / b.pref_scale), 6),
            "distance_term": round(float(ranked.distance_term[j]), 6),
            "distance_weight": b.weight,
            "score": round(float(ranked.score[j]), 6),
        }
    )
    return out
