"""The service's clock: the NOW setting, and store-local days."""

from datetime import UTC, date, datetime, timedelta

import pytest

from app.domain.clock import clock_from_setting, days_between, local_day, utc_now


def test_an_iso_instant_stops_the_clock_there():
    clock = clock_from_setting("2026-11-25T22:30:00Z")
    assert clock() == clock() == datetime(2026, 11, 25, 22, 30, tzinfo=UTC)
    assert clock_from_setting("2026-11-25T22:30:00")() == datetime(2026, 11, 25, 22, 30, tzinfo=UTC)  # UTC if naive
    assert clock_from_setting("2026-11-26T00:30:00+02:00")() == datetime(2026, 11, 25, 22, 30, tzinfo=UTC)


def test_no_setting_is_the_real_clock_and_a_callable_is_kept():
    assert abs(clock_from_setting(None)() - datetime.now(UTC)) < timedelta(seconds=5)
    assert clock_from_setting(None) is utc_now
    fixed = lambda: datetime(2020, 1, 1, tzinfo=UTC)  # noqa: E731
    assert clock_from_setting(fixed) is fixed


def test_a_bad_instant_says_what_to_give():
    with pytest.raises(ValueError, match="O2O_NOW='tomorrow'.*ISO 8601"):
        clock_from_setting("tomorrow")


def test_days_are_the_store_local_day():
    late = datetime(2026, 11, 25, 22, 30, tzinfo=UTC)
    assert local_day(late, "Europe/Helsinki") == "2026-11-26"
    assert local_day(late, "UTC") == "2026-11-25"
    assert local_day(late, "America/New_York") == "2026-11-25"
    assert days_between(date(2026, 2, 27), date(2026, 3, 1)) == ["2026-02-27", "2026-02-28", "2026-03-01"]
