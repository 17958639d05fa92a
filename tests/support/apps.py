"""Settings for test apps: a pinned clock and nothing from the developer's var/ or data."""

from __future__ import annotations

from datetime import UTC, datetime

#: A Wednesday in November, 12:00 in Helsinki (UTC+2).
FIXED_NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def app_config(tmp_path, redis_url, **extra) -> dict:
    """Settings for a test app: nothing from the developer's var/, artifacts/ or generated data."""
    return {
        "TESTING": True,
        "NOW": lambda: FIXED_NOW,
        "REDIS_URL": redis_url,
        "DATA_DIR": str(tmp_path / "var"),
        "ARTIFACTS": str(tmp_path / "artifacts"),
        "DEALS": None,
        "BASE_ORDERS": None,
        # Tests drive the API far faster than any client: limits are tested on their own.
        "RATE_LIMIT_KEY": 0,
        "RATE_LIMIT_ANON": 0,
        **extra,
    }
