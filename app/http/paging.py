"""Opaque cursors: a signed position in one query's ordering.

A cursor carries the last row's sort key, the instant the query was evaluated at (so
that open_now does not shift between pages) and a fingerprint of the query. The HMAC
makes a hand-edited cursor fail loudly instead of silently skipping rows.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

from app.domain import b64url
from app.http.errors import Problem, field_error

_VERSION = 1
#: Longest part (payload or signature) of a token read back: a cursor is a few hundred characters.
MAX_PART_LEN = 4096


def fingerprint(params: dict) -> str:
    """Stable hash of the query parameters that decide which rows come in which order."""
    blob = json.dumps(params, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def sign(secret: str, data: dict) -> str:
    """An opaque, tamper-evident token carrying ``data`` (cursors, cluster ids)."""
    payload = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    sig = hmac.new(secret.encode(), payload, hashlib.sha256).digest()[:12]
    return (b64url.encode(payload) + b"." + b64url.encode(sig)).decode()


def verify(secret: str, token: str) -> dict | None:
    """The data of a token from ``sign``, or None if it is malformed or was altered."""
    try:
        body, sig = token.split(".", 1)
        payload = b64url.decode(body, MAX_PART_LEN)
        given = b64url.decode(sig, MAX_PART_LEN)
    except (ValueError, TypeError):
        return None
    expected = hmac.new(secret.encode(), payload, hashlib.sha256).digest()[:12]
    if not hmac.compare_digest(given, expected):
        return None
    try:
        data = json.loads(payload)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def encode(secret: str, fp: str, key: list, evaluated_at: str) -> str:
    return sign(secret, {"v": _VERSION, "f": fp, "k": key, "t": evaluated_at})


def decode(secret: str, cursor: str, fp: str, key_ok: Callable[[Any], bool]) -> dict:
    """The cursor's payload, with ``t`` as a datetime; a 400 Problem if it is malformed,
    tampered with, or foreign, or if its key fails ``key_ok`` (types and ranges are checked
    after the signature too: a leaked secret must not turn into a 500 or a busy worker)."""

    def bad(message):
        return Problem(
            400,
            "Invalid cursor.",
            [field_error("cursor", message, "pass next_cursor exactly as returned, with the same other parameters")],
        )

    data = verify(secret, cursor)
    if data is None:
        raise bad("not a cursor issued by this service, or altered")
    if data.get("v") != _VERSION:
        raise bad("cursor from an older version; start again without cursor")
    if data.get("f") != fp:
        raise bad("cursor belongs to a different query")
    at = _instant(data.get("t"))
    if at is None or not key_ok(data.get("k")):
        raise bad("cursor fields out of range")
    return {**data, "t": at}


def is_int(value, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def is_number(value, low: float, high: float) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and low <= value <= high
    )


def _instant(text) -> datetime | None:
    if not isinstance(text, str) or len(text) > 40:
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        return None
    return at if at.tzinfo is not None and 2000 <= at.year <= 2200 else None
