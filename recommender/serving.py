"""Serving: score candidate stores for a user with precomputed representations.

``Scorer`` computes every known user's and item's representation once at load
(feature rows @ feature embeddings, as LightFM does inside ``predict``), so a request is
a dictionary lookup per candidate and one small matrix-vector product.

Cold-start paths, each explicit:

- **unknown item** with attributes (``add_items``): represented by its features alone;
- **unknown item** without attributes: a zero vector and the mean item bias (neutral);
- **unknown user** with features (e.g. ``{"ucell=c6017_2493": 1}`` from where they are):
  represented by those features;
- **unknown user** with none: the ``anonymous`` path, item biases only (LightFM's biases
  carry popularity).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from .artifact import load as load_artifact
from .blend import Blend
from .training import TrainedModel, representations


@dataclass(frozen=True)
class UserState:
    kind: str  # "known" | "features" | "anonymous"
    vector: np.ndarray
    bias: float
    #: [vector | 1], to multiply with the scorer's [vector | bias] item table.
    extended: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "extended", np.append(self.vector, 1.0).astype(np.float32))


class Scorer:
    """Scores for one model version.

    Parameters
    ----------
    trained : TrainedModel
        From ``recommender.train`` or ``recommender.artifact.load``.
    """

    def __init__(self, trained: TrainedModel):
        self.trained = trained
        self.space = trained.space
        self.blend: Blend = trained.blend
        self.version: str = trained.meta.get("version", "unsaved")
        #: The served ranker (``recommender.served.SecondStage``), or None: rank by ``blend``.
        self.second_stage = trained.second_stage
        uv, ub, iv, ib = representations(trained)
        self._user_vectors, self._user_biases = uv.astype(np.float32), ub.astype(np.float32)
        self._item_vectors, self._item_biases = iv.astype(np.float32), ib.astype(np.float32)
        self._mean_bias = float(self._item_biases.mean()) if len(self._item_biases) else 0.0
        # Table row of each id: row 0 is the neutral row, so item i lives at row i + 1.
        self._item_row = {sid: i + 1 for sid, i in self.space.item_index_.items()}
        self._table = self._item_table()
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: str) -> Scorer:
        return cls(load_artifact(path))

    # ----------------------------------------------------------------- items
    def add_items(self, stores: list[dict]) -> int:
        """Make stores unseen in training rankable from their attributes; returns how many were new.

        Each mapping has the catalogue fields (store_id, category, price_level, rating, tags,
        lat, lon). Known stores are left as trained.
        """
        new = [s for s in stores if str(s.get("store_id")) not in self._item_row]
        if not new:
            return 0
        rows = self.space.item_rows(new)
        _, _, iv, ib = representations(self.trained, item_rows=rows, user_rows=self.space.user_matrix()[:0])
        with self._lock:
            base = len(self._item_biases)
            self._item_vectors = np.vstack([self._item_vectors, iv.astype(np.float32)])
            self._item_biases = np.concatenate([self._item_biases, ib.astype(np.float32)])
            for j, s in enumerate(new):
                self._item_row[str(s["store_id"])] = base + j + 1
            self._table = self._item_table()
        return len(new)

    def _item_table(self) -> np.ndarray:
        """Row 0: a neutral item (zero vector, mean bias) that unknown ids map to; then
        [vector | bias] per item. A request is one gather and one product, no masking, and
        rows stay valid when ``add_items`` appends."""
        neutral = np.zeros((1, self._item_vectors.shape[1] + 1), dtype=np.float32)
        neutral[0, -1] = self._mean_bias
        table = np.vstack([neutral, np.hstack([self._item_vectors, self._item_biases[:, None]])])
        return np.ascontiguousarray(table, dtype=np.float32)

    def knows_item(self, store_id: str) -> bool:
        return store_id in self._item_row

    def is_trained_item(self, store_id: str) -> bool:
        return store_id in self.space.item_index_

    # ----------------------------------------------------------------- users
    def user_state(self, user_id: str | None, user_features: dict | None = None) -> UserState:
        row = self.space.user_index_.get(user_id) if user_id is not None else None
        if row is not None:
            return UserState("known", self._user_vectors[row], float(self._user_biases[row]))
        if user_features:
            rows = self.space.user_rows([user_features])
            if rows.nnz:
                uv, ub, _, _ = representations(self.trained, item_rows=self.space.item_matrix()[:0], user_rows=rows)
                return UserState("features", uv[0].astype(np.float32), float(ub[0]))
        return UserState("anonymous", np.zeros(self._item_vectors.shape[1], np.float32), 0.0)

    # ---------------------------------------------------------------- scoring
    def score(self, user_id: str | None, candidate_ids, user_features: dict | None = None) -> np.ndarray:
        """LightFM preference scores for ``candidate_ids`` (same order), higher is better.

        Equal to ``LightFM.predict`` for known users and items; finite on every cold path.
        """
        return self.score_state(self.user_state(user_id, user_features), candidate_ids)

    def score_state(self, state: UserState, candidate_ids) -> np.ndarray:
        return self.score_rows(state, self.rows_for(candidate_ids))

    def rows_for(self, candidate_ids) -> np.ndarray:
        """Scorer rows of store ids (unknown ids: the neutral row). Resolve once, then ``score_rows``."""
        return np.fromiter((self._item_row.get(c, 0) for c in candidate_ids), dtype=np.int64)

    def score_rows(self, state: UserState, rows: np.ndarray) -> np.ndarray:
        """The hot path: scores for rows from ``rows_for``; one gather and one product."""
        return np.dot(np.take(self._table, rows, axis=0), state.extended) + state.bias

    def item_features_of(self, store_id: str) -> list[str]:
        """Names of the features a trained store carries (for explanations)."""
        row = self.space.item_index_.get(store_id)
        if row is None:
            return []
        m = self.space.item_matrix()
        cols = m.indices[m.indptr[row] : m.indptr[row + 1]]
        n_ids = len(self.space.item_ids_) if self.space.config.identity else 0
        names = self.space.item_feature_names
        return [names[c - n_ids] for c in cols if c >= n_ids]

    def category_shares(self, user_id: str | None) -> dict[str, float]:
        """A trained user's category taste: their ``ucat=`` feature weights, normalised to sum to 1."""
        space = self.space
        row = space.user_index_.get(user_id) if user_id is not None else None
        if row is None:
            return {}
        m = space.user_matrix()
        n_ids = len(space.user_ids_) if space.config.identity else 0
        names = space.user_feature_names
        cols, vals = m.indices[m.indptr[row] : m.indptr[row + 1]], m.data[m.indptr[row] : m.indptr[row + 1]]
        cats = {
            names[c - n_ids][len("ucat=") :]: float(v)
            for c, v in zip(cols, vals)
            if c >= n_ids and names[c - n_ids].startswith("ucat=")
        }
        total = sum(cats.values()) or 1.0
        return {c: v / total for c, v in cats.items()}
