"""A LightGBM model's trees, summed by one compiled loop (numba): the second stage's scores.

Compiled on first use and cached on disk (``cache=True``), as ``kernels``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: LightGBM's missing-value handling per split (``missing_type`` in its model dump).
_MISSING = {"None": 0, "Zero": 1, "NaN": 2}
_ZERO = 1e-35  # LightGBM's kZeroThreshold


class CompiledTrees:
    """A LightGBM model's trees as flat arrays, summed by one compiled loop.

    ``Booster.predict`` spends ~200 us per call on its Python wrapper (parameter strings,
    a new predictor, input checks) before the trees' few microseconds of work; a request
    calls it once. The decision rule, missing values included, is LightGBM's
    ``Tree::NumericalDecision``; tests check the scores against ``Booster.predict``.
    """

    def __init__(self, booster, columns: list[int]):
        """``columns[f]``: the feature matrix column of the model's feature ``f``."""
        feature: list[int] = []
        threshold: list[float] = []
        left: list[int] = []
        right: list[int] = []
        default_left: list[bool] = []
        missing: list[int] = []
        value: list[float] = []
        roots: list[int] = []

        def add(node) -> int:
            """Index of ``node`` in the flat arrays; leaves are nodes with feature -1."""
            at = len(feature)
            feature.append(-1)
            threshold.append(0.0)
            left.append(-1)
            right.append(-1)
            default_left.append(False)
            missing.append(0)
            value.append(float(node.get("leaf_value", 0.0)))
            if "split_feature" in node:
                if node.get("decision_type", "<=") != "<=":
                    raise ValueError("only numerical splits are compiled")
                feature[at] = columns[node["split_feature"]]
                threshold[at] = float(node["threshold"])
                default_left[at] = bool(node["default_left"])
                missing[at] = _MISSING[node["missing_type"]]
                left[at] = add(node["left_child"])
                right[at] = add(node["right_child"])
            return at

        for tree in booster.dump_model()["tree_info"]:
            roots.append(add(tree["tree_structure"]))
        left_a, right_a, thr = np.array(left, np.int64), np.array(right, np.int64), np.array(threshold, np.float64)
        kind = np.array(missing, np.int8)
        default = np.where(np.array(default_left, np.bool_), left_a, right_a)
        # Where a NaN goes, decided once per node: without a missing type LightGBM reads it
        # as 0.0 (a fixed side of the threshold); as Zero or NaN it takes the default side.
        nan_child = np.where(kind == _MISSING["None"], np.where(thr >= 0.0, left_a, right_a), default)
        zero = kind == _MISSING["Zero"]
        # 4-byte node indices keep more of the trees in the first-level cache (~10 % faster
        # on 71 trees); zeros are looked at only when some split treats them as missing.
        self.arrays = (
            np.array(feature, np.int32),
            thr,
            left_a.astype(np.int32),
            right_a.astype(np.int32),
            default.astype(np.int32),
            nan_child.astype(np.int32),
            zero,
            np.array(value, np.float64),
            np.array(roots, np.int32),
            bool(zero.any()),
        )

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Raw scores of the rows of ``x`` (any float dtype; compared in double, as LightGBM)."""
        return _sum_trees(np.ascontiguousarray(x), *self.arrays)


@njit(cache=True, nogil=True)
def _sum_trees(
    x, feature, threshold, left, right, default, nan_child, zero_missing, value, roots, any_zero
):  # pragma: no cover - compiled
    out = np.zeros(x.shape[0], np.float64)
    for i in range(x.shape[0]):
        total = 0.0
        for t in range(len(roots)):
            node = roots[t]
            f = feature[node]
            while f >= 0:
                v = float(x[i, f])
                if np.isnan(v):
                    node = nan_child[node]
                elif any_zero and zero_missing[node] and -_ZERO <= v <= _ZERO:
                    node = default[node]
                elif v <= threshold[node]:
                    node = left[node]
                else:
                    node = right[node]
                f = feature[node]
            total += value[node]
        out[i] = total
    return out
