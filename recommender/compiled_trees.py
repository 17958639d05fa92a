"""A LightGBM model's trees, summed by one compiled loop (numba): the second stage's scores.

Compiled on first use and cached on disk (``cache=True``), as ``kernels``.
"""

from __future__ import annotations

import numpy as np
from numba import njit


class CompiledTrees:
    """A LightGBM model's trees as flat arrays, summed by one compiled loop.

    ``Booster.predict`` spends ~200 us per call on its Python wrapper (parameter strings,
    a new predictor, input checks) before the trees' few microseconds of work; a request
    calls it once. The decision rule, missing values included, is LightGBM's
    ``Tree::NumericalDecision``; tests check the scores against ``Booster.predict``.

    Layout: split nodes only, numbered from 0, a node's two children side by side
    (``children[2n]``, ``children[2n + 1]``); a child ``c < 0`` is leaf ``~c``, whose value
    lives apart. A step reads one feature, one threshold and one child, and the leaves'
    values stay out of the cache lines the walk reads: the heaviest user's 200 rows through
    127 trees take ~35 % less than with every node's left, right, default and value in
    arrays of all nodes (docs/benchmarks.md). Walking four rows at once through each tree
    was slower than one row through all trees; so was a child picked by arithmetic.
    """

    def __init__(self, booster, columns: list[int]):
        """``columns[f]``: the feature matrix column of the model's feature ``f``."""
        feature: list[int] = []
        threshold: list[float] = []
        children: list[int] = []
        nan_child: list[int] = []
        leaf: list[float] = []

        def add(node) -> int:
            """The child code of ``node``: its split index, or ``~leaf index``."""
            if "split_feature" not in node:
                leaf.append(float(node["leaf_value"]))
                return ~(len(leaf) - 1)
            if node.get("decision_type", "<=") != "<=":
                raise ValueError("only numerical splits are compiled")
            if node["missing_type"] == "Zero":  # the ranker never sets zero_as_missing
                raise ValueError("splits that treat zero as missing are not compiled")
            at = len(feature)
            feature.append(columns[node["split_feature"]])
            threshold.append(float(node["threshold"]))
            children.extend((0, 0))
            nan_child.append(0)
            left, right = add(node["left_child"]), add(node["right_child"])
            children[2 * at], children[2 * at + 1] = left, right
            # Where a NaN goes, decided once per node: without a missing type LightGBM reads
            # it as 0.0 (a fixed side of the threshold); as NaN, it takes the default side.
            if node["missing_type"] == "None":
                nan_child[at] = left if threshold[at] >= 0.0 else right
            else:
                nan_child[at] = left if node["default_left"] else right
            return at

        roots = [add(tree["tree_structure"]) for tree in booster.dump_model()["tree_info"]]
        # 4-byte node codes keep more of the trees in the first-level cache.
        self.arrays = (
            np.array(feature, np.int32),
            np.array(threshold, np.float64),
            np.array(children, np.int32),
            np.array(nan_child, np.int32),
            np.array(leaf, np.float64),
            np.array(roots, np.int32),
        )

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Raw scores of the rows of ``x`` (any float dtype; compared in double, as LightGBM)."""
        return _sum_trees(np.ascontiguousarray(x), *self.arrays)


@njit(cache=True, nogil=True)
def _sum_trees(x, feature, threshold, children, nan_child, leaf, roots):  # pragma: no cover - compiled
    n = x.shape[0]
    out = np.zeros(n, np.float64)
    for i in range(n):
        total = 0.0
        for t in range(len(roots)):
            node = roots[t]
            while node >= 0:
                v = x[i, feature[node]]
                if v != v:
                    node = nan_child[node]
                elif v <= threshold[node]:
                    node = children[2 * node]
                else:
                    node = children[2 * node + 1]
            total += leaf[~node]
        out[i] = total
    return out
