"""Compare rankers under one protocol: the engine of ``scripts.evaluate``.

Rankers: ``popularity``; ``geo_popularity`` (popularity plus closeness to the user's
usual places, its weight tuned on validation like the blend); the neighbourhood baselines
``user_knn``, ``item_knn`` and ``rp3beta`` (``recommender.neighbours``, their settings
chosen on validation); ``lightfm_cf`` (identity features only); ``lightfm_hybrid``
(identity + user/item features); ``served`` (the hybrid blended with distance by
``recommender.blend.Blend``, exactly as serving blends it); ``two_stage``
(``recommender.two_stage``: candidates from all of these, re-ranked by LightGBM; not yet
served, and under the new-store protocol only). Under ``protocol="repeat"``
(known stores are candidates too) two more: ``most_frequent`` (the user's stores by visits)
and ``most_recent`` (by last visit; needs ``ts``), each followed by popularity.
Every tunable choice is made on a validation split carved from TRAIN, never on TEST.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .blend import Blend
from .evaluation import evaluate, interaction_matrix
from .features import FeatureConfig
from .neighbours import ItemKNN, RP3beta, UserKNN
from .training import TrainConfig, anchor_distances, representations, split_per_user, train, user_anchors
from .two_stage import FEATURE_GROUPS, Sources, TwoStageRanker

SERVED = "served"
TWO_STAGE = "two_stage"
PROTOCOLS = ("new", "repeat")
#: Baselines that only make sense when a user's known stores are candidates.
REPEAT = ("most_frequent", "most_recent")
#: Neighbourhood baselines and the settings each may choose from on validation.
NEIGHBOURHOOD = {
    "user_knn": (UserKNN, [{"neighbours": n, "shrink": s} for n in (50, 100, 200) for s in (0.0, 20.0)]),
    "item_knn": (ItemKNN, [{"neighbours": n, "shrink": s} for n in (50, 100, 200) for s in (0.0, 20.0)]),
    "rp3beta": (RP3beta, [{"alpha": a, "beta": b, "neighbours": 200} for a in (0.5, 1.0) for b in (0.0, 0.3, 0.6)]),
}


def compare(
    stores: pd.DataFrame,
    train_pairs: pd.DataFrame,
    test_pairs: pd.DataFrame,
    k: int = 10,
    config: TrainConfig | None = None,
    log: Callable[[str], None] = print,
    models: tuple[str, ...] = (
        "popularity",
        "geo_popularity",
        *NEIGHBOURHOOD,
        *REPEAT,
        "lightfm_cf",
        "lightfm_hybrid",
        SERVED,
        TWO_STAGE,
    ),
    protocol: str = "new",
    ablation: bool = False,
) -> dict:
    """Metrics for each ranker on TEST, every ranker seeing only TRAIN.

    ``protocol``: ``new`` ranks the stores each user has not been to; ``repeat`` ranks all
    of them, known ones included (``REPEAT`` baselines run only there). ``ablation``: also
    ``two_stage-GROUP`` for each feature group left out of the second stage.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, not {protocol!r}")
    cfg = replace(config or TrainConfig(), k=k)
    exclude = protocol == "new"
    ev = partial(evaluate, exclude_train=exclude)  # the protocol decides whether known stores compete

    stores = stores.assign(store_id=stores["store_id"].astype(str)).drop_duplicates("store_id").reset_index(drop=True)
    items = {s: i for i, s in enumerate(stores["store_id"])}
    train_pairs = _clean(train_pairs, items)
    test_pairs = _clean(test_pairs, items)
    users = sorted(set(train_pairs["user_id"]) | set(test_pairs["user_id"]))
    uidx = {u: i for i, u in enumerate(users)}
    train_m, test_m = _matrix(train_pairs, uidx, items), _matrix(test_pairs, uidx, items)
    fit_part, fit_m, val_m = _validation(train_pairs, uidx, items, cfg)  # made once, used by every tuner
    lat, lon = stores["lat"].to_numpy(float), stores["lon"].to_numpy(float)
    pop = np.asarray(train_m.sum(axis=0)).ravel()
    results: dict[str, dict] = {}

    if "popularity" in models:
        results["popularity"] = ev(
            lambda rows: np.broadcast_to(np.log1p(pop), (len(rows), len(pop))), train_m, test_m, k
        )
    needs_anchors = "geo_popularity" in models or SERVED in models
    anchors_all = user_anchors(uidx, stores, train_pairs) if needs_anchors else np.empty((0, 3, 2))
    if "geo_popularity" in models:
        geo = _tune_geo_popularity(stores, uidx, fit_part, fit_m, val_m, cfg, log, exclude)
        norm = np.log1p(pop) / max(np.log1p(pop).max(), 1e-9)
        results["geo_popularity"] = ev(
            lambda rows: norm[None, :] + geo.weight * geo.distance_term(anchor_distances(anchors_all[rows], lat, lon)),
            train_m,
            test_m,
            k,
        )
        results["geo_popularity"]["blend"] = geo.to_dict()
    if protocol == "repeat":
        for name, score in _repeat_baselines(train_pairs, train_m, uidx, items, pop, log).items():
            if name in models:
                results[name] = ev(score, train_m, test_m, k)
    for name in (n for n in NEIGHBOURHOOD if n in models):
        t0 = time.perf_counter()
        settings = _tune_neighbourhood(name, fit_m, val_m, cfg, log, exclude)
        model = NEIGHBOURHOOD[name][0](**settings).fit(train_m)
        results[name] = ev(model.score, train_m, test_m, k)
        results[name]["settings"] = settings
        results[name]["seconds"] = round(time.perf_counter() - t0, 1)  # tuning included
    if "lightfm_cf" in models:
        cf_cfg = replace(cfg, features=FeatureConfig(item_features=False, user_features=False))
        cf = train(stores, train_pairs, None, cf_cfg, log=lambda m: log("[cf] " + m))
        results["lightfm_cf"] = ev(_lightfm_scores(cf, users), train_m, test_m, k)
    if "lightfm_hybrid" in models or SERVED in models:
        hybrid = train(stores, train_pairs, None, cfg, log=lambda m: log("[hybrid] " + m))
        pref = _lightfm_scores(hybrid, users)
        if "lightfm_hybrid" in models:
            results["lightfm_hybrid"] = ev(pref, train_m, test_m, k)
        if SERVED in models:
            b = hybrid.blend
            results[SERVED] = ev(
                lambda rows: b.combine(pref(rows), anchor_distances(anchors_all[rows], lat, lon)), train_m, test_m, k
            )
            results[SERVED]["blend"] = b.to_dict()
    if TWO_STAGE in models and protocol == "new":
        t0 = time.perf_counter()
        full_extra = {"lightfm": pref} if "lightfm_hybrid" in models or SERVED in models else {}
        fit_sources, sources = _two_stage_sources(
            stores, train_m, fit_part, fit_m, users, results, cfg, log, full_extra
        )
        table = TwoStageRanker(seed=cfg.seed).training_table(fit_sources, val_m)
        ranker = TwoStageRanker(seed=cfg.seed).fit(fit_sources, val_m, log, table=table)
        results[TWO_STAGE] = ev(lambda rows: ranker.score(sources, rows, train_m), train_m, test_m, k)
        results[TWO_STAGE]["seconds"] = round(time.perf_counter() - t0, 1)
        for group in FEATURE_GROUPS if ablation else ():
            if group == "lightfm" and not full_extra:
                continue
            without = TwoStageRanker(seed=cfg.seed, drop=(group,)).fit(fit_sources, val_m, log, table=table)
            results[f"{TWO_STAGE}-{group}"] = ev(partial(without.score, sources, known=train_m), train_m, test_m, k)
    return {
        "k": k,
        "protocol": protocol,
        "served": SERVED,
        "models": results,
        "data": {
            "stores": len(items),
            "users": len(users),
            "train_pairs": int(train_m.nnz),
            "test_pairs": int(test_m.nnz),
        },
    }


