"""Merchant API keys: created by a command, stored hashed in Redis, sent as Bearer tokens.

A key is 32 random bytes (``mk_`` + url-safe base64). Only its SHA-256 is stored (a key
with this much entropy needs no slow hash), and lookups compare digests in constant time.
The platform admin key (``O2O_ADMIN_KEY``) reads any merchant.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets

import redis
from flask import current_app, request

from app.http.errors import Problem
from app.storage.client import PREFIX

KEYS = PREFIX + "apikeys"
ADMIN = "*admin*"


def new_key() -> str:
    return "mk_" + secrets.token_urlsafe(32)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(r: redis.Redis, merchant_id: str) -> str:
    key = new_key()
    r.hset(KEYS, digest(key), merchant_id)
    return key


def revoke_key(r: redis.Redis, key: str) -> bool:
    return bool(r.hdel(KEYS, digest(key)))


def caller(svc) -> str:
    """The merchant id of the request's key (or ADMIN); 401 problems otherwise."""
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer ") or len(header) > 512:
        raise Problem(401, "Send your merchant key as 'Authorization: Bearer <key>'.",
                      headers={"WWW-Authenticate": "Bearer"})
    key = header[7:].strip()
    admin = current_app.config["ADMIN_KEY"]
    if admin and hmac.compare_digest(key.encode(), admin.encode()):
        return ADMIN
    if svc.redis is None:
        raise Problem(503, "Key store unavailable; retry.", headers={"Retry-After": "5"})
    try:
        merchant = svc.redis.hget(KEYS, digest(key))
    except (redis.RedisError, OSError):
        raise Problem(503, "Key store unavailable; retry.", headers={"Retry-After": "5"}) from None
    if merchant is None:
        raise Problem(401, "Unknown or revoked key.", headers={"WWW-Authenticate": "Bearer"})
    return merchant.decode()


def require_merchant(svc, merchant_id: str) -> str:
    """The caller, if it may read ``merchant_id``; 403 if it is another merchant's key."""
    who = caller(svc)
    if who != ADMIN and not hmac.compare_digest(who.encode(), merchant_id.encode()):
        raise Problem(403, "This key belongs to another merchant.")
    return who
