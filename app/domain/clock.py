"""The service's clock and calendar.

Every "now" a request uses comes from ``Services.now`` (the ``NOW`` setting pins it in
tests, ``O2O_NOW`` in a test that runs whole servers), never from ``datetime.now()`` in a
view: a test that depends on the date must not depend on the machine's date or time zone.
Days are always a store's local day.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import numpy as np

from geo_index.hours import get_zone


def utc_now() -> datetime:
    return datetime.now(UTC)


def clock_from_setting(setting: Callable[[], datetime] | str | None) -> Callable[[], datetime]:
    """The clock for the NOW setting: None is the real clock, a callable is used as is (tests),
    and an ISO 8601 instant (``O2O_NOW``, UTC if no offset) stops the clock there, so that a
    test of a whole server can depend on the date without depending on the machine's."""
    if setting is None or setting == "":
        return utc_now
    if callable(setting):
        return setting
    try:
        fixed = datetime.fromisoformat(setting)
    except ValueError:
        raise ValueError(f"O2O_NOW={setting!r}: give an ISO 8601 instant, e.g. 2026-11-25T10:00:00Z") from None
    fixed = as_utc(fixed)
    return lambda: fixed


def as_utc(instant: datetime) -> datetime:
    """``instant`` as given, or in UTC when it names no offset."""
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)


def iso_z(instant: datetime | np.datetime64) -> str:
    """ISO 8601 with ``Z`` for UTC: a datetime (naive means UTC), or a naive-UTC numpy
    datetime64 as the deal book keeps them (to the second)."""
    if isinstance(instant, np.datetime64):
        return str(np.datetime_as_string(instant, unit="s")) + "Z"
    return as_utc(instant).isoformat().replace("+00:00", "Z")


def local_day(instant: datetime, tz: str) -> str:
    """The ISO date of ``instant`` in time zone ``tz`` (a store's day for its statistics)."""
    return instant.astimezone(get_zone(tz)).date().isoformat()


def days_between(start: date, end: date) -> list[str]:
    """ISO dates from ``start`` to ``end``, both included."""
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]