def _clean(pairs: pd.DataFrame, items: dict) -> pd.DataFrame:
    p = pairs.assign(user_id=pairs["user_id"].astype(str), store_id=pairs["store_id"].astype(str))
    p = p[p["store_id"].isin(items)]
    if "weight" not in p:
        p = p.assign(weight=1.0)
    agg = {"weight": "sum"}
    if "ts" in p:
        agg["ts"] = "max"
    return p.groupby(["user_id", "store_id"], as_index=False, sort=True).agg(agg)


def _matrix(pairs: pd.DataFrame, uidx: dict, items: dict) -> sp.csr_matrix:
    """Binary users x items matrix of ``pairs`` in the comparison's user and item order."""
    shape = (len(uidx), len(items))
    return interaction_matrix(pairs["user_id"].map(uidx).to_numpy(), pairs["store_id"].map(items).to_numpy(), shape)


def _validation(train_pairs, uidx: dict, items: dict, cfg: TrainConfig):
    """(earlier part, its matrix, later part's matrix): TRAIN split per user in time, on which
    every setting is chosen and the two-stage ranker learns."""
    fit_part, val_part = split_per_user(train_pairs, cfg.validation_fraction, cfg.seed)
    return fit_part, _matrix(fit_part, uidx, items), _matrix(val_part, uidx, items)


def _repeat_baselines(train_pairs, known: sp.csr_matrix, uidx, items, pop, log) -> dict:
    """most_frequent and most_recent: the user's own stores (``known``) first, by summed
    weight or by last visit, then every other store by popularity."""
    r, c = train_pairs["user_id"].map(uidx).to_numpy(), train_pairs["store_id"].map(items).to_numpy()
    shape = known.shape
    weight = sp.csr_matrix((train_pairs["weight"].to_numpy(np.float64), (r, c)), shape=shape)
    after = 0.999 * np.log1p(pop) / max(np.log1p(pop).max(), 1e-9)  # in [0, 1): below every known store

    def ranker(own: sp.csr_matrix):
        def score(rows):
            mine = known[rows].toarray()
            return mine * (1.0 + own[rows].toarray()) + (1.0 - mine) * after[None, :]

        return score

    out = {"most_frequent": ranker(weight)}
    if "ts" in train_pairs and train_pairs["ts"].notna().all():
        ts = pd.to_datetime(train_pairs["ts"], utc=True).astype("int64").to_numpy(np.float64)
        span = max(ts.max() - ts.min(), 1.0)
        out["most_recent"] = ranker(sp.csr_matrix(((ts - ts.min()) / span, (r, c)), shape=shape))
    else:
        log("[most_recent] skipped: the training interactions have no ts")
    return out


