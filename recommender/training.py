"""Training: interaction weights, a validation split carved from training, LightFM with
early stopping, and the blend with distance tuned on that validation split."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import partial

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .blend import Blend, best_on_grid, tune_on_grid, tuning_users
from .data import every_row_timed
from .evaluation import evaluate, interaction_matrix, only_rows
from .features import FeatureConfig, FeatureSpace
from .geo import nearest_m
from .threads import one_blas_thread

REVIEW_FACTOR = {5: 1.5, 4: 1.2, 3: 1.0, 2: 0.0, 1: 0.0}


@dataclass(frozen=True)
class TrainConfig:
    no_components: int = 48
    loss: str = "warp"
    learning_rate: float = 0.05
    item_alpha: float = 1e-6
    user_alpha: float = 1e-6
    max_sampled: int = 30
    max_epochs: int = 40
    patience: int = 4
    # Validation scores only stores new to each user, so it peaks within an epoch or two;
    # serving also ranks the user's own favourites, which take more epochs to learn.
    min_epochs: int = 10
    k: int = 10
    validation_fraction: float = 0.2
    threads: int = 1
    seed: int = 0
    features: FeatureConfig = field(default_factory=FeatureConfig)
    # Distance weights relative to one standard deviation of preference; wide on purpose:
    # on real check-ins distance dominates and the best weight sat at the old edge (4).
    blend_weights: tuple = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
    blend_scales_m: tuple = (200.0, 300.0, 500.0, 1000.0, 3000.0)
    # False where the model's scores are used without the distance blend (the evaluation's
    # lightfm_cf, the second stage's LightFM feature): the grid costs more than the fit.
    tune_blend: bool = True
    # The weight of the attribute features against the identity column (FeatureConfig's
    # ``feature_weight``), chosen on the validation split: 1 where attributes carry the
    # visits (NYC's categories and places), lower where they are drawn apart from them and
    # their shared embeddings pull every user to the same few stores. The first is kept
    # unless another beats it beyond the validation's noise. Empty: keep the features' own.
    feature_weights: tuple = (1.0, 0.1)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainedModel:
    space: FeatureSpace
    item_embeddings: np.ndarray  # per item feature (identity columns first)
    item_biases: np.ndarray
    user_embeddings: np.ndarray  # per user feature
    user_biases: np.ndarray
    blend: Blend
    meta: dict
    #: The fitted LightFM object when trained in this process (not saved; for checks).
    lightfm: object | None = None
    #: The second-stage ranker (``recommender.served.SecondStage``) when one was fitted.
    second_stage: object | None = None


def interaction_weights(
    orders: pd.DataFrame | None, reviews: pd.DataFrame | None, now=None, half_life_days: float = 45.0
) -> pd.DataFrame:
    """One weighted positive per (user, store).

    Orders add ``0.5 ** (age / half_life)``: recent orders count more. The user's latest
    review of the store scales the pair (5 stars x1.5, 4 x1.2, 3 x1.0); a review of 1 or 2
    stars removes the pair, because a bad experience is not a positive. A review without
    an order is a positive of its own (weight = its factor).
    """
    parts = []
    stamps = [f["ts"].max() for f in (orders, reviews) if f is not None and len(f) and "ts" in f]
    now = pd.Timestamp(now) if now is not None else (max(stamps) if stamps else pd.Timestamp.now(tz="UTC"))
    if orders is not None and len(orders):
        age = ((now - orders["ts"]).dt.total_seconds() / 86400).clip(lower=0) if "ts" in orders else 0.0
        parts.append(orders.assign(w=0.5 ** (age / half_life_days))[["user_id", "store_id", "w"]])
    base = (
        pd.concat(parts).groupby(["user_id", "store_id"], sort=False)["w"].sum()
        if parts
        else pd.Series(dtype=float, index=pd.MultiIndex.from_tuples([], names=["user_id", "store_id"]))
    )
    if reviews is not None and len(reviews):
        latest = (
            reviews.sort_values("ts").groupby(["user_id", "store_id"], sort=False)["rating"].last()
            if "ts" in reviews
            else reviews.groupby(["user_id", "store_id"], sort=False)["rating"].last()
        )
        factor = latest.round().clip(1, 5).astype(int).map(REVIEW_FACTOR)
        base = base.reindex(base.index.union(factor.index)).fillna(1.0)
        base = base * factor.reindex(base.index).fillna(1.0)
    out = base[base > 0].rename("weight").reset_index()
    return out.sort_values(["user_id", "store_id"], ignore_index=True)


def split_per_user(frame: pd.DataFrame, fraction: float, seed: int = 0, min_items: int = 3):
    """Hold out each user's last ``fraction`` of stores (by ``ts`` if present, else at random).

    Users with fewer than ``min_items`` stores stay wholly in the first part.
    """
    rng = np.random.default_rng(seed)
    key = frame["ts"] if every_row_timed(frame) else pd.Series(rng.random(len(frame)), index=frame.index)
    order = frame.assign(_k=key.to_numpy()).sort_values(["user_id", "_k"], kind="stable")
    pos = order.groupby("user_id").cumcount().to_numpy()
    size = order.groupby("user_id")["store_id"].transform("size").to_numpy()
    cut = np.floor(size * (1 - fraction)).astype(int)
    held = (size >= min_items) & (pos >= np.maximum(cut, 1))
    return order.loc[~held].drop(columns="_k"), order.loc[held].drop(columns="_k")


@one_blas_thread
def train(
    stores: pd.DataFrame,
    interactions: pd.DataFrame,
    reviews: pd.DataFrame | None = None,
    config: TrainConfig | None = None,
    log: Callable[[str], None] = print,
) -> TrainedModel:
    """Fit the hybrid: early-stopped on a held-out split of ``interactions``, then refit on all.

    ``interactions`` has user_id, store_id, weight and optionally ts (one row per pair).
    """
    cfg = config or TrainConfig()
    t0 = time.perf_counter()
    fit_part, val_part = split_per_user(interactions, cfg.validation_fraction, cfg.seed)
    log(
        f"train: {len(interactions)} pairs, {interactions['user_id'].nunique()} users; "
        f"validation {len(val_part)} pairs of {val_part['user_id'].nunique()} users"
    )
    space = FeatureSpace(cfg.features).fit(stores, fit_part, _reviews_before(reviews, fit_part))
    model, curve, best_epoch, by_weight = _fit_feature_weights(space, fit_part, val_part, cfg, log)
    cfg = replace(cfg, features=space.config)  # the weight validation chose
    blend, blend_table = Blend(), {}
    if cfg.tune_blend:
        blend, blend_table = tune_blend(_package(model, space, Blend(), cfg), space, stores, fit_part, val_part, cfg)
        log(
            f"blend: weight={blend.weight} scale={blend.scale_m:.0f} m (validation NDCG@{cfg.k} "
            f"{max(blend_table.values()):.4f})"
        )
    # Refit on everything for the epochs that validation chose.
    full_space = FeatureSpace(cfg.features).fit(stores, interactions, reviews)
    final = _new_model(cfg)
    interactions_m, uf, itf, weights = _fit_args(full_space, interactions)
    epochs = max(best_epoch, cfg.min_epochs)
    final.fit(
        interactions_m,
        user_features=uf,
        item_features=itf,
        sample_weight=weights,
        epochs=epochs,
        num_threads=cfg.threads,
    )
    trained = _package(final, full_space, blend, cfg)
    trained.lightfm = final
    trained.blend = replace(blend, pref_scale=_score_scale(trained))
    trained.meta.update(
        {
            "best_epoch": best_epoch,
            "final_epochs": epochs,
            "validation_curve": curve,
            "feature_weight": cfg.features.feature_weight,
            "feature_weight_validation": by_weight,
            "blend_validation": {f"{w}@{s:.0f}": v for (w, s), v in blend_table.items()},
            "fingerprint": fingerprint(stores, interactions),
            "train_seconds": round(time.perf_counter() - t0, 1),
            "n_users": len(full_space.user_ids_),
            "n_items": len(full_space.item_ids_),
            "n_pairs": int(len(interactions)),
        }
    )
    log(f"done in {trained.meta['train_seconds']} s: best epoch {best_epoch}")
    return trained


def chosen_feature_weight(cfg: TrainConfig, trained: TrainedModel) -> TrainConfig:
    """``cfg`` fixed to the feature weight that validation chose for ``trained``: for models
    fitted alongside it on the same data (the second stage's early LightFMs), whose scores
    must mean what the served model's do."""
    weight = trained.space.config.feature_weight
    return replace(cfg, features=replace(cfg.features, feature_weight=weight), feature_weights=())


def _reviews_before(reviews, part):
    """Reviews of the pairs in ``part`` only: keywords must not leak from held-out visits."""
    if reviews is None or not len(reviews):
        return reviews
    keys = pd.MultiIndex.from_frame(part[["user_id", "store_id"]].astype(str))
    mine = pd.MultiIndex.from_frame(reviews[["user_id", "store_id"]].astype(str))
    return reviews[mine.isin(keys)]


def _new_model(cfg: TrainConfig):
    from lightfm import LightFM

    return LightFM(
        no_components=cfg.no_components,
        loss=cfg.loss,
        learning_rate=cfg.learning_rate,
        item_alpha=cfg.item_alpha,
        user_alpha=cfg.user_alpha,
        max_sampled=cfg.max_sampled,
        random_state=np.random.RandomState(cfg.seed),
    )


def _fit_args(space: FeatureSpace, pairs: pd.DataFrame):
    u = pairs["user_id"].astype(str).map(space.user_index_).to_numpy()
    i = pairs["store_id"].astype(str).map(space.item_index_)
    keep = i.notna().to_numpy()
    shape = (len(space.user_ids_), len(space.item_ids_))
    w = pairs["weight"].to_numpy(np.float32)[keep] if "weight" in pairs else np.ones(int(keep.sum()), np.float32)
    m = sp.coo_matrix((w, (u[keep], i.to_numpy()[keep].astype(np.int64))), shape=shape)
    m.sum_duplicates()
    interactions = sp.coo_matrix((np.ones_like(m.data), (m.row, m.col)), shape=shape)
    return interactions, space.user_matrix(), space.item_matrix(), m


def _fit_feature_weights(space: FeatureSpace, fit_part, val_part, cfg: TrainConfig, log):
    """``_fit_early_stopped`` once per weight of ``cfg.feature_weights`` (only when rows have
    both an identity column and attributes). The first weight stays unless another beats it
    by more than twice the standard error of their per-user difference on the validation
    users: where the two are close (the Helsinki orders: 0.0583 against 0.0569 in one
    two-thread fit, 0.0582 against 0.0589 in the next) the choice would be a coin toss, and
    a change of model should rest on more than that. Leaves ``space`` configured with the
    weight kept. Returns (model, curve, best_epoch, {weight: best validation NDCG})."""
    has_attributes = bool(space.item_feature_names or space.user_feature_names)
    weights = cfg.feature_weights if cfg.features.identity and has_attributes else ()
    if not weights:
        model, curve, best_epoch, _ = _fit_early_stopped(space, fit_part, val_part, cfg, log)
        return model, curve, best_epoch, {}
    by_weight: dict[float, float] = {}
    fits: dict[float, tuple] = {}
    for weight in map(float, weights):
        space.reconfigure(replace(space.config, feature_weight=weight))
        say = partial(lambda w, m: log(f"[weight {w:g}] {m}"), weight)
        fits[weight] = _fit_early_stopped(space, fit_part, val_part, cfg, say)
        by_weight[weight] = max(fits[weight][1], default=0.0)
    first = float(weights[0])
    chosen = first
    for weight, fitted in fits.items():
        diff = fitted[3] - fits[first][3]  # the same validation users, in the same order
        margin = 2 * diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else np.inf
        if diff.mean() > margin and by_weight[weight] > by_weight[chosen]:
            chosen = weight
    log(f"feature weight {chosen:g} (validation NDCG@{cfg.k} by weight: {by_weight})")
    space.reconfigure(replace(space.config, feature_weight=chosen))
    model, curve, best_epoch, _ = fits[chosen]
    return model, curve, best_epoch, by_weight


def _fit_early_stopped(space, fit_part, val_part, cfg, log):
    interactions, uf, itf, weights = _fit_args(space, fit_part)
    model = _new_model(cfg)
    train_m = interaction_matrix(interactions.row, interactions.col, interactions.shape)
    val_u = val_part["user_id"].astype(str).map(space.user_index_)
    val_i = val_part["store_id"].astype(str).map(space.item_index_)
    ok = val_u.notna() & val_i.notna()
    val_m = interaction_matrix(val_u[ok].astype(int).to_numpy(), val_i[ok].astype(int).to_numpy(), train_m.shape)
    # Early stopping needs a stable signal, not every user: the blend's cap on the users it
    # scores per epoch (TUNING_USERS), so an epoch's check costs less than the epoch.
    val_m = only_rows(val_m, tuning_users(val_m, cfg.seed))
    best, best_epoch, best_state, curve, waited = -1.0, 1, None, [], 0
    best_users = np.zeros(0)
    for epoch in range(1, cfg.max_epochs + 1):
        t = time.perf_counter()
        model.fit_partial(
            interactions, user_features=uf, item_features=itf, sample_weight=weights, epochs=1, num_threads=cfg.threads
        )
        trained = _package(model, space, Blend(), cfg)
        checked = evaluate(partial(preference_scores, trained), train_m, val_m, k=cfg.k, per_user=True)
        ndcg = checked["ndcg"] or 0.0
        curve.append(round(ndcg, 4))
        log(f"epoch {epoch:3d}  validation NDCG@{cfg.k} {ndcg:.4f}  ({time.perf_counter() - t:.1f} s)")
        if ndcg > best + 1e-5:
            best, best_epoch, waited = ndcg, epoch, 0
            best_state, best_users = _copy_params(model), checked["per_user_ndcg"]
        else:
            waited += 1
            if waited >= cfg.patience:
                log(f"early stop: no gain for {cfg.patience} epochs")
                break
    _restore_params(model, best_state)
    return model, curve, best_epoch, best_users


def _copy_params(model) -> dict:
    return {k: getattr(model, k).copy() for k in ("item_embeddings", "item_biases", "user_embeddings", "user_biases")}


def _restore_params(model, state) -> None:
    for k, v in (state or {}).items():
        setattr(model, k, v)


def _package(model, space: FeatureSpace, blend: Blend, cfg: TrainConfig) -> TrainedModel:
    return TrainedModel(
        space=space,
        item_embeddings=model.item_embeddings.astype(np.float32),
        item_biases=model.item_biases.astype(np.float32),
        user_embeddings=model.user_embeddings.astype(np.float32),
        user_biases=model.user_biases.astype(np.float32),
        blend=blend,
        meta={"hyperparameters": cfg.to_dict()},
    )


def representations(trained: TrainedModel, item_rows=None, user_rows=None):
    """(user_vectors, user_biases, item_vectors, item_biases) for the given feature rows."""
    s = trained.space
    ir = s.item_matrix() if item_rows is None else item_rows
    ur = s.user_matrix() if user_rows is None else user_rows
    return (
        np.asarray(ur @ trained.user_embeddings),
        np.asarray(ur @ trained.user_biases),
        np.asarray(ir @ trained.item_embeddings),
        np.asarray(ir @ trained.item_biases),
    )


def preference_scores(trained: TrainedModel, user_rows: np.ndarray) -> np.ndarray:
    """LightFM's prediction for every item, for users by row index (numpy, no predict())."""
    cache = trained.__dict__.setdefault("_repr_cache", {})
    if "r" not in cache:
        cache["r"] = representations(trained)
    uv, ub, iv, ib = cache["r"]
    return uv[user_rows] @ iv.T + ib[None, :] + ub[user_rows, None]


def _score_scale(trained: TrainedModel) -> float:
    """Standard deviation of the model's scores over (up to) 500 users and every store."""
    s = trained.space
    rng = np.random.default_rng(0)
    users = rng.integers(0, len(s.user_ids_), min(len(s.user_ids_), 500))
    scores = preference_scores(trained, users)
    return float(np.std(scores)) or 1.0


def user_anchors(user_index: dict[str, int], stores: pd.DataFrame, pairs: pd.DataFrame, n_anchor: int = 3):
    """Per user row (``user_index``: id -> row, one row per user), the coordinates of their
    ``n_anchor`` most-weighted stores (NaN-padded)."""
    coords = (
        stores.assign(store_id=stores["store_id"].astype(str))
        .drop_duplicates("store_id")
        .set_index("store_id")[["lat", "lon"]]
    )
    p = pairs.assign(user_id=pairs["user_id"].astype(str), store_id=pairs["store_id"].astype(str))
    if "weight" not in p:
        p = p.assign(weight=1.0)
    p = p.sort_values(["user_id", "weight", "store_id"], ascending=[True, False, True])
    top = p.groupby("user_id").head(n_anchor)
    out = np.full((len(user_index), n_anchor, 2), np.nan)
    rank = top.groupby("user_id").cumcount().to_numpy()
    rows = top["user_id"].map(user_index)
    ok = rows.notna().to_numpy() & top["store_id"].isin(coords.index).to_numpy()
    xy = coords.reindex(top["store_id"].to_numpy()).to_numpy()
    out[rows[ok].astype(int).to_numpy(), rank[ok]] = xy[ok]
    return out


def anchor_distances(anchors: np.ndarray, item_lat: np.ndarray, item_lon: np.ndarray) -> np.ndarray:
    """Metres from each item to the nearest anchor of each user (rows); inf with no anchor."""
    return nearest_m(anchors[..., 0], anchors[..., 1], item_lat, item_lon)


def tune_blend(trained, space, stores, fit_part, val_part, cfg):
    """Grid-search the blend's weight and scale on the validation split (never the test split)."""
    train_m, val_m = _matrices(space, fit_part, val_part)
    users = tuning_users(val_m, cfg.seed)
    anchors = user_anchors(space.user_index_, stores, fit_part)[users]
    lat, lon = _item_coords(space, stores)
    dist = anchor_distances(anchors, lat, lon)
    pref = preference_scores(trained, users)
    scale = float(np.std(pref)) or 1.0
    table = tune_on_grid(pref / scale, dist, cfg.blend_weights, cfg.blend_scales_m, train_m[users], val_m[users], cfg.k)
    return best_on_grid(table), table


def _matrices(space, fit_part, val_part):
    shape = (len(space.user_ids_), len(space.item_ids_))

    def to_m(part):
        u = part["user_id"].astype(str).map(space.user_index_)
        i = part["store_id"].astype(str).map(space.item_index_)
        ok = (u.notna() & i.notna()).to_numpy()
        return interaction_matrix(u[ok].astype(int).to_numpy(), i[ok].astype(int).to_numpy(), shape)

    return to_m(fit_part), to_m(val_part)


def _item_coords(space, stores):
    coords = (
        stores.assign(store_id=stores["store_id"].astype(str))
        .drop_duplicates("store_id")
        .set_index("store_id")
        .reindex(space.item_ids_)
    )
    return coords["lat"].to_numpy(float), coords["lon"].to_numpy(float)


def fingerprint(stores: pd.DataFrame, interactions: pd.DataFrame) -> str:
    """Content hash of the training inputs (order-independent)."""
    h = hashlib.sha256()
    for frame in (stores.sort_values("store_id"), interactions.sort_values(["user_id", "store_id"])):
        h.update(pd.util.hash_pandas_object(frame.reset_index(drop=True).astype(str), index=False).to_numpy().tobytes())
    return h.hexdigest()
