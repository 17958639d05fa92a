"""The served ranking: LightFM preference blended with distance.

    score = preference / pref_scale + weight * gauss(distance)
    gauss(d) = exp(-max(0, d - offset)^2 / (2 sigma^2)),  sigma^2 = -scale^2 / (2 ln(decay))

``gauss`` is Elasticsearch's ``gauss`` decay function: at ``offset + scale`` metres it
equals ``decay`` (0.5 by default). ``pref_scale`` is the standard deviation of the model's
scores over training pairs, fixed at training time, so the blend does not depend on which
candidates a request happens to have. Offline the distance is from the candidate to the
nearest of the user's usual places (their most-weighted training stores); online it is
from the request's point. ``weight`` and ``scale`` are chosen on a validation split
carved from training, never on the test split.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True)
class Blend:
    weight: float = 1.0
    scale_m: float = 1000.0
    decay: float = 0.5
    offset_m: float = 0.0
    pref_scale: float = 1.0

    @property
    def sigma2(self) -> float:
        return -(self.scale_m**2) / (2.0 * np.log(self.decay))

    def distance_term(self, distance_m) -> np.ndarray:
        d = np.maximum(0.0, np.asarray(distance_m, dtype=float) - self.offset_m)
        return np.exp(-(d**2) / (2.0 * self.sigma2))

    def preference_term(self, preference) -> np.ndarray:
        return np.asarray(preference, dtype=float) / self.pref_scale

    def combine(self, preference, distance_m) -> np.ndarray:
        return self.preference_term(preference) + self.weight * self.distance_term(distance_m)

    def to_dict(self) -> dict:
        return asdict(self)


#: At most this many validation users tune a blend: the grid is evaluated on every setting.
TUNING_USERS = 1500


def tuning_users(val: sp.csr_matrix, seed: int, limit: int = TUNING_USERS) -> np.ndarray:
    """Validation users with labels, at most ``limit`` of them (a seeded sample, sorted)."""
    users = np.flatnonzero(np.diff(val.indptr) > 0)
    if len(users) > limit:
        users = np.sort(np.random.default_rng(seed).choice(users, limit, replace=False))
    return users


def tune_on_grid(base, dist, weights, scales, train, val, k: int, exclude_train: bool = True) -> dict:
    """Validation NDCG of ``base + weight * gauss(dist; scale)`` for every (weight, scale).

    ``base`` and ``dist`` are users x items for the rows of ``train``/``val`` (``base``
    float32 is enough, or one row for all). ``evaluate``'s metric, fused over the grid.
    """
    from .evaluation import blend_grid_ndcg

    sigma2s = [Blend(scale_m=scale).sigma2 for scale in scales]
    ndcg = blend_grid_ndcg(base, dist, weights, sigma2s, Blend().offset_m, train, val, k, exclude_train)
    return {(w, s): float(ndcg[i, j]) for j, s in enumerate(scales) for i, w in enumerate(weights)}


def best_on_grid(table: dict) -> Blend:
    """The (weight, scale) of ``tune_on_grid``'s table with the best NDCG; ties go to the
    weaker blend (smaller weight, then smaller scale)."""
    weight, scale = max(table, key=lambda key: (table[key], -key[0], -key[1]))
    return Blend(weight=weight, scale_m=scale)
