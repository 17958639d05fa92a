"""The service's clock and calendar.

Every "now" a request uses comes from ``Services.now`` (``O2O``'s ``NOW`` setting pins it
in tests), never from ``datetime.now()`` in a view: a test that depends on the date must
not depend on the machine's date or time zone. Days are always a store's local day.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from geo_index.hours import get_zone


def utc_now() -> datetime:
    return datetime.now(UTC)


def local_day(instant: datetime, tz: str) -> str:
    """The ISO date of ``instant`` in time zone ``tz`` (a store's day for its statistics)."""
    return instant.astimezone(get_zone(tz)).date().isoformat()


def days_between(start: date, end: date) -> list[str]:
    """ISO dates from ``start`` to ``end``, both included."""
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]
