"""Compare rankers under one protocol: the engine of ``scripts.evaluate``.

Rankers: ``popularity``; ``geo_popularity`` (popularity plus closeness to the user's
usual places, its weight tuned on validation like the blend); the neighbourhood baselines
``user_knn``, ``item_knn`` and ``rp3beta`` (``recommender.neighbours``, their settings
chosen on validation); ``lightfm_cf`` (identity features only); ``lightfm_hybrid``
(identity + user/item features); ``lightfm_blend`` (the hybrid blended with distance by
``recommender.blend.Blend``: the fallback when a model has no second stage); ``served``
(``recommender.two_stage``: candidates from all of these and the user's own stores,
re-ranked by LightGBM, exactly as ``/v1/deals/recommended`` ranks). Under
``protocol="repeat"`` (known stores are candidates too) two more: ``most_frequent`` (the
user's stores by visits) and ``most_recent`` (by last visit; needs ``ts``), each followed
by popularity. Every tunable choice is made on a validation split carved from TRAIN,
never on TEST.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .blend import Blend, best_on_grid, tune_on_grid, tuning_users
from .data import every_row_timed
from .evaluation import evaluate
from .features import FeatureConfig
from .neighbours import NEIGHBOURHOOD, tune_neighbourhood
from .served import early_lightfm, fit_second_stage, lightfm_scores
from .splits import matrix, pairs_of, rows_at, validation
from .threads import one_blas_thread
from .training import TrainConfig, anchor_distances, chosen_feature_weight, train, user_anchors
from .two_stage import FEATURE_GROUPS, TwoStageRanker

SERVED = "served"
#: The LightFM hybrid blended with distance: the ranker served before the two-stage one.
LIGHTFM_BLEND = "lightfm_blend"
PROTOCOLS = ("new", "repeat")
#: Baselines that only make sense when a user's known stores are candidates.
REPEAT = ("most_frequent", "most_recent")


@one_blas_thread
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
        LIGHTFM_BLEND,
        SERVED,
    ),
    protocol: str = "new",
    ablation: bool = False,
    parallel: bool | None = None,
) -> dict:
    """Metrics for each ranker on TEST, every ranker seeing only TRAIN.

    ``train_pairs`` may hold one row per visit (with ``ts`` when known): the served ranker
    learns return visits from them. ``protocol``: ``new`` ranks the stores each user has
    not been to; ``repeat`` ranks all of them, known ones included (``REPEAT`` baselines run
    only there). ``ablation``: also ``served-GROUP`` for each feature group left out.
    ``parallel``: fit the LightFM models in a second process while this one tunes the
    baselines (each fit single-threaded, so the results are the same); by default when
    TRAIN has at least ``PARALLEL_ROWS`` rows.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, not {protocol!r}")
    cfg = replace(config or TrainConfig(), k=k)
    exclude = protocol == "new"
    ev = partial(evaluate, exclude_train=exclude)  # the protocol decides whether known stores compete

    stores = stores.assign(store_id=stores["store_id"].astype(str)).drop_duplicates("store_id").reset_index(drop=True)
    items = {s: i for i, s in enumerate(stores["store_id"])}
    train_rows = rows_at(train_pairs, items)
    train_pairs = pairs_of(train_rows, items)
    test_pairs = pairs_of(test_pairs, items)
    users = sorted(set(train_pairs["user_id"]) | set(test_pairs["user_id"]))
    uidx = {u: i for i, u in enumerate(users)}
    train_m, test_m = matrix(train_pairs, uidx, items), matrix(test_pairs, uidx, items)
    split = validation(train_rows, uidx, items, cfg)  # made once, used by every tuner
    fit_part, fit_m = split.fit_pairs, split.fit_m
    val_m = split.val_new if exclude else split.val_m
    lat, lon = stores["lat"].to_numpy(float), stores["lon"].to_numpy(float)
    pop = np.asarray(train_m.sum(axis=0)).ravel()
    results: dict[str, dict] = {}
    wanted = _lightfm_wanted(models)
    if parallel is None:
        parallel = len(train_rows) >= PARALLEL_ROWS
    fits = _LightfmFits(stores, train_pairs, fit_part, cfg, wanted, parallel, log, LIGHTFM_BLEND in models)

    if "popularity" in models:
        results["popularity"] = ev(
            lambda rows: np.broadcast_to(np.log1p(pop), (len(rows), len(pop))), train_m, test_m, k
        )
    needs_anchors = "geo_popularity" in models or LIGHTFM_BLEND in models
    anchors_all = user_anchors(uidx, stores, train_pairs) if needs_anchors else np.empty((0, 3, 2))
    near_anchor = _MemoRows(lambda rows: anchor_distances(anchors_all[rows], lat, lon).astype(np.float32))
    if "geo_popularity" in models:
        geo = _tune_geo_popularity(stores, uidx, fit_part, fit_m, val_m, cfg, log, exclude)
        norm = np.log1p(pop) / max(np.log1p(pop).max(), 1e-9)
        results["geo_popularity"] = ev(
            lambda rows: norm[None, :] + geo.weight * geo.distance_term(near_anchor(rows)),
            train_m,
            test_m,
            k,
        )
        results["geo_popularity"]["blend"] = geo.to_dict()
    if protocol == "repeat":
        for name, score in _repeat_baselines(train_pairs, train_m, uidx, items, pop, log).items():
            if name in models:
                results[name] = ev(score, train_m, test_m, k)
    tuned = {}
    for name in (n for n in NEIGHBOURHOOD if n in models or SERVED in models):
        t0 = time.perf_counter()
        tuned[name] = tune_neighbourhood(name, fit_m, val_m, cfg.k, log, exclude)
        if name in models:
            model = NEIGHBOURHOOD[name][0](**tuned[name]).fit(train_m)
            results[name] = ev(model.score, train_m, test_m, k)
            results[name]["settings"] = tuned[name]
            results[name]["seconds"] = round(time.perf_counter() - t0, 1)  # tuning included
    if "lightfm_cf" in models:
        cf = fits.get("cf")
        results["lightfm_cf"] = ev(lightfm_scores(cf, users), train_m, test_m, k)
    pref = None
    if {"lightfm_hybrid", LIGHTFM_BLEND, SERVED} & set(models):
        hybrid = fits.get("hybrid")
        pref = lightfm_scores(hybrid, users)
        if "lightfm_hybrid" in models:
            results["lightfm_hybrid"] = ev(pref, train_m, test_m, k)
        if LIGHTFM_BLEND in models:
            b = hybrid.blend
            results[LIGHTFM_BLEND] = ev(lambda rows: b.combine(pref(rows), near_anchor(rows)), train_m, test_m, k)
            results[LIGHTFM_BLEND]["blend"] = b.to_dict()
    near_anchor.memo.clear()  # not needed past the blends: free the distances before the ranker
    if SERVED in models:
        t0 = time.perf_counter()
        # The ranker's early LightFMs (this one, and those of its earlier cuts) take the
        # hybrid's feature weight: the ranker learns from them and is served the hybrid's scores.
        stage = fit_second_stage(
            stores,
            train_rows,
            uidx,
            items,
            chosen_feature_weight(cfg, hybrid),
            log,
            lightfm=fits.get("early"),
            split=split,
            tuned=tuned,
        )
        served = partial(stage.ranker.score, stage.sources, lightfm=pref)
        results[SERVED] = ev(served, train_m, test_m, k)
        results[SERVED]["seconds"] = round(time.perf_counter() - t0, 1)
        results[SERVED]["trees"] = int(stage.ranker.booster_.num_trees())
        results[SERVED]["rounds"] = {str(leaves): r for leaves, r in stage.ranker.rounds_.items()}
        for group in FEATURE_GROUPS if ablation else ():
            if group == "lightfm" and pref is None:
                continue
            assert stage.lessons is not None  # fitted here, not loaded
            ranker = TwoStageRanker(seed=cfg.seed, drop=(group,)).fit(stage.lessons, log)
            results[f"{SERVED}-{group}"] = ev(partial(ranker.score, stage.sources, lightfm=pref), train_m, test_m, k)
    return {
        "k": k,
        "protocol": protocol,
        "served": SERVED,
        "models": results,
        "data": {
            "stores": len(items),
            "users": len(users),
            "train_rows": len(train_rows),
            "train_pairs": int(train_m.nnz),
            "test_pairs": int(test_m.nnz),
        },
    }


