"""Configuration: defaults, then ``O2O_*`` environment variables, then test overrides.

Read only inside the factory (never at import time), so tests and tools can build apps
with different settings in one process.
"""

from __future__ import annotations

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: (name, default, meaning) of every setting; ``O2O_<name>`` sets it from the environment.
#: docs/operations.md's table is generated from this list (python -m scripts.docs_tables).
SETTINGS: list[tuple[str, object, str]] = [
    ("CATALOGUE", os.path.join(ROOT, "data", "stores_helsinki.csv"), "store file to serve"),
    ("CATALOGUE_STRICT", True, "refuse a catalogue with any bad row (else load the good rows and log the rest)"),
    (
        "INDEX_CACHE",
        None,
        "folder of prebuilt store indexes, memory-mapped by every worker; unset: .o2o-index beside the "
        "catalogue; none: each process builds its own in memory",
    ),
    ("DEFAULT_TIMEZONE", "Europe/Helsinki", "time zone of rows without one"),
    ("DEFAULT_MERCHANT_ID", None, "owner of rows without one"),
    ("ENV", "development", "production: refuse to start with a missing or weak secret (app/secrets.py)"),
    (
        "SECRET_KEY",
        None,
        "signs cursors, cluster ids and impression tokens (>= 32 bytes), the same on every instance; "
        "unset: a random one kept in DATA_DIR/secret_key",
    ),
    ("USER_TOKEN_SECRET", None, "HS256 key that user tokens (JWT, user id = sub) are signed with"),
    ("USER_TOKEN_PUBLIC_KEY", None, "PEM file of the public key for RS256/ES256 user tokens (instead of the secret)"),
    ("RANKED_RADIUS_M", 5_000.0, "radius ranked by sort=rating/popularity/personalised without radius_m"),
    ("MAX_CONTENT_LENGTH", 1 * 1024 * 1024, "largest request body in bytes (Flask's own setting)"),
    ("DEBUG_ERRORS", False, "show the exception text in 500 bodies"),
    ("NOW", None, "stop the service's clock at this ISO instant (tests of whole servers); unset: real time"),
    ("REDIS_URL", None, "Redis to use (REDIS_URL also works); unset: the embedded server; none: Redis off"),
    ("DATA_DIR", os.path.join(ROOT, "var"), "where the embedded Redis keeps its socket and append-only file"),
    ("REDIS_CLUSTER", None, "1: REDIS_URL names a node of a Redis Cluster; 0: one server; unset: ask the server"),
    (
        "REDIS_WAIT_REPLICAS",
        0,
        "replicas of each primary that must hold an event before it is acknowledged (Redis WAIT); 0: no wait",
    ),
    ("REDIS_WAIT_MS", 1000, "longest wait for those replicas; past it the batch answers 503 and is retried"),
    ("REDIS_TIMEOUT_S", 0.25, "per-call Redis timeout: a slow Redis costs a request at most this"),
    ("IMPRESSIONS", True, "log served impressions (they feed the merchant statistics)"),
    ("LOG_FORMAT", "json", "json: one JSON object per log line, with the request id; text: plain lines"),
    ("STREAM_MAXLEN", 1_000_000, "entries kept in each of the event and impression streams (~0.3 KB each)"),
    ("REDIS_MAXMEMORY_MB", 1024, "memory cap of the embedded redis-server (noeviction: full means 503, never loss)"),
    ("EVENT_MAX_AGE_DAYS", 30, "oldest event time accepted"),
    ("MERCHANT_WRITES_PER_DAY", 2000, "deal and store changes a merchant may make per UTC day (bounds the log)"),
    ("MERCHANT_OPEN_DEALS", 500, "deals a merchant may have that have not ended"),
    ("DEALS", os.path.join(ROOT, "data", "generated", "helsinki", "deals.csv"), "deal file"),
    (
        "BASE_ORDERS",
        os.path.join(ROOT, "data", "generated", "helsinki", "orders.csv"),
        "order history behind the ordered_at reasons",
    ),
    ("ARTIFACTS", os.path.join(ROOT, "artifacts"), "folder of model versions"),
    ("MODEL_CHECK_S", 2.0, "how often a worker checks which model version to serve"),
    ("DEALS_PER_STORE", 1, "deals of one store on one page of recommendations"),
    ("DEALS_PER_CATEGORY", 3, "deals of one category on one page of recommendations"),
    ("STATS_LOCAL_RADIUS_M", 1000.0, "a search this close to a store counts toward its share of local searches"),
    ("STATS_PEER_RADIUS_M", 2000.0, "peers: same-category stores of other merchants within this radius"),
    (
        "STATS_PRIVACY_THRESHOLD",
        5,
        'unique counts (and peer groups) below it show as "<5"; a viewer cell needs that many people per store-day',
    ),
    ("TILE_URL", "https://tile.openstreetmap.org/{z}/{x}/{y}.png", "map tiles of the widget and dashboard"),
    (
        "TILE_ATTRIBUTION",
        '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors',
        "attribution shown under the tiles",
    ),
    ("RATE_LIMIT_KEY", 200, "requests (or events) per second per verified key or user token (0: no limit)"),
    ("RATE_LIMIT_ANON", 100, "requests (or events) per second per client address without a verified key (0: no limit)"),
    ("TRUSTED_PROXIES", 0, "proxies in front of the service whose X-Forwarded-For is believed (the client address)"),
    ("CORS_ORIGINS", "*", 'origins that may read the public endpoints from a browser: "*" or a comma list'),
    ("ADMIN_KEY", None, "enables the admin endpoints (and reads any merchant); unset: no admin endpoints"),
]
DEFAULTS = {name: default for name, default, _meaning in SETTINGS}

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


#: Settings whose default None means "find out", else a yes or no.
_OPTIONAL_BOOLS = ("REDIS_CLUSTER",)


def _convert(key: str, raw: str, default):
    if key in _OPTIONAL_BOOLS and raw.strip() == "":
        return None
    if default is None and key not in _OPTIONAL_BOOLS:
        return raw
    if isinstance(default, bool) or key in _OPTIONAL_BOOLS:
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
