"""Pipelined writes that are acknowledged only once a replica holds them (Redis ``WAIT``).

Redis replicates asynchronously: a primary killed right after it answered can take its
last writes with it, and the replica promoted in its place never saw them. ``WAIT n t``
blocks the connection that wrote until ``n`` replicas have everything it wrote (or ``t``
ms passed), so with ``O2O_REDIS_WAIT_REPLICAS`` > 0 the service answers 2xx for an event
only after each primary it wrote to says a replica has it; otherwise the client gets a
503 and retries (event ids make that safe).

``WAIT`` must run on the connection that wrote, which a cluster pipeline does not expose:
on a cluster the commands are grouped by the primary that owns their slot and sent as one
plain pipeline per primary, ``WAIT`` last. A failed batch refreshes the slot map, so the
retry goes to the replica promoted in a dead primary's place.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import redis

from app.storage.client import on_cluster


class NotReplicated(redis.RedisError):
    """Fewer replicas than required confirmed a write in time (it may still be there)."""


class Batch:
    """Commands queued by key, run as one pipeline per server; results in queue order.

    ``add(key, queue)`` calls ``queue(pipe)`` to queue exactly one command on the pipeline
    of the server that owns ``key``.
    """

    def __init__(self, r, replicas: int = 0, timeout_ms: int = 1000):
        self.r = r
        self.replicas = replicas
        self.timeout_ms = timeout_ms
        self._pipes: dict[str, redis.client.Pipeline] = {}
        self._order: list[tuple[str, int]] = []  # (pipeline, place in it) of each command

    def _pipe_for(self, key: str) -> tuple[str, redis.client.Pipeline]:
        if on_cluster(self.r):
            node = self.r.get_node_from_key(key)
            name, server = node.name, lambda: self.r.get_redis_connection(node)
        else:
            name, server = "server", lambda: self.r
        if name not in self._pipes:
            self._pipes[name] = server().pipeline(transaction=False)
        return name, self._pipes[name]

    def add(self, key: str, queue: Callable[[redis.client.Pipeline], object]) -> None:
        name, pipe = self._pipe_for(key)
        self._order.append((name, len(pipe)))
        queue(pipe)

    def execute(self) -> list:
        results: dict[str, list] = {}
        try:
            for name, pipe in self._pipes.items():
                if self.replicas > 0:
                    pipe.execute_command("WAIT", self.replicas, self.timeout_ms)
                out = pipe.execute()
                if self.replicas > 0:
                    confirmed = int(out.pop())
                    if confirmed < self.replicas:
                        raise NotReplicated(
                            f"{confirmed} of {self.replicas} replicas confirmed the write within {self.timeout_ms} ms"
                        )
                results[name] = out
        except redis.RedisError:
            if on_cluster(self.r):  # a primary died or moved: learn the new slot owners for the retry
                with contextlib.suppress(redis.RedisError):
                    self.r.nodes_manager.initialize()
            raise
        finally:
            self._pipes.clear()
        return [results[name][i] for name, i in self._order]
