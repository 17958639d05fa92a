"""The second stage as a model: fitted by the retraining job and by ``scripts.evaluate`` with
the same function, saved in the artifact, and served one user at a time.

``fit_second_stage`` splits the interaction rows per user in time, chooses the
neighbourhood settings on that split, fits an early LightFM on the earlier part for the
``lightfm`` feature, trains the ranker on the later part's stores, then refits the sources
on every row: what ``/v1/deals/recommended`` ranks with, and what the evaluation calls
``served``.

Tuning and the ranker's lessons use at most ``RANKER_USERS`` validation users, so the
job grows linearly with the platform (the final sources still cover every user).

Where the data are small, one cut teaches the ranker too little: ~200 to ~900 users, whose
held-out verdicts and trees are noisy. There the split is made again on its own earlier
part, once or twice, and each earlier cut adds a list per user (the same users, earlier
in their histories). NDCG@10 rose 9 % and 1 % in two small worlds, 6 % on shuffled NYC
and 3.5 % on NYC, and fell 3.6 % on the generated Helsinki orders (docs/recommender.md).
The cuts stop when another would pass ``LESSON_ROWS``, so a large deployment, which has
lessons enough, pays nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .blend import tuning_users
from .evaluation import only_rows
from .neighbours import NEIGHBOURHOOD, tune_neighbourhood
from .signals import with_review_ratings
from .sources import FEATURES, Sources, StoreTable, near_matrix
from .splits import Split, validation
from .threads import one_blas_thread
from .training import TrainConfig, TrainedModel, representations, train
from .two_stage import Lessons, TwoStageRanker
from .window import Window

#: At most this many validation users (a seeded sample) choose the neighbourhood settings
#: and teach the ranker: a compute budget. Every evaluation set has fewer; with all 50,000
#: users of 1M generated orders, the retraining job had not finished after 25 minutes.
RANKER_USERS = 10_000
#: The ranker's table at most, in candidate rows, counting an earlier cut as large as the
#: last one: a compute budget (one cut of 5,000 users x 28,000 stores is 1.56 million rows,
#: boosted in 50-66 s on two cores), not a fitted constant.
LESSON_ROWS = 2_000_000
#: Cuts at most, the latest included: the third one's sources see only 0.8^2 = 64 % of each
#: user's history, and an earlier one would look still less like serving.
MAX_CUTS = 3
#: Columns unknown for a store the second stage never saw (the rest come from the request).
_COLD = np.array([j for j, name in enumerate(FEATURES) if name not in ("lightfm", "point_m", "user_stores")])


@dataclass
class SecondStage:
    sources: Sources
    ranker: TwoStageRanker
    users: dict[str, int]
    items: dict[str, int]
    settings: dict
    #: Kept from fitting, not saved: the latest cut's sources, and every cut's lessons (the
    #: evaluation's ablation refits the ranker on them).
    fit_sources: Sources | None = field(default=None, repr=False)
    lessons: Lessons | None = field(default=None, repr=False)

    def features(self, user_id: str | None, store_ids, lightfm, lat: float, lon: float) -> np.ndarray:
        """Features of ``store_ids`` for one user asking from (lat, lon); unknown ids are cold."""
        u = self.users.get(user_id, -1) if user_id is not None else -1
        items = np.fromiter((self.items.get(s, -1) for s in store_ids), dtype=np.int64)
        known = items >= 0
        at = np.where(known, items, 0)
        scores = self.sources.row(u, at)
        if lightfm is not None:
            scores["lightfm"] = np.asarray(lightfm, np.float32)
        n = len(at)
        feats = self.sources.pair_features(
            np.full(n, u, np.int64), at, scores, (np.full(n, float(lat)), np.full(n, float(lon)))
        )
        if not known.all():  # a store the second stage never saw: no history, no popularity
            feats[np.ix_(~known, _COLD)] = np.nan
        return feats

    def score(self, feats: np.ndarray) -> np.ndarray:
        return self.ranker.predict(feats)

    def warm_up(self) -> None:
        """Score one store for a known and an unknown user, so that the compiled kernels are
        loaded (or, on a fresh machine, compiled: a few seconds) before the first request."""
        if not self.items:
            return
        store = next(iter(self.items))
        at = self.items[store]
        lat, lon = float(self.sources.stores.lat[at]), float(self.sources.stores.lon[at])
        for user in (next(iter(self.users), None), None):
            self.score(self.features(user, [store], None, lat, lon))


@one_blas_thread
def fit_second_stage(
    stores: pd.DataFrame,
    rows: pd.DataFrame,
    uidx: dict,
    items: dict,
    cfg: TrainConfig,
    log=print,
    *,
    lightfm: bool | TrainedModel = True,
    split: Split | None = None,
    tuned: dict | None = None,
) -> SecondStage:
    """Fit the second stage on interaction ``rows`` (one per visit; ``ts`` when known).

    ``stores`` are in ``items`` order. ``split`` and ``tuned`` may come from a caller that
    made them already (the evaluation); otherwise they are made here, the same way.
    ``lightfm``: False for no LightFM feature, or the LightFM already fitted on
    ``split.fit_pairs`` (the evaluation fits it in parallel).
    """
    split = split or validation(rows, uidx, items, cfg)
    learners = tuning_users(split.val_m, cfg.seed, RANKER_USERS)
    if tuned is None:
        labels = only_rows(split.val_m, learners)
        tuned = {
            name: tune_neighbourhood(name, split.fit_m, labels, cfg.k, log, exclude=False, users=learners)
            for name in NEIGHBOURHOOD
        }
    table_stores = StoreTable.of(stores)
    near = near_matrix(table_stores.lat, table_stores.lon)

    def fit_early(part: Split):
        return lightfm_scores(early_lightfm(stores, part.fit_pairs, cfg, log), list(uidx))

    def learn(part: Split, learners: np.ndarray, early, cut: int) -> tuple[Sources, Lessons]:
        """One cut: the sources of its earlier part, and the ranker's lists of its learners."""
        sources = Sources.fit(Window.of(part.fit_rows, uidx, items), table_stores, tuned, near, learners)
        return sources, TwoStageRanker().lessons(sources, only_rows(part.val_m, learners), early, cut=cut)

    if isinstance(lightfm, TrainedModel):
        early = lightfm_scores(lightfm, list(uidx))
    else:
        early = fit_early(split) if lightfm else None
    fit_sources, lessons = learn(split, learners, early, 0)
    # Earlier cuts, while LESSON_ROWS has room for one as large as the last: validation's
    # split made again on its own earlier part, with sources and an early LightFM of their
    # own, so no feature has seen its labels (see the module docstring).
    part, last = split, lessons
    for cut in range(1, MAX_CUTS):
        if len(lessons.target) + len(last.target) > LESSON_ROWS:
            break
        part = validation(part.fit_rows, uidx, items, cfg)
        learners = tuning_users(part.val_m, cfg.seed, RANKER_USERS)
        if len(learners) < 2:
            break
        _, last = learn(part, learners, fit_early(part) if lightfm else None, cut)
        lessons = lessons + last
    ranker = TwoStageRanker(seed=cfg.seed).fit(lessons, log)
    sources = Sources.fit(Window.of(rows, uidx, items), table_stores, tuned, near)
    return SecondStage(sources, ranker, uidx, items, tuned, fit_sources, lessons)


