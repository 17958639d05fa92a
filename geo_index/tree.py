"""The R-tree over unit-sphere points: built in memory, or saved to and opened from files.

A file tree is libspatialindex's disk storage through rtree: every process that opens it
reads the same pages from the OS page cache. Its file handle must not cross a fork (the
children would share one file offset and read each other's pages), so each process opens
its own on first use, and a process about to fork closes its handle first.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref

import numpy as np
from rtree import index as rtree_index

log = logging.getLogger(__name__)

# Measured on 1M points (scripts/bench/index.py): leaves of 16 answer kNN ~30% faster
# than rtree's default of 100, and build just as fast.
_LEAF_CAPACITY = 16
# A node of 16 three-dimensional entries serialises to about 1 KB: one page each
# (4 KB pages would make the file four times larger for the same reads).
_PAGE_SIZE = 1024


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


def save_file_tree(xyz: np.ndarray, base: str) -> None:
    """Write the tree of ``xyz`` to ``base.dat`` and ``base.idx``."""
    props = _properties(pagesize=_PAGE_SIZE, overwrite=True)
    if len(xyz):
        tree = rtree_index.Index(base, _bulk(np.ascontiguousarray(xyz)), properties=props, interleaved=True)
    else:
        tree = rtree_index.Index(base, properties=props, interleaved=True)
    tree.close()


_open_trees: weakref.WeakSet[FileTree] = weakref.WeakSet()
# Handles another process opened before forking this one: kept, never used or closed here
# (closing writes the header through the descriptor that process still reads through).
_inherited: list = []


class FileTree:
    """A saved tree, opened once per process (see the module notes on forks).

    ``xyz``: the points it was built from, to build it in memory instead if its files are
    gone when this process comes to open them (a newer catalogue's start removed them;
    the mapped columns stay readable until the process exits)."""

    def __init__(self, base: str, xyz: np.ndarray):
        self.base = base
        self._xyz = xyz
        self._lock = threading.Lock()
        self._tree: rtree_index.Index | None = None
        self._pid = 0
        _open_trees.add(self)

    def get(self):
        tree = self._tree
        if tree is not None and self._pid == os.getpid():
            return tree
        with self._lock:
            if self._tree is None or self._pid != os.getpid():
                if self._tree is not None:  # rare: ``_close_before_fork`` closes them first
                    _inherited.append(self._tree)
                try:
                    self._tree = rtree_index.Index(self.base, properties=_properties(overwrite=False), interleaved=True)
                except (OSError, rtree_index.RTreeError) as exc:
                    log.warning("tree %s not readable (%s): building it in memory", self.base, exc)
                    self._tree = MemoryTree(self._xyz).get()
                self._pid = os.getpid()
            return self._tree

    def close(self) -> None:
        with self._lock:
            if self._tree is not None and self._pid == os.getpid():
                self._tree.close()
            self._tree = None


def _close_before_fork() -> None:
    for handle in list(_open_trees):
        handle.close()


os.register_at_fork(before=_close_before_fork)
