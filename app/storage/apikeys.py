"""Merchant API keys, stored hashed: only sha256(key) -> merchant_id is kept in Redis.

A key is 32 random bytes (``mk_`` + url-safe base64); a key with this much entropy needs
no slow hash, and a lookup by digest reveals nothing about other keys.
"""

from __future__ import annotations

import hashlib
import secrets

import redis

from app.storage import keys


def new_key() -> str:
    return "mk_" + secrets.token_urlsafe(32)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(r: redis.Redis, merchant_id: str) -> str:
    key = new_key()
    r.hset(keys.API_KEYS, digest(key), merchant_id)
    return key


def revoke_key(r: redis.Redis, key: str) -> bool:
    return bool(r.hdel(keys.API_KEYS, digest(key)))


def merchant_of(r: redis.Redis, key: str) -> str | None:
    """The merchant a key belongs to, or None for an unknown or revoked key."""
    merchant = r.hget(keys.API_KEYS, digest(key))
    return merchant.decode() if merchant is not None else None