#: From this many TRAIN rows on, the LightFM fits run in a second process by default.
PARALLEL_ROWS = 50_000


def _lightfm_wanted(models) -> tuple[str, ...]:
    """The LightFM fits to start at once in the second process: the hybrid, the longest (it
    tries each feature weight), then the ranker's early LightFM, which takes the hybrid's
    weight. The CF model is fitted here after the baselines, meanwhile."""
    out: tuple[str, ...] = ("hybrid",) if {"lightfm_hybrid", LIGHTFM_BLEND, SERVED} & set(models) else ()
    return out + ("early",) if SERVED in models else out


def _fit_lightfm(names: tuple[str, ...], stores, train_pairs, fit_part, cfg: TrainConfig, blend: bool, log=print):
    """Some of the comparison's LightFM models, in order, by name (module level: a second
    process can run it). ``early`` needs ``hybrid`` before it in the same call."""
    out: dict = {}
    for name in names:
        if name == "cf":
            cf_cfg = replace(cfg, features=FeatureConfig(item_features=False, user_features=False), tune_blend=False)
            out[name] = train(stores, train_pairs, None, cf_cfg, log=lambda m: log("[cf] " + m))
        elif name == "hybrid":
            hybrid_cfg = replace(cfg, tune_blend=blend)
            out[name] = train(stores, train_pairs, None, hybrid_cfg, log=lambda m: log("[hybrid] " + m))
        else:
            out[name] = early_lightfm(stores, fit_part, chosen_feature_weight(cfg, out["hybrid"]), log)
        out[name].lightfm = None  # the fitted object is for checks in this process; not sent back
    return out


