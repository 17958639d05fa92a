"""A two-stage ranker: candidates from several sources, re-ranked by LightGBM lambdarank.

Stage one takes the best ``per_source`` unseen stores of each source (user-KNN, item-KNN,
RP3beta, kernel density over the user's past places, popularity, and LightFM when given).
Stage two scores every candidate with a gradient-boosted ranker over those sources' scores
and ranks, distances, popularity, category affinity and the user's activity.

It is trained the way it will be used: TRAIN is split per user in time (``split_per_user``),
the sources see only the earlier part, and the labels are the later part's stores, which
are new to the user, as in the test. Boosting rounds stop on a held-out share of those
users; no setting is a constant fitted to one data set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .evaluation import top_k
from .geo import pairwise_m
from .neighbours import ItemKNN, RP3beta, UserKNN

#: Kernel widths of the density features, metres: a block, a walk, a district.
DENSITY_SCALES_M = (300.0, 1000.0, 3000.0)
_CHUNK = 256


@dataclass
class Sources:
    """Stage one: every source fitted on one users x items matrix."""

    x: sp.csr_matrix
    lat: np.ndarray
    lon: np.ndarray
    category: np.ndarray | None
    models: dict
    extra: dict  # name -> score function(rows) -> dense scores (LightFM)

    @classmethod
    def fit(cls, x, lat, lon, category, settings: dict, extra: dict | None = None) -> Sources:
        models = {
            "user_knn": UserKNN(**settings.get("user_knn", {})).fit(x),
            "item_knn": ItemKNN(**settings.get("item_knn", {})).fit(x),
            "rp3beta": RP3beta(**settings.get("rp3beta", {})).fit(x),
        }
        return cls(sp.csr_matrix(x), lat, lon, category, models, extra or {})

    def blocks(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Dense per-source scores for ``rows`` (users x items)."""
        out = {name: m.score(rows) for name, m in self.models.items()}
        out.update({name: np.asarray(fn(rows), dtype=np.float32) for name, fn in self.extra.items()})
        pop = np.log1p(np.asarray(self.x.sum(axis=0)).ravel()).astype(np.float32)
        out["popularity"] = np.broadcast_to(pop, (len(rows), len(pop)))
        dens, near = _density(self.x, rows, self.lat, self.lon)
        out.update(dens)
        out["nearest_past_m"] = near
        if self.category is not None:
            out["category_share"] = _category_share(self.x, rows, self.category)
        return out


#: Sources whose top stores become candidates (the rest are features only).
CANDIDATE_SOURCES = ("user_knn", "item_knn", "rp3beta", "density_1000", "popularity", "lightfm")
#: Feature groups for the ablation: a group's columns start with one of its prefixes.
FEATURE_GROUPS = {
    "neighbourhood": ("user_knn", "item_knn", "rp3beta"),
    "place": ("density_", "nearest_past_m"),
    "popularity": ("popularity",),
    "lightfm": ("lightfm",),
    "category": ("category_share",),
    "activity": ("user_stores",),
}


