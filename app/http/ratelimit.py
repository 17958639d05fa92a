"""Rate limits kept in Redis, so every worker and every instance shares them.

A fixed one-second window per caller: the API key when one is sent (hashed, never the key
itself), else the client address. ``O2O_RATE_LIMIT_KEY`` and ``O2O_RATE_LIMIT_ANON``
requests per second (0 turns a limit off). Over the limit: 429 with ``Retry-After``. If
Redis is unreachable the limiter lets requests through (and says so once per outage),
because refusing all traffic would turn a Redis outage into a full outage.
"""

from __future__ import annotations

import hashlib
import time

from flask import Flask, current_app, request

from app.http.errors import Problem
from app.services import services
from app.storage.client import STORAGE_ERRORS
from app.storage.ratelimit import count_hit

# Liveness and the docs are never limited; everything under /v1 and the pages are.
_EXEMPT = ("/livez", "/healthz", "/openapi.json", "/docs", "/static/", "/assets/")


def caller_key() -> tuple[str, int]:
    """(bucket name, limit per second) of the current request."""
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer ") and len(auth) < 512:
        digest = hashlib.sha256(auth[7:].strip().encode()).hexdigest()[:24]
        return "k:" + digest, current_app.config["RATE_LIMIT_KEY"]
    return "ip:" + (request.remote_addr or "unknown"), current_app.config["RATE_LIMIT_ANON"]


def init_app(app: Flask) -> None:
    @app.before_request
    def _limit():
        if request.path.startswith(_EXEMPT):
            return None
        who, limit = caller_key()
        if limit <= 0:
            return None
        svc = services()
        if svc.redis is None or not svc.breaker.closed:
            return None
        try:
            count = count_hit(svc.redis, who, int(time.time()))
        except STORAGE_ERRORS as exc:
            svc.breaker.failed(exc, "rate limiting (requests let through)")
            return None
        if count > limit:
            raise Problem(
                429,
                f"Too many requests: at most {limit} a second for this "
                f"{'key' if who.startswith('k:') else 'address'}; retry after the Retry-After seconds.",
                headers={"Retry-After": "1"},
            )
        return None
