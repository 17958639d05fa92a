"""Rate limits kept in Redis, so every worker and every instance shares them.

Fixed one-second windows. Every request counts against its client address (behind
``O2O_TRUSTED_PROXIES`` proxies, the address they forwarded, through Werkzeug's ProxyFix):
``O2O_RATE_LIMIT_ANON`` a second, or ``O2O_RATE_LIMIT_KEY`` when it carries a verified key.
A verified key (a merchant key, the admin key, or a user token) also counts against its own
bucket, ``O2O_RATE_LIMIT_KEY`` a second across addresses. A made-up ``Authorization``
header verifies nothing, so it gets no bucket of its own. ``POST /v1/events`` counts each
event, not the request. Over a limit: 429 with ``Retry-After``. 0 turns a limit off.

A view marked ``charged_in_view`` sends its request's hits with its own first Redis round
trip (``deferred_hits``), not in one of their own before the view runs: a Redis round trip
costs a worker more CPU than anything else the request does, save the ranking.

If Redis is unreachable, a per-process limiter takes over (each worker allows the limit on
its own), rather than letting everything through or refusing all traffic.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import threading
import time
from collections.abc import Callable

from flask import Flask, current_app, g, request

from app.http.errors import Problem
from app.http.users import BadUserToken, user_of_token
from app.services import services
from app.storage.apikeys import digest, merchant_of
from app.storage.client import STORAGE_ERRORS
from app.storage.ratelimit import count_hits, queue_hits

# Liveness and the docs are never limited; everything under /v1 and the pages are.
_EXEMPT = ("/livez", "/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/static/", "/assets/")
#: How long a worker trusts a merchant key it verified (a revoked key keeps its own bucket
#: this much longer; it is refused by the endpoints at once).
_KEY_CACHE_S = 10.0


def init_app(app: Flask) -> None:
    @app.before_request
    def _limit():
        if request.path.startswith(_EXEMPT):
            return None
        g.rate_buckets = _buckets()
        if getattr(current_app.view_functions.get(request.endpoint), "charged_in_view", False):
            g.rate_deferred = True
            return None
        charge(1)
        return None


def charge(n: int) -> None:
    """Count ``n`` more hits of this request against its buckets; 429 when one is over."""
    buckets = _limited(g)
    if buckets:
        _refuse_over(buckets, _count(services(), [who for who, _ in buckets], int(time.time()), n))


def charged_in_view(view):
    """Mark a view whose first Redis round trip carries its request's hit (``deferred_hits``).

    A client over its limit hears 429 only at that round trip, so the view must be cheap and
    bounded up to there. Whatever the view does (a 400 before it reaches Redis, a fallback
    while Redis is down), the hit is counted before it answers.
    """

    @functools.wraps(view)
    def counted(*args, **kwargs):
        try:
            response = view(*args, **kwargs)
        except Problem:
            charge_deferred()  # a refused request counts too: over the limit, it becomes a 429
            raise
        except Exception:
            with contextlib.suppress(Problem):  # counted; the error worth reporting is the server's
                charge_deferred()
            raise
        charge_deferred()
        return response

    counted.charged_in_view = True  # type: ignore[attr-defined]
    return counted


def deferred_hits() -> Callable | None:
    """This request's hit, for the view's round trip: ``queue(pipe)`` adds the counting to the
    pipeline and returns the check to run on its results (a 429 Problem when over a limit).
    None when nothing waits (not a ``charged_in_view`` view, or no limits)."""
    buckets = _limited(g) if g.get("rate_deferred") else []
    if not buckets:
        return None

    def queue(pipe) -> Callable[[list], None]:
        read = queue_hits(pipe, [who for who, _ in buckets], int(time.time()), 1)

        def check(results: list) -> None:
            g.rate_deferred = False  # counted, whatever the verdict
            _refuse_over(buckets, read(results))

        return check

    return queue


def charge_deferred() -> None:
    """Count this request's hit now if its view has not sent it yet (Redis down, or an answer
    before the view's round trip)."""
    if g.pop("rate_deferred", False):
        charge(1)