class TwoStageRanker:
    """Stage two: LightGBM lambdarank over the candidates of ``Sources``."""

    def __init__(self, per_source: int = 100, seed: int = 0, max_rounds: int = 400, drop: tuple[str, ...] = ()):
        self.per_source = per_source
        self.seed = seed
        self.max_rounds = max_rounds
        self.drop = drop  # FEATURE_GROUPS left out (the ablation); candidates still come from every source

    def training_table(self, sources: Sources, labels: sp.csr_matrix):
        """(features, labels, group sizes) of the users with labels; reusable across ablations."""
        return self._table(sources, np.flatnonzero(np.diff(labels.indptr) > 0), labels)

    def fit(
        self, sources: Sources, labels: sp.csr_matrix, log: Callable[[str], None] = print, table=None
    ) -> TwoStageRanker:
        import lightgbm as lgb

        feats, target, groups = table if table is not None else self.training_table(sources, labels)
        dropped = tuple(p for g in self.drop for p in FEATURE_GROUPS[g])
        feats = feats[[c for c in feats.columns if not c.startswith(dropped)]] if dropped else feats
        rng = np.random.default_rng(self.seed)
        held = rng.random(len(groups)) < 0.2
        row_held = np.repeat(held, groups)
        self.model_ = lgb.LGBMRanker(
            objective="lambdarank",
            n_estimators=self.max_rounds,
            learning_rate=0.05,
            num_leaves=31,
            min_child_samples=20,
            subsample=0.8,
            subsample_freq=1,
            colsample_bytree=0.8,
            random_state=self.seed,
            n_jobs=1,
            verbose=-1,
        )
        self.model_.fit(
            feats[~row_held],
            target[~row_held],
            group=groups[~held],
            eval_X=(feats[row_held],),
            eval_y=(target[row_held],),
            eval_group=[groups[held]],
            eval_at=[10],
            callbacks=[lgb.early_stopping(30, verbose=False)],
        )
        self.feature_names_ = list(feats.columns)
        log(
            f"[two_stage] {len(groups)} users, {len(feats)} candidates ({target.mean():.3%} positive); "
            f"{self.model_.best_iteration_} rounds"
        )
        return self

    def score(self, sources: Sources, rows: np.ndarray, known: sp.csr_matrix) -> np.ndarray:
        """Dense scores: candidates by the ranker, every other store after them by popularity."""
        out = []
        for start in range(0, len(rows), _CHUNK):
            chunk = rows[start : start + _CHUNK]
            blocks = sources.blocks(chunk)
            cand_r, cand_c = self._candidates(blocks, chunk, known)
            feats = _features(blocks, cand_r, cand_c, sources.x, chunk)
            pred = self.model_.predict(feats[self.feature_names_]) if len(feats) else np.zeros(0)
            dense = -1e6 + blocks["popularity"].astype(np.float64)
            dense[cand_r, cand_c] = pred
            out.append(dense)
        return np.vstack(out) if out else np.zeros((0, known.shape[1]))

    def _candidates(self, blocks, chunk, known):
        """(row in chunk, item) pairs: each candidate source's best unseen stores, united."""
        seen = known[chunk]
        picked = np.zeros((len(chunk), known.shape[1]), dtype=bool)
        for name in CANDIDATE_SOURCES:
            if name not in blocks:
                continue
            s = np.array(blocks[name], dtype=np.float64, copy=True)
            s[np.repeat(np.arange(len(chunk)), np.diff(seen.indptr)), seen.indices] = -np.inf
            top = top_k(s, self.per_source)
            ok = np.isfinite(np.take_along_axis(s, top, axis=1))
            r = np.repeat(np.arange(len(chunk))[:, None], top.shape[1], axis=1)
            picked[r[ok], top[ok]] = True
        return np.nonzero(picked)

    def _table(self, sources, users, labels):
        feats, target, groups = [], [], []
        for start in range(0, len(users), _CHUNK):
            chunk = users[start : start + _CHUNK]
            blocks = sources.blocks(chunk)
            cand_r, cand_c = self._candidates(blocks, chunk, sources.x)
            f = _features(blocks, cand_r, cand_c, sources.x, chunk)
            y = np.asarray(labels[chunk][cand_r, cand_c]).ravel() > 0
            feats.append(f)
            target.append(y.astype(np.int32))
            groups.append(np.bincount(cand_r, minlength=len(chunk)))
        g = np.concatenate(groups)
        f, t = pd.concat(feats, ignore_index=True), np.concatenate(target)
        # Users without a labelled candidate teach a lambdarank nothing.
        has_pos = np.bincount(np.repeat(np.arange(len(g)), g), weights=t, minlength=len(g)) > 0
        keep = np.repeat(has_pos, g)
        return f[keep].reset_index(drop=True), t[keep], g[has_pos]


def _features(blocks, r, c, x, chunk) -> pd.DataFrame:
    cols = {}
    for name, b in blocks.items():
        vals = np.asarray(b)[r, c]
        cols[name] = vals
        if name in CANDIDATE_SOURCES:
            # The rank of the store in this source for this user (1 = best), from the score.
            order = np.argsort(np.argsort(-np.asarray(b), axis=1, kind="stable"), axis=1, kind="stable")
            cols[name + "_rank"] = order[r, c].astype(np.float32) + 1
    cols["user_stores"] = np.diff(x.indptr)[chunk][r].astype(np.float32)
    return pd.DataFrame(cols)


def _density(x, rows, lat, lon) -> tuple[dict, np.ndarray]:
    """Gaussian kernel density of each store around the user's past stores, and the distance
    to the nearest one."""
    n = len(lat)
    dens = {f"density_{int(s)}": np.zeros((len(rows), n), dtype=np.float32) for s in DENSITY_SCALES_M}
    near = np.full((len(rows), n), 1e7, dtype=np.float32)
    for i, u in enumerate(rows):
        idx = x.indices[x.indptr[u] : x.indptr[u + 1]]
        if not len(idx):
            continue
        d = pairwise_m(lat[idx], lon[idx], lat, lon)
        near[i] = d.min(axis=0)
        for s in DENSITY_SCALES_M:
            dens[f"density_{int(s)}"][i] = np.exp(-0.5 * (d / s) ** 2).sum(axis=0)
    return dens, near


def _category_share(x, rows, category: np.ndarray) -> np.ndarray:
    """Share of the user's past stores in each store's category."""
    codes, inverse = np.unique(category, return_inverse=True)
    onehot = sp.csr_matrix((np.ones(len(inverse), np.float32), (np.arange(len(inverse)), inverse)))
    per_cat = (x[rows] @ onehot).toarray()
    per_cat /= np.maximum(per_cat.sum(axis=1, keepdims=True), 1.0)
    return per_cat[:, inverse].astype(np.float32)
