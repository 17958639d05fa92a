"""Which model version serves, and switching versions without a restart.

The version in use is the Redis key ``keys.MODEL_CURRENT`` (set by ``scripts.models``
or the admin endpoint). Each worker checks it at most every ``MODEL_CHECK_S`` seconds, on
a request; when it changed, the worker loads and verifies the new artifact, then swaps
one reference. Requests already running keep the scorer they started with, so no request
fails; a version that fails to load is logged and the current one stays.
"""

from __future__ import annotations

import logging
import os
import threading
import time

import redis

from app.storage.client import STORAGE_ERRORS
from app.storage.keys import MODEL_CURRENT, MODEL_HISTORY
from recommender import ArtifactError, Scorer, versions

log = logging.getLogger(__name__)


class ModelHolder:
    def __init__(self, root: str, check_every_s: float, catalogue_rows, on_activate=None):
        self.root = root
        self._on_activate = on_activate  # callable(scorer): e.g. serve the model's store signals
        self.check_every_s = check_every_s
        self._catalogue_rows = catalogue_rows  # callable: store ids -> catalogue dicts, for cold stores
        self.scorer: Scorer | None = None
        self._next_check = 0.0
        self._lock = threading.Lock()
        self.failed_versions: set[str] = set()

    @property
    def version(self) -> str | None:
        return self.scorer.version if self.scorer else None

    def available(self) -> bool:
        """Whether there is any model artifact this process could serve (readiness waits for one)."""
        return bool([v for v in versions(self.root) if v not in self.failed_versions])

    def load_initial(self, r: redis.Redis | None) -> None:
        wanted = _read_current(r)
        available = versions(self.root)
        for v in ([wanted] if wanted in available else []) + list(reversed(available)):
            if self._load(v):
                return
        log.warning("no loadable model in %s: recommendations fall back to distance and popularity", self.root)

    def maybe_reload(self, r: redis.Redis | None) -> None:
        now = time.monotonic()
        if now < self._next_check or r is None:
            return
        self._next_check = now + self.check_every_s
        wanted = _read_current(r)
        if wanted and wanted != self.version and wanted not in self.failed_versions:
            with self._lock:
                if wanted != self.version:
                    self._load(wanted)

    def _load(self, version: str) -> bool:
        path = os.path.join(self.root, version)
        try:
            t = time.perf_counter()
            scorer = Scorer.load(path)
        except (ArtifactError, OSError, ValueError, KeyError) as exc:
            self.failed_versions.add(version)
            log.error("model %s refused (%s); keeping %s", version, exc, self.version)
            return False
        old = self.version
        if self._on_activate is not None:
            self._on_activate(scorer)
        self.scorer = scorer  # one reference swap: in-flight requests keep theirs
        log.info("model %s loaded in %.3f s (was %s)", version, time.perf_counter() - t, old)
        return True

    def ensure_items(self, scorer: Scorer, store_ids) -> None:
        """Stores the model never saw become rankable from their attributes, on first sight."""
        missing = [s for s in store_ids if not scorer.knows_item(s)]
        if missing:
            scorer.add_items(self._catalogue_rows(missing))


def _read_current(r: redis.Redis | None) -> str | None:
    if r is None:
        return None
    try:
        v = r.get(MODEL_CURRENT)
    except STORAGE_ERRORS:
        return None
    return v.decode() if v else None


def activate(r: redis.Redis, root: str, version: str) -> None:
    """Point every worker at ``version`` (after checking it loads here)."""
    Scorer.load(os.path.join(root, version))
    top = r.lindex(MODEL_HISTORY, -1)
    pipe = r.pipeline()
    pipe.set(MODEL_CURRENT, version)
    if top is None or top.decode() != version:
        pipe.rpush(MODEL_HISTORY, version)
    pipe.execute()


def rollback(r: redis.Redis, root: str) -> str:
    """Go back to the version activated before the current one; returns it.

    The history list is a stack of activations: rollback pops the current one. With no
    history (only ever the newest local artifact served), the next-newest local one is used.
    """
    history = [v.decode() for v in r.lrange(MODEL_HISTORY, 0, -1)]
    if len(history) >= 2:
        target = history[-2]
        Scorer.load(os.path.join(root, target))
        pipe = r.pipeline()
        pipe.rpop(MODEL_HISTORY)
        pipe.set(MODEL_CURRENT, target)
        pipe.execute()
        return target
    local = versions(root)
    current = history[-1] if history else (local[-1] if local else None)
    earlier = [v for v in local if v != current and v < (current or "~")]
    if not earlier:
        raise ValueError("no earlier version to roll back to")
    target = earlier[-1]
    Scorer.load(os.path.join(root, target))
    pipe = r.pipeline()
    pipe.set(MODEL_CURRENT, target)
    pipe.delete(MODEL_HISTORY)
    pipe.rpush(MODEL_HISTORY, target)
    pipe.execute()
    return target
