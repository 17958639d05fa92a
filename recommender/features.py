"""Feature space: id mappings and the user / item feature matrices LightFM trains on.

Items are **stores**. A deal is ranked by its store's score (plus its own discount in the
serving blend), so a new deal is rankable the moment it exists, and a new store is
rankable from its attributes alone: its row has no identity column, only features.

Every feature is a named column, built with scikit-learn's ``DictVectorizer`` (names
to columns) and ``TfidfVectorizer`` (review keywords). The vocabulary is saved as a list
of names, so serving rebuilds any row, old or new, by name, without pickles.

Item features: ``category=``, ``price=``, ``rating_band=``, ``tag=``, ``cell=`` (area),
``kw=`` (top TF-IDF keywords of the store's reviews).
User features, derived from the user's own history (never from the generator's hidden
parameters): ``ucell=`` (most frequent area), ``ucat=`` (top categories), ``uprice=``
(typical price level), ``uact=`` (activity band). A new user can be described by the
same names at request time (e.g. ``ucell=`` of where they are).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction import DictVectorizer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from .geo import area_cell


@dataclass(frozen=True)
class FeatureConfig:
    cell_deg: float = 0.01
    keywords_per_item: int = 5
    max_keywords: int = 500
    top_user_categories: int = 3
    identity: bool = True
    item_features: bool = True
    user_features: bool = True
    #: A known id's attributes, together, against its identity column (1: half the row
    #: each). Chosen on validation in ``training.train``: where attributes are drawn apart
    #: from the visits, their shared embeddings pull every user to the same few stores.
    feature_weight: float = 1.0

    def to_dict(self) -> dict:
        return asdict(self)


class FeatureSpace:
    """Fitted id mappings and feature vocabularies.

    ``fit`` learns them from training data; afterwards ``item_matrix``/``user_matrix`` give
    the training matrices and ``item_rows``/``user_rows`` encode anything by name.
    """

    def __init__(self, config: FeatureConfig | None = None):
        self.config = config or FeatureConfig()

    # --------------------------------------------------------------- fitting
    def fit(self, stores: pd.DataFrame, interactions: pd.DataFrame, reviews: pd.DataFrame | None = None):
        """Learn ids and vocabularies.

        ``stores``: store_id, lat, lon, [category, tags, price_level, rating].
        ``interactions``: user_id, store_id, weight (training positives only).
        ``reviews``: store_id, text (optional; only training-period reviews).
        """
        self.item_ids_ = list(dict.fromkeys(stores["store_id"].astype(str)))
        self.item_index_ = {s: i for i, s in enumerate(self.item_ids_)}
        users = interactions["user_id"].astype(str)
        self.user_ids_ = sorted(set(users))
        self.user_index_ = {u: i for i, u in enumerate(self.user_ids_)}
        self._stores = (
            stores.assign(store_id=stores["store_id"].astype(str))
            .drop_duplicates("store_id")
            .set_index("store_id", drop=False)
        )
        keywords = self._fit_keywords(reviews)
        # Plain dicts, not a ``.loc`` Series per store: ~0.3 ms each, 9 s at 28,000 stores.
        rows = self._stores.loc[self.item_ids_].to_dict("records")
        cells = _cells(rows, self.config.cell_deg)
        item_dicts = [
            self.item_feature_dict(row, keywords.get(s), cell) for s, row, cell in zip(self.item_ids_, rows, cells)
        ]
        user_dicts = self._history_user_dicts(interactions)
        # DictVectorizer: sorted, stable names -> columns. Identity columns come first.
        self.item_vectorizer_ = DictVectorizer(sort=True).fit(item_dicts if self.config.item_features else [{}])
        self.user_vectorizer_ = DictVectorizer(sort=True).fit(user_dicts if self.config.user_features else [{}])
        self._item_dicts, self._user_dicts = item_dicts, user_dicts
        return self

    def reconfigure(self, config: FeatureConfig) -> FeatureSpace:
        """The same fitted vocabularies under another config of the same features (another
        ``feature_weight``): the matrices are built again on next use."""
        self.config = config
        self._item_m = self._user_m = None
        return self

    @property
    def item_feature_names(self) -> list[str]:
        return list(self.item_vectorizer_.feature_names_)

    @property
    def user_feature_names(self) -> list[str]:
        return list(self.user_vectorizer_.feature_names_)

    def item_matrix(self) -> sp.csr_matrix:
        if getattr(self, "_item_m", None) is None:
            self._item_m = self._matrix(self._item_dicts, self.item_vectorizer_, len(self.item_ids_))
        return self._item_m

    def user_matrix(self) -> sp.csr_matrix:
        if getattr(self, "_user_m", None) is None:
            self._user_m = self._matrix(self._user_dicts, self.user_vectorizer_, len(self.user_ids_))
        return self._user_m

    @classmethod
    def from_vocabulary(
        cls, config: FeatureConfig, vocab: dict, item_matrix: sp.csr_matrix, user_matrix: sp.csr_matrix
    ) -> FeatureSpace:
        """A fitted space rebuilt from saved names and matrices (no pickle, no refit)."""
        space = cls(config)
        space.item_ids_, space.user_ids_ = list(vocab["item_ids"]), list(vocab["user_ids"])
        space.item_index_ = {s: i for i, s in enumerate(space.item_ids_)}
        space.user_index_ = {u: i for i, u in enumerate(space.user_ids_)}
        space.keyword_vocab_ = list(vocab.get("keyword_vocab", []))
        space.item_vectorizer_ = _vectorizer(vocab["item_feature_names"])
        space.user_vectorizer_ = _vectorizer(vocab["user_feature_names"])
        space._item_m, space._user_m = item_matrix.tocsr(), user_matrix.tocsr()
        return space

    def vocabulary(self) -> dict:
        return {
            "item_ids": self.item_ids_,
            "user_ids": self.user_ids_,
            "item_feature_names": self.item_feature_names,
            "user_feature_names": self.user_feature_names,
            "keyword_vocab": list(getattr(self, "keyword_vocab_", [])),
        }

    def _matrix(self, dicts, vectorizer, n_ids) -> sp.csr_matrix:
        feats = vectorizer.transform(dicts) if vectorizer.feature_names_ else sp.csr_matrix((n_ids, 0))
        return compose_rows(feats, np.arange(n_ids), n_ids, self.config.identity, self.config.feature_weight)

    # --------------------------------------------------------------- features
    def item_feature_dict(self, store, keywords=None, cell: str | None = None) -> dict[str, float]:
        """Named features of one store (a mapping with the catalogue fields); ``cell``: its
        ``area_cell`` when the caller made them for many stores at once (``_cells``)."""
        cfg = self.config
        out: dict[str, float] = {}
        cat = _clean(store.get("category"))
        if cat:
            out[f"category={cat}"] = 1.0
        price = _number(store.get("price_level"))
        if price is not None:
            out[f"price={int(price)}"] = 1.0
        rating = _number(store.get("rating"))
        if rating is not None:
            out[f"rating_band={math.floor(rating * 2) / 2:.1f}"] = 1.0
        for tag in _tags(store.get("tags")):
            out[f"tag={tag}"] = 1.0
        if cell is None:
            cell = _cells([store], cfg.cell_deg)[0]
        if cell is not None:
            out[f"cell={cell}"] = 1.0
        for word, weight in (keywords or {}).items():
            out[f"kw={word}"] = float(weight)
        return out

    def _fit_keywords(self, reviews) -> dict[str, dict[str, float]]:
        if reviews is None or not len(reviews) or "text" not in reviews:
            self.keyword_vocab_: list[str] = []
            return {}
        text = reviews.dropna(subset=["text"]).groupby(reviews["store_id"].astype(str))["text"].apply(" ".join)
        if text.empty:
            self.keyword_vocab_ = []
            return {}
        tfidf = TfidfVectorizer(
            max_features=self.config.max_keywords, stop_words="english", min_df=2, token_pattern=r"(?u)\b[a-z][a-z]+\b"
        )
        try:
            m = tfidf.fit_transform(text.to_numpy())
        except ValueError:  # an empty vocabulary after stop words and min_df
            self.keyword_vocab_ = []
            return {}
        words = tfidf.get_feature_names_out()
        self.keyword_vocab_ = list(words)
        out = {}
        k = self.config.keywords_per_item
        for row, store_id in enumerate(text.index):
            vals = m.getrow(row)
            top = np.argsort(-vals.data)[:k]
            out[store_id] = {words[vals.indices[j]]: round(float(vals.data[j]), 4) for j in top}
        return out

    def _history_user_dicts(self, interactions: pd.DataFrame) -> list[dict[str, float]]:
        frame = interactions.assign(
            user_id=interactions["user_id"].astype(str), store_id=interactions["store_id"].astype(str)
        )
        frame = frame[frame["store_id"].isin(self.item_index_)]
        attrs = self._stores.reindex(frame["store_id"].to_numpy())
        frame = frame.assign(
            category=attrs["category"].to_numpy() if "category" in attrs else None,
            price=attrs["price_level"].to_numpy(float) if "price_level" in attrs else np.nan,
            lat=attrs["lat"].to_numpy(float),
            lon=attrs["lon"].to_numpy(float),
        )
        if "weight" not in frame:
            frame = frame.assign(weight=1.0)
        feats = user_features_table(frame, self.config)
        dicts: dict[str, dict[str, float]] = {u: {} for u in self.user_ids_}
        for user, name, value in zip(feats["user_id"].tolist(), feats["name"].tolist(), feats["value"].tolist()):
            dicts[user][name] = value
        return [dicts[u] for u in self.user_ids_]

    def item_rows(self, stores: list[dict]) -> sp.csr_matrix:
        """Feature rows for any stores, by name: known stores get their identity column too."""
        feats = (
            self.item_vectorizer_.transform([self.item_feature_dict(s) for s in stores])
            if self.item_vectorizer_.feature_names_
            else sp.csr_matrix((len(stores), 0))
        )
        idx = np.array([self.item_index_.get(str(s.get("store_id")), -1) for s in stores])
        return compose_rows(feats, idx, len(self.item_ids_), self.config.identity, self.config.feature_weight)

    def user_rows(self, feature_dicts: list[dict[str, float]]) -> sp.csr_matrix:
        """Feature rows for users described only by features (no identity column)."""
        feats = (
            self.user_vectorizer_.transform(feature_dicts)
            if self.user_vectorizer_.feature_names_
            else sp.csr_matrix((len(feature_dicts), 0))
        )
        unknown = np.full(len(feature_dicts), -1)
        return compose_rows(feats, unknown, len(self.user_ids_), self.config.identity, self.config.feature_weight)


def user_features_table(history: pd.DataFrame, config: FeatureConfig) -> pd.DataFrame:
    """User features from weighted histories, vectorised over all users.

    ``history``: user_id, weight, category, price, lat, lon (one row per user-store pair).
    Categories and areas are each user's whole weighted distribution over them (shares
    summing to 1 per group), not just the top few: a user who splits time between cafés
    and bookshops should look like both. Returns rows (user_id, name, value).
    """
    h = history.assign(
        weight=np.where(
            np.isfinite(history["weight"].to_numpy(float)) & (history["weight"].to_numpy(float) > 0),
            history["weight"],
            0.0,
        )
    )
    h = h.assign(cell=area_cell(h["lat"].to_numpy(float), h["lon"].to_numpy(float), config.cell_deg))
    total = h.groupby("user_id")["weight"].transform("sum").replace(0, 1.0)
    h = h.assign(share=h["weight"] / total)
    parts = []
    for col, prefix in (("cell", "ucell="), ("category", "ucat=")):
        sub = h.dropna(subset=[col]) if col == "category" else h
        g = sub.groupby(["user_id", col], sort=False)["share"].sum().round(4).reset_index()
        parts.append(
            pd.DataFrame(
                {"user_id": g["user_id"], "name": prefix + g[col].astype(str), "value": g["share"].to_numpy(float)}
            )
        )
    price = h.dropna(subset=["price"]).groupby("user_id")["price"].median()
    parts.append(
        pd.DataFrame({"user_id": price.index, "name": "uprice=" + price.round().astype(int).astype(str), "value": 1.0})
    )
    n = h.groupby("user_id").size()
    parts.append(
        pd.DataFrame(
            {
                "user_id": n.index,
                "name": "uact=" + np.minimum(np.log2(n.to_numpy()).astype(int), 6).astype(str),
                "value": 1.0,
            }
        )
    )
    return pd.concat(parts, ignore_index=True)


def _vectorizer(names: list[str]) -> DictVectorizer:
    vec = DictVectorizer(sort=True)
    vec.feature_names_ = list(names)
    vec.vocabulary_ = {n: i for i, n in enumerate(names)}
    return vec


def compose_rows(
    feats: sp.csr_matrix, identity_idx: np.ndarray, n_ids: int, identity: bool, feature_weight: float = 1.0
) -> sp.csr_matrix:
    """[identity | features], each row L1-normalised.

    A known id gets weight on its identity column (1) and its features (``feature_weight``
    in all); an unknown id (index -1) has features only. Normalising keeps the scale of a
    row's representation independent of how many features it happens to have.
    """
    n = feats.shape[0]
    if identity:
        known = identity_idx >= 0
        ident = sp.csr_matrix(
            (np.ones(int(known.sum())), (np.flatnonzero(known), identity_idx[known])), shape=(n, n_ids)
        )
        feats = normalize(feats, norm="l1") * feature_weight if feats.shape[1] else feats
        rows = sp.hstack([ident, feats], format="csr")
    else:
        rows = feats.tocsr()
    return normalize(rows, norm="l1").astype(np.float32).tocsr()


def _cells(stores: list, size_deg: float) -> list[str | None]:
    """Each store's ``area_cell`` (None without a position), in one vectorised call:
    one call per store cost ~35 us, a second at 28,000 stores."""
    lat = [_number(s.get("lat")) for s in stores]
    lon = [_number(s.get("lon")) for s in stores]
    known = [i for i, (a, b) in enumerate(zip(lat, lon)) if a is not None and b is not None]
    out: list[str | None] = [None] * len(stores)
    names: list = list(area_cell([lat[i] for i in known], [lon[i] for i in known], size_deg)) if known else []
    for i, name in zip(known, names):
        out[i] = str(name)
    return out


def _clean(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip().lower()


def _number(value):
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _tags(value) -> list[str]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    items = value if isinstance(value, (list, tuple, np.ndarray)) else str(value).replace(";", "|").split("|")
    return sorted({str(t).strip().lower() for t in items if str(t).strip()})