def early_lightfm(stores, fit_pairs, cfg: TrainConfig, log=print) -> TrainedModel:
    """The LightFM whose raw scores are the ranker's ``lightfm`` feature: fitted on the
    earlier part only, so it has seen none of the labels; no blend is served from it.

    Its epochs are validation's choice alone: the served model's floor (``min_epochs``) is
    there for ranking a user's own favourites, which the ranker learns from its repeat
    features instead."""
    return train(
        stores,
        fit_pairs,
        None,
        replace(cfg, tune_blend=False, min_epochs=1),
        log=lambda m: log("[ranker lightfm] " + m),
    )


def fit_from_orders(stores: pd.DataFrame, orders: pd.DataFrame, reviews, cfg: TrainConfig, log=print) -> SecondStage:
    """The retraining job's second stage: the orders (one row per order, with ``ts``) in
    time over the whole catalogue, with ratings from the reviews (``recommender.signals``)."""
    stores = with_review_ratings(stores, reviews)
    items = {s: i for i, s in enumerate(stores["store_id"])}
    rows = orders.assign(user_id=orders["user_id"].astype(str), store_id=orders["store_id"].astype(str))
    rows = rows[rows["store_id"].isin(items)]
    users = {u: i for i, u in enumerate(sorted(set(rows["user_id"])))}
    return fit_second_stage(stores, rows, users, items, cfg, log)