def _limited(ctx) -> list[tuple[str, int]]:
    return [(who, limit) for who, limit in getattr(ctx, "rate_buckets", ()) if limit > 0]


def _refuse_over(buckets: list[tuple[str, int]], counts: list[int]) -> None:
    for (who, limit), count in zip(buckets, counts):
        if count > limit:
            kind = "key" if who.startswith("k:") else "address"
            raise Problem(
                429,
                f"Too many requests: at most {limit} a second for this {kind} "
                f"(events count one by one); retry after the Retry-After seconds.",
                headers={"Retry-After": "1"},
            )


def _buckets() -> list[tuple[str, int]]:
    cfg = current_app.config
    verified = _verified_key()
    address = "ip:" + (request.remote_addr or "unknown")
    if verified is None:
        return [(address, cfg["RATE_LIMIT_ANON"])]
    return [(address, max(cfg["RATE_LIMIT_ANON"], cfg["RATE_LIMIT_KEY"])), ("k:" + verified, cfg["RATE_LIMIT_KEY"])]


def _verified_key() -> str | None:
    """A digest naming the caller's key, only if the key verifies; None otherwise."""
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer ") or len(auth) > 4096:
        return None
    key = auth[7:].strip()
    cfg = current_app.config
    admin = cfg["ADMIN_KEY"]
    if admin and hmac.compare_digest(key.encode(), admin.encode()):
        return "admin"
    if key.count(".") == 2:  # a JWT: a user token, checked locally (once per request: users keeps it)
        try:
            return "u:" + hashlib.sha256(user_of_token(key, services().now()).encode()).hexdigest()[:24]
        except BadUserToken:
            return None
    return _merchant_key(key)


#: Merchant keys this worker verified, until when it trusts them. Only keys that verify get
#: in, so a flood of made-up ones cannot grow it; cleared when full (a few re-verifications).
_known: dict[str, float] = {}
_known_lock = threading.Lock()
KNOWN_KEYS_MAX = 10_000


def _merchant_key(key: str) -> str | None:
    d = digest(key)
    now = time.monotonic()
    if _known.get(d, 0.0) > now:
        return d[:24]
    svc = services()
    if svc.redis is None or not svc.breaker.closed:
        return None
    try:
        if merchant_of(svc.redis, key) is None:
            return None
    except STORAGE_ERRORS:
        return None
    with _known_lock:
        if len(_known) >= KNOWN_KEYS_MAX:
            _known.clear()
        _known[d] = now + _KEY_CACHE_S
    return d[:24]


# ------------------------------------------------------------------ counting
#: The per-process fallback's windows, (caller, second) -> hits, while Redis is out.
_local: dict[tuple[str, int], int] = {}
_local_lock = threading.Lock()
LOCAL_WINDOWS_MAX = 50_000
#: The count a caller gets when the table is full of this second's windows: over any limit.
_SHED = 2**62
#: The second of the last pruning: once a second is enough (past windows only), and a flood
#: that keeps the table full must not make every request scan it.
_pruned_at = -1


def _count(svc, callers: list[str], second: int, n: int) -> list[int]:
    if svc.redis is not None and svc.breaker.closed:
        try:
            return count_hits(svc.redis, callers, second, n)
        except STORAGE_ERRORS as exc:
            svc.breaker.failed(exc, "rate limiting (a per-process limit holds meanwhile)")
    global _pruned_at
    with _local_lock:  # Redis is down: each worker counts on its own
        if len(_local) + len(callers) > LOCAL_WINDOWS_MAX and _pruned_at != second:
            _pruned_at = second
            for k in [k for k in _local if k[1] != second]:
                del _local[k]
        counts = []
        for who in callers:
            if (who, second) not in _local and len(_local) >= LOCAL_WINDOWS_MAX:
                # Full of this second's windows (a flood from as many addresses): a newcomer
                # is refused until the next second rather than tracked, so the flood neither
                # grows the table nor resets the counts of the callers already in it.
                counts.append(_SHED)
                continue
            _local[(who, second)] = count = _local.get((who, second), 0) + n
            counts.append(count)
        return counts
