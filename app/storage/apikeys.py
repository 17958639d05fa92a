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


#: A key id: the start of the key's digest. Safe to show and log; names the key for revoking.
KEY_ID_CHARS = 12


def key_id(key: str) -> str:
    return digest(key)[:KEY_ID_CHARS]


def list_keys(r: redis.Redis, merchant_id: str | None = None) -> list[tuple[str, str]]:
    """(key id, merchant) of every key, or of one merchant's."""
    out = []
    for field, merchant in r.hscan_iter(keys.API_KEYS):
        m = merchant.decode()
        if merchant_id is None or m == merchant_id:
            out.append((field.decode()[:KEY_ID_CHARS], m))
    return sorted(out, key=lambda x: (x[1], x[0]))


def revoke_key(r: redis.Redis, key_or_id: str) -> bool:
    """Revoke by the key itself or by its key id (what ``list_keys`` shows)."""
    if r.hdel(keys.API_KEYS, digest(key_or_id)):
        return True
    if len(key_or_id) != KEY_ID_CHARS or not all(c in "0123456789abcdef" for c in key_or_id):
        return False
    matches = [f for f, _m in r.hscan_iter(keys.API_KEYS, match=key_or_id + "*")]
    return len(matches) == 1 and bool(r.hdel(keys.API_KEYS, matches[0]))


def merchant_of(r: redis.Redis, key: str) -> str | None:
    """The merchant a key belongs to, or None for an unknown or revoked key."""
    merchant = r.hget(keys.API_KEYS, digest(key))
    return merchant.decode() if merchant is not None else None
