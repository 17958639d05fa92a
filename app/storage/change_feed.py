"""Each process follows the merchants' change log and applies what is new.

A daemon thread per process (started lazily, after any fork) reads the log from the last
id it applied every ``POLL_S`` seconds: a short non-blocking ``XREAD``, so the client's
short timeouts hold and a write reaches every worker of every instance within about
``POLL_S``. The start-up snapshot (``merchant_writes.snapshot``) gives the first id. If
Redis is unreachable, the thread keeps the last state and retries; nothing is lost, since
the log is read from the last applied id.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable

import redis

from app.storage import merchant_writes
from app.storage.client import STORAGE_ERRORS

log = logging.getLogger(__name__)

POLL_S = 0.25


class ChangeFeed:
    def __init__(self, r: redis.Redis | None, apply: Callable[[dict[str, dict]], object], last_id: str):
        self.redis, self.last_id = r, last_id
        # Weakly: the thread must not keep a dropped app (and its index) alive, and it ends
        # with it (a test process makes hundreds of apps).
        self._apply = weakref.WeakMethod(apply) if hasattr(apply, "__self__") else (lambda: apply)
        self._pid: int | None = None
        self._lock = threading.Lock()
        self._failing = False

    def ensure_started(self) -> None:
        """Start this process's follower thread (a no-op once started)."""
        if self.redis is None or self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            threading.Thread(target=self._run, name="change-feed", daemon=True).start()

    def _run(self) -> None:
        while self._apply() is not None:
            time.sleep(POLL_S)
            self.poll()

    def poll(self) -> int:
        """Apply every change logged since the last one applied; returns how many."""
        with self._lock:
            try:
                changes = merchant_writes.read_changes(self.redis, self.last_id)
            except STORAGE_ERRORS as exc:
                if not self._failing:
                    log.warning("cannot read merchants' changes (%s); retrying", exc)
                self._failing = True
                return 0
            self._failing = False
            # Taken only now: a Redis error's traceback (kept by redis-py) must not hold it.
            apply = self._apply()
            if not changes or apply is None:  # None: the services it fed are gone
                return 0
            apply({entity: state for _id, entity, state in changes})  # the newest state per entity
            self.last_id = changes[-1][0]
            return len(changes)
