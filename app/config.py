"""Configuration: defaults, then ``O2O_*`` environment variables, then test overrides.

Read only inside the factory (never at import time), so tests and tools can build apps
with different settings in one process.
"""

from __future__ import annotations

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DEFAULTS = {
    "CATALOGUE": os.path.join(ROOT, "data", "stores_helsinki.csv"),
    "CATALOGUE_STRICT": True,
    "DEFAULT_TIMEZONE": "Europe/Helsinki",
    "DEFAULT_MERCHANT_ID": None,
    # Signs cursors so that a tampered or foreign cursor is refused; not a credential.
    "SECRET_KEY": "o2o-dev-cursor-key",
    "MAX_RADIUS_M": 100_000.0,
    # sort=rating|popularity without radius_m ranks the stores within this radius.
    "RANKED_RADIUS_M": 5_000.0,
    "MAX_LIMIT": 50,
    "MAX_CONTENT_LENGTH": 1 * 1024 * 1024,
    "DEBUG_ERRORS": False,
    # The service's clock: unset is the real one; an ISO instant stops it there (tests of whole
    # servers); tests of the app object pass a callable.
    "NOW": None,
    # Redis: REDIS_URL (or O2O_REDIS_URL) wins; else an embedded server under DATA_DIR/redis.
    # "none" turns Redis off (events answer 503, impressions are dropped and counted).
    "REDIS_URL": None,
    "DATA_DIR": os.path.join(ROOT, "var"),
    "REDIS_TIMEOUT_S": 0.25,
    "IMPRESSIONS": True,
    "STREAM_MAXLEN": 5_000_000,
    "EVENT_MAX_AGE_DAYS": 30,
    # Deals and the recommender.
    "DEALS": os.path.join(ROOT, "data", "generated", "helsinki", "deals.csv"),
    "BASE_ORDERS": os.path.join(ROOT, "data", "generated", "helsinki", "orders.csv"),
    "ARTIFACTS": os.path.join(ROOT, "artifacts"),
    "MODEL_CHECK_S": 2.0,
    "DEALS_PER_STORE": 1,
    "DEALS_PER_CATEGORY": 3,
    # Merchant statistics.
    "STATS_LOCAL_RADIUS_M": 1000.0,
    "STATS_PEER_RADIUS_M": 2000.0,
    "STATS_PRIVACY_THRESHOLD": 5,
    # Map widget tiles (OpenStreetMap's standard tiles by default; markers work without them).
    "TILE_URL": "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
    "TILE_ATTRIBUTION": '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors',
    # Requests per second per API key, and per client address without one (0: no limit).
    "RATE_LIMIT_KEY": 200,
    "RATE_LIMIT_ANON": 100,
    # Origins allowed to call the public read endpoints from a browser (the widget), "*" or a list.
    "CORS_ORIGINS": "*",
    # Admin endpoints exist only when a key is configured.
    "ADMIN_KEY": None,
}

_BOOL = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def from_environment(environ=None, prefix: str = "O2O_") -> dict:
    """Settings found in ``environ`` under ``prefix``, converted to the defaults' types."""
    environ = os.environ if environ is None else environ
    found = {}
    if environ.get("REDIS_URL"):
        found["REDIS_URL"] = environ["REDIS_URL"]
    for key, default in DEFAULTS.items():
        raw = environ.get(prefix + key)
        if raw is None:
            continue
        found[key] = _convert(key, raw, default)
    return found


def _convert(key: str, raw: str, default):
    if default is None:
        return raw
    if isinstance(default, bool):
        try:
            return _BOOL[raw.strip().lower()]
        except KeyError:
            raise ValueError(f"O2O_{key}={raw!r}: use one of {', '.join(_BOOL)}") from None
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        try:
            return type(default)(raw)
        except ValueError:
            raise ValueError(f"O2O_{key}={raw!r}: expected a number") from None
    return raw
