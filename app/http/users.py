"""Who the user is: a JWT in ``Authorization: Bearer <user token>``, checked with PyJWT.

The user id is the token's ``sub``. Tokens are HS256 with ``O2O_USER_TOKEN_SECRET`` or, for
an identity provider that signs with a private key, RS256/ES256 checked with the public key
in ``O2O_USER_TOKEN_PUBLIC_KEY`` (a PEM file). ``exp`` is required and is compared with the
service's clock. No header: an anonymous user (popular nearby). A header that does not
verify: 401, never a silent fall back to anonymous, so a client learns its token expired.

A user id never comes from a query parameter or an event body on trust: anyone could name
any user.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import jwt
from flask import current_app, g, has_request_context, request

from app.http.errors import Problem

#: Clock skew allowed between the token's issuer and this service.
LEEWAY = timedelta(seconds=30)
MAX_TOKEN_LEN = 4096
_ASYMMETRIC = ["RS256", "ES256"]


def verification_key(cfg) -> tuple[object, list[str]]:
    """(key, algorithms) that user tokens are checked with."""
    path = cfg.get("USER_TOKEN_PUBLIC_KEY")
    if path:
        with open(path, "rb") as fh:
            return fh.read(), _ASYMMETRIC
    return cfg["USER_TOKEN_SECRET"], ["HS256"]


def mint(cfg, user_id: str, now: datetime, ttl_s: int) -> str:
    """An HS256 user token (development and tests; production tokens come from the identity provider)."""
    if cfg.get("USER_TOKEN_PUBLIC_KEY"):
        raise ValueError("user tokens are checked with a public key here: mint them with your identity provider")
    claims = {"sub": user_id, "iat": int(now.timestamp()), "exp": int((now + timedelta(seconds=ttl_s)).timestamp())}
    return jwt.encode(claims, cfg["USER_TOKEN_SECRET"], algorithm="HS256")


class BadUserToken(ValueError):
    """A user token that does not verify; the message says why."""


def request_user(now: datetime) -> str | None:
    """The verified user of this request, or None without a token; 401 for a bad one."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    if not header.startswith("Bearer ") or len(header) > MAX_TOKEN_LEN:
        raise _unauthorised("send the user token as 'Authorization: Bearer <token>'")
    try:
        return user_of_token(header[7:].strip(), now)
    except BadUserToken as exc:
        raise _unauthorised(str(exc)) from None


def user_of_token(token: str, now: datetime) -> str:
    """The user id (``sub``) of a user token valid at ``now``; BadUserToken otherwise."""
    claims = _verified_claims(token)
    sub, exp, nbf = claims.get("sub"), claims.get("exp"), claims.get("nbf")
    if not isinstance(sub, str) or not 1 <= len(sub) <= 128:
        raise BadUserToken("the token's sub must be the user id, 1 to 128 characters")
    stamp = now.timestamp()
    if not isinstance(exp, (int, float)) or exp + LEEWAY.total_seconds() < stamp:
        raise BadUserToken("the user token has expired: sign in again")
    if isinstance(nbf, (int, float)) and nbf - LEEWAY.total_seconds() > stamp:
        raise BadUserToken("the user token is not valid yet")
    return sub


#: Verified claims per (key, token), across requests: an app sends one token with every
#: request until it expires, and checking its signature cost ~0.2 ms of a deal list's ~6 ms.
#: Only tokens that verified are kept, so made-up ones cannot fill it; ``exp`` and ``nbf``
#: are still compared with the clock on every use (``user_of_token``). Bounded: cleared
#: when full.
_VERIFIED: dict[tuple, dict] = {}
VERIFIED_MAX = 20_000


def _verified_claims(token: str) -> dict:
    """The token's claims once its signature verifies (checked once per token and key).
    Within a request, a token that does not verify is remembered too: the rate limiter and
    the view both ask."""
    failed = g.setdefault("_user_token_failures", {}) if has_request_context() else {}
    if token in failed:
        raise failed[token]
    key, algorithms = _key()
    known = _VERIFIED.get((key, token))
    if known is not None:
        return known
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=algorithms,
            options={"require": ["sub", "exp"], "verify_exp": False, "verify_nbf": False, "verify_iat": False},
        )
    except jwt.InvalidTokenError as exc:
        failed[token] = BadUserToken(f"the user token does not verify ({exc})")
        raise failed[token] from None
    if len(_VERIFIED) >= VERIFIED_MAX:
        _VERIFIED.clear()
    _VERIFIED[(key, token)] = claims
    return claims


def _key():
    cfg = current_app.config
    cached = cfg.get("_USER_TOKEN_KEY")
    if cached is None:
        cached = cfg["_USER_TOKEN_KEY"] = verification_key(cfg)
    return cached


def _unauthorised(detail: str) -> Problem:
    return Problem(401, f"Invalid user token: {detail}.", headers={"WWW-Authenticate": 'Bearer realm="users"'})
