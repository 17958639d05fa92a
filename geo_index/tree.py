"""The R-tree over unit-sphere points in this process's memory (libspatialindex through rtree).

A saved, memory-mapped index uses ``geo_index.packed_tree`` instead: libspatialindex's
file storage reads each node through a system call (kNN 1.5x to 3x slower, measured).
"""

from __future__ import annotations

import numpy as np
from rtree import index as rtree_index

# Measured on 1M points (scripts/bench/index.py): leaves of 16 answer kNN ~30% faster
# than rtree's default of 100, and build just as fast.
_LEAF_CAPACITY = 16


def _properties(**extra) -> rtree_index.Property:
    props = rtree_index.Property(dimension=3, leaf_capacity=_LEAF_CAPACITY, index_capacity=_LEAF_CAPACITY)
    for name, value in extra.items():
        setattr(props, name, value)
    return props


def _bulk(xyz: np.ndarray):
    ids = np.arange(len(xyz), dtype=np.int64)
    # Bulk (STR) load from arrays: orders of magnitude faster than one insert per row.
    return (ids, xyz, xyz)


class MemoryTree:
    """A tree in this process's memory (tests, small catalogues, no cache directory)."""

    def __init__(self, xyz: np.ndarray):
        props = _properties()
        if len(xyz):
            self._tree = rtree_index.Index(_bulk(np.ascontiguousarray(xyz)), properties=props, interleaved=True)
        else:
            self._tree = rtree_index.Index(properties=props, interleaved=True)

    def get(self):
        return self._tree
