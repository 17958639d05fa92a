"""Opening hours: overnight ranges, DST days, 'off', and unparseable input."""

from datetime import UTC, datetime

import numpy as np
import pytest

from geo_index import Schedule, hours_problem
from geo_index.hours import ScheduleTable

UTC = UTC


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def test_overnight_range_spans_midnight():
    s = Schedule("Mo-Su 18:00-02:00", "Europe/Helsinki")
    # Thursday 2026-11-26, Helsinki is UTC+2.
    assert s.is_open(utc(2026, 11, 25, 23, 30))  # 01:30 local
    assert not s.is_open(utc(2026, 11, 26, 0, 30))  # 02:30 local
    assert not s.is_open(utc(2026, 11, 26, 15, 0))  # 17:00 local
    assert s.is_open(utc(2026, 11, 26, 16, 0))  # 18:00 local
    assert s.next_close(utc(2026, 11, 26, 16, 0)).isoformat() == "2026-11-27T02:00:00+02:00"


def test_spring_forward_day_uses_summer_offset_after_the_switch():
    # 2026-03-29: Helsinki jumps from 03:00 EET to 04:00 EEST at 01:00 UTC.
    s = Schedule("Mo-Su 21:00-04:00", "Europe/Helsinki")
    assert s.is_open(utc(2026, 3, 29, 0, 30))  # 02:30 EET
    # 01:30 UTC is 04:30 EEST: closed. A fixed +02:00 would say 03:30 and wrongly "open".
    assert not s.is_open(utc(2026, 3, 29, 1, 30))
    assert s.next_close(utc(2026, 3, 29, 0, 30)) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)


def test_fall_back_day():
    # 2026-10-25: 04:00 EEST becomes 03:00 EET at 01:00 UTC; 03:30 local happens twice.
    s = Schedule("Mo-Su 08:00-20:00", "Europe/Helsinki")
    assert not s.is_open(utc(2026, 10, 25, 5, 30))  # 07:30 EET
    assert s.is_open(utc(2026, 10, 25, 6, 0))  # 08:00 EET
    assert s.next_open(utc(2026, 10, 25, 0, 0)) == datetime(2026, 10, 25, 6, 0, tzinfo=UTC)


def test_off_and_always():
    off = Schedule("off", "Europe/Helsinki")
    assert not off.is_open(utc(2026, 11, 25, 12))
    assert off.next_open(utc(2026, 11, 25, 12)) is None
    always = Schedule("24/7", "Europe/Helsinki")
    assert always.is_open(utc(2026, 11, 25, 3))
    assert always.next_close(utc(2026, 11, 25, 3)) is None


def test_naive_time_is_local_to_each_store():
    table = ScheduleTable()
    codes = np.array(
        [
            table.code_for("Mo-Su 09:00-10:00", "Europe/Helsinki"),
            table.code_for("Mo-Su 09:00-10:00", "America/New_York"),
            -1,
        ]
    )
    # 09:30 wall-clock is inside both stores' hours, though they are 7 hours apart.
    assert table.open_mask(codes, datetime(2026, 11, 25, 9, 30)).tolist() == [True, True, False]
    # One instant: 09:30 in Helsinki is 02:30 in New York.
    assert table.open_mask(codes, utc(2026, 11, 25, 7, 30)).tolist() == [True, False, False]


@pytest.mark.parametrize("text", ["garbage", "Mon - Fri 11am - 11pm", "Mo-Fr 25:00-26:00x", "Mo-Fr 10:00-"])
def test_unparseable_is_reported(text):
    assert hours_problem(text) is not None


@pytest.mark.parametrize("text", ["Mo-Fr 10:00-18:00; PH off", "24/7", "off", "Mo-Su 18:00-02:00"])
def test_valid_is_accepted(text):
    assert hours_problem(text) is None