class _LightfmFits:
    """The LightFM fits, ``wanted`` started at once in a second process (``parallel``), the
    rest made here on first ``get``; the same models either way."""

    def __init__(self, stores, train_pairs, fit_part, cfg, wanted, parallel: bool, log, blend: bool = True):
        self.args = (stores, train_pairs, fit_part, cfg, blend)  # blend: tune the hybrid's blend
        self.log = log
        self.wanted = wanted
        self.future = None
        self.done: dict = {}
        if parallel and wanted:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # spawn, not fork: the parent may already run OpenMP or BLAS threads.
            pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
            verbose = log is print
            self.future = pool.submit(_fit_lightfm, wanted, *self.args, print if verbose else _quiet)
            pool.shutdown(wait=False)

    def get(self, name: str):
        if name not in self.done:
            if name in self.wanted and self.future is not None:
                self.done.update(self.future.result())
            elif name in self.wanted:  # in order, here: early needs the hybrid
                self.done.update(_fit_lightfm(self.wanted, *self.args, self.log))
            else:
                self.done.update(_fit_lightfm((name,), *self.args, self.log))
        return self.done[name]


def _quiet(_message: str) -> None:
    pass


class _MemoRows:
    """``fn(rows)`` remembered per rows array: two evaluations over the same test users (the
    geo baseline and the blend) share one distance computation (float32, users x stores)."""

    def __init__(self, fn):
        self.fn, self.memo = fn, {}

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        key = np.asarray(rows).tobytes()
        if key not in self.memo:
            self.memo[key] = self.fn(rows)
        return self.memo[key]


def _repeat_baselines(train_pairs, known: sp.csr_matrix, uidx, items, pop, log) -> dict:
    """most_frequent and most_recent: the user's own stores (``known``) first, by summed
    weight or by last visit, then every other store by popularity. Known stores that tie
    (most users have several stores of one visit each) go by popularity too, not by their
    place in the catalogue: an arbitrary tie-break made most_frequent 4 % weaker on the
    Helsinki orders than the same rule tied by popularity."""
    r, c = train_pairs["user_id"].map(uidx).to_numpy(), train_pairs["store_id"].map(items).to_numpy()
    shape = known.shape
    weight = sp.csr_matrix((train_pairs["weight"].to_numpy(np.float64), (r, c)), shape=shape)
    after = 0.999 * np.log1p(pop) / max(np.log1p(pop).max(), 1e-9)  # in [0, 1): below every known store

    def ranker(own: sp.csr_matrix):
        def score(rows):
            mine = known[rows].toarray()
            return mine * (1.0 + own[rows].toarray() + 1e-6 * after[None, :]) + (1.0 - mine) * after[None, :]

        return score

    out = {"most_frequent": ranker(weight)}
    if every_row_timed(train_pairs):
        ts = pd.to_datetime(train_pairs["ts"], utc=True).astype("int64").to_numpy(np.float64)
        span = max(ts.max() - ts.min(), 1.0)
        out["most_recent"] = ranker(sp.csr_matrix(((ts - ts.min()) / span, (r, c)), shape=shape))
    else:
        log("[most_recent] skipped: the training interactions have no ts")
    return out


def _tune_geo_popularity(stores, uidx, fit_part, fit_m, val_m, cfg: TrainConfig, log, exclude: bool = True) -> Blend:
    """The geo baseline gets the same tuning effort as the served blend: a grid on validation."""
    pop = np.log1p(np.asarray(fit_m.sum(axis=0)).ravel())
    pop = pop / max(pop.max(), 1e-9)
    users = tuning_users(val_m, cfg.seed)
    anchors = user_anchors(uidx, stores, fit_part)[users]
    lat, lon = stores["lat"].to_numpy(float), stores["lon"].to_numpy(float)
    dist = anchor_distances(anchors, lat, lon)
    base = np.broadcast_to(pop.astype(np.float32), dist.shape)
    table = tune_on_grid(base, dist, cfg.blend_weights, cfg.blend_scales_m, fit_m[users], val_m[users], cfg.k, exclude)
    best_blend = best_on_grid(table)
    best = table[(best_blend.weight, best_blend.scale_m)]
    log(
        f"[geo_popularity] weight={best_blend.weight} scale={best_blend.scale_m:.0f} m "
        f"(validation NDCG@{cfg.k} {best:.4f})"
    )
    return best_blend