def lightfm_scores(trained, users: list[str]):
    """Scores in ``users`` order; users the model never saw take the cold path (no
    history, no features: item biases only), as ``Scorer`` serves them."""
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


# ------------------------------------------------------------------ saving
def to_files(stage: SecondStage) -> tuple[dict, dict, str]:
    """(arrays for np.savez, JSON vocabulary, LightGBM model text)."""
    s, w = stage.sources, stage.sources.window
    arrays = {
        "popularity": w.popularity,
        **({"gap_log_sum": w.gap_log_sum, "gap_count": w.gap_count} if w.gap_count is not None else {}),
        "lat": s.stores.lat,
        "lon": s.stores.lon,
        "category": s.stores.category,
        "rating": s.stores.rating,
    }
    mats = {"x": w.x, "visits": w.visits, "near": s.near}
    mats.update({f"{name}_sim": _similarity(m) for name, m in s.models.items()})
    if w.days_since is not None:
        mats["days_since"] = w.days_since
    for name, m in mats.items():
        m = sp.csr_matrix(m)
        arrays.update({f"{name}_data": m.data, f"{name}_indices": m.indices, f"{name}_indptr": m.indptr})
        arrays[f"{name}_shape"] = np.array(m.shape, dtype=np.int64)
    vocab = {
        "users": list(stage.users),
        "items": list(stage.items),
        "settings": stage.settings,
        "features": stage.ranker.feature_names_,
        "end": w.end.isoformat() if w.end is not None else None,
    }
    return arrays, vocab, stage.ranker.booster_.model_to_string()


def from_files(arrays: dict, vocab: dict, model_text: str) -> SecondStage:
    import lightgbm as lgb

    def mat(name):
        if f"{name}_shape" not in arrays:
            return None
        return sp.csr_matrix(
            (arrays[f"{name}_data"], arrays[f"{name}_indices"], arrays[f"{name}_indptr"]),
            shape=tuple(arrays[f"{name}_shape"]),
        )

    end = pd.Timestamp(vocab["end"]) if vocab.get("end") else None
    window = Window(
        mat("x"),
        mat("visits"),
        mat("days_since"),
        arrays["popularity"],
        end,
        arrays.get("gap_log_sum"),
        arrays.get("gap_count"),
    )
    stores = StoreTable(arrays["lat"], arrays["lon"], arrays["category"], arrays["rating"])
    models = {}
    for name, (cls, _grid) in NEIGHBOURHOOD.items():
        m = cls(**vocab["settings"].get(name, {}))
        m.x_ = window.x
        setattr(m, "w_" if name == "rp3beta" else "sim_", mat(f"{name}_sim"))
        models[name] = m
    ranker = TwoStageRanker()
    ranker.booster_ = lgb.Booster(model_str=model_text)
    ranker.feature_names_ = list(vocab["features"])
    users = {u: i for i, u in enumerate(vocab["users"])}
    items = {s: i for i, s in enumerate(vocab["items"])}
    stage = SecondStage(Sources(window, stores, models, mat("near")), ranker, users, items, vocab["settings"])
    stage.warm_up()
    return stage


def _similarity(model) -> sp.csr_matrix:
    return model.w_ if hasattr(model, "w_") else model.sim_
