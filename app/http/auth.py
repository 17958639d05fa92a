"""Who is calling: merchant keys sent as Bearer tokens (``storage.apikeys`` keeps them hashed).

The platform admin key (``O2O_ADMIN_KEY``) reads any merchant.
"""

from __future__ import annotations

import hmac

from flask import current_app, request

from app.http.errors import Problem, storage_or_503, unavailable
from app.storage.apikeys import key_id, merchant_of

ADMIN = "*admin*"


def caller(svc) -> str:
    """The merchant id of the request's key (or ADMIN); 401 problems otherwise."""
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer ") or len(header) > 512:
        raise Problem(
            401, "Send your merchant key as 'Authorization: Bearer <key>'.", headers={"WWW-Authenticate": "Bearer"}
        )
    key = header[7:].strip()
    admin = current_app.config["ADMIN_KEY"]
    if admin and hmac.compare_digest(key.encode(), admin.encode()):
        return ADMIN
    if svc.redis is None:
        raise unavailable("Key store unavailable; retry.")
    with storage_or_503("Key store unavailable; retry."):
        merchant = merchant_of(svc.redis, key)
    if merchant is None:
        raise Problem(401, "Unknown or revoked key.", headers={"WWW-Authenticate": "Bearer"})
    return merchant


def require_merchant(svc, merchant_id: str) -> str:
    """The caller, if it may read ``merchant_id``; 403 if it is another merchant's key."""
    who = caller(svc)
    if who != ADMIN and not hmac.compare_digest(who.encode(), merchant_id.encode()):
        raise Problem(403, "This key belongs to another merchant.")
    return who


def caller_key_id() -> str:
    """The key id of the request's key (after ``require_merchant``): audits name keys by it,
    never by the key; ``admin`` for the platform key."""
    key = request.headers.get("Authorization", "")[7:].strip()
    admin = current_app.config["ADMIN_KEY"]
    if admin and hmac.compare_digest(key.encode(), admin.encode()):
        return "admin"
    return key_id(key)