def _lightfm_scores(trained, users: list[str]):
    """Scores in the comparison's user order; users the model never saw take the cold path
    (no history, no features: item biases only)."""
    uv, ub, iv, ib = representations(trained)
    rows = np.array([trained.space.user_index_.get(u, -1) for u in users])
    k = uv.shape[1]

    def score(global_rows: np.ndarray) -> np.ndarray:
        r = rows[global_rows]
        known = r >= 0
        vec = np.zeros((len(r), k), dtype=np.float32)
        vec[known] = uv[r[known]]
        bias = np.where(known, ub[np.maximum(r, 0)], 0.0)
        return vec @ iv.T + ib[None, :] + bias[:, None]

    return score


def _two_stage_sources(stores, train_m, fit_part, fit_m, users, results, cfg, log, full_extra):
    """(sources on the earlier part of TRAIN, sources on all of TRAIN); the labels are the later part."""
    lat, lon = stores["lat"].to_numpy(float), stores["lon"].to_numpy(float)
    category = stores["category"].astype(str).to_numpy() if "category" in stores else None
    settings = {name: results[name]["settings"] for name in NEIGHBOURHOOD if name in results}
    fit_extra = {}
    if full_extra:
        early = train(stores, fit_part, None, cfg, log=lambda m: log("[two_stage lightfm] " + m))
        fit_extra = {"lightfm": _lightfm_scores(early, users)}
    fit_sources = Sources.fit(fit_m, lat, lon, category, settings, fit_extra)
    return fit_sources, Sources.fit(train_m, lat, lon, category, settings, full_extra)


def _tune_neighbourhood(name: str, fit_m, val_m, cfg: TrainConfig, log, exclude: bool = True) -> dict:
    """The setting of a neighbourhood baseline with the best validation NDCG (first best on ties)."""
    cls, grid = NEIGHBOURHOOD[name]
    best, best_settings = -1.0, grid[0]
    fitted: dict = {}  # one fit per setting other than neighbours, at the most neighbours asked for
    for settings in grid:
        model = _fitted(cls, settings, grid, fit_m, fitted)
        ndcg = evaluate(model.score, fit_m, val_m, cfg.k, exclude_train=exclude)["ndcg"] or 0.0
        if ndcg > best + 1e-9:
            best, best_settings = ndcg, settings
    log(f"[{name}] {best_settings} (validation NDCG@{cfg.k} {best:.4f})")
    return best_settings


def _fitted(cls, settings: dict, grid: list[dict], x, cache: dict):
    """``cls(**settings)`` fitted on ``x``; KNN models differing only in neighbours share a fit."""
    if not hasattr(cls, "with_neighbours"):
        return cls(**settings).fit(x)

    def others(s: dict) -> tuple:
        return tuple(sorted((k, v) for k, v in s.items() if k != "neighbours"))

    rest = others(settings)
    if rest not in cache:
        widest = max(g["neighbours"] for g in grid if others(g) == rest)
        cache[rest] = cls(**{**settings, "neighbours": widest}).fit(x)
    return cache[rest].with_neighbours(settings["neighbours"])


def _tune_geo_popularity(stores, uidx, fit_part, fit_m, val_m, cfg: TrainConfig, log, exclude: bool = True) -> Blend:
    """The geo baseline gets the same tuning effort as the served blend: a grid on validation."""
    pop = np.log1p(np.asarray(fit_m.sum(axis=0)).ravel())
    pop = pop / max(pop.max(), 1e-9)
    anchors = user_anchors(uidx, stores, fit_part)
    lat, lon = stores["lat"].to_numpy(float), stores["lon"].to_numpy(float)
    best, best_blend = -1.0, Blend(weight=0.0)
    for w in cfg.blend_weights:
        for s in cfg.blend_scales_m:
            b = Blend(weight=w, scale_m=s)

            def scores(rows, b=b):
                return pop[None, :] + b.weight * b.distance_term(anchor_distances(anchors[rows], lat, lon))

            ndcg = evaluate(scores, fit_m, val_m, cfg.k, exclude_train=exclude)["ndcg"] or 0.0
            if ndcg > best + 1e-9:
                best, best_blend = ndcg, b
    log(
        f"[geo_popularity] weight={best_blend.weight} scale={best_blend.scale_m:.0f} m "
        f"(validation NDCG@{cfg.k} {best:.4f})"
    )
    return best_blend
