"""Opening hours in OpenStreetMap syntax, evaluated in each store's own timezone.

Parsing and evaluation are done by ``opening-hours-py`` (Rust bindings of the
``opening-hours`` crate): it handles overnight ranges, ``PH off``, comments and the
rest of the OSM grammar, far beyond what a hand-written parser would. This module only
adds a table of unique ``(expression, timezone)`` pairs, so that a query evaluates each
distinct schedule once, not once per store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import opening_hours as _oh

UTC = ZoneInfo("UTC")
#: How far ahead ``next_open`` / ``next_close`` look before answering "none".
_LOOKAHEAD = timedelta(days=366)


def hours_problem(expression: str) -> str | None:
    """Why ``expression`` is not valid OSM opening_hours, or None when it is."""
    try:
        _oh.OpeningHours(expression)
    except (_oh.ParserError, SyntaxError, ValueError) as exc:  # type: ignore[attr-defined]  # compiled module
        first = str(exc).strip().splitlines()
        return "unparseable opening_hours: " + (first[-1].strip(" =") if first else "syntax error")
    return None


def timezone_problem(name: str) -> str | None:
    """Why ``name`` is not a usable IANA timezone, or None when it is."""
    try:
        get_zone(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown IANA timezone {name!r} (e.g. 'Europe/Helsinki')"
    return None


@lru_cache(maxsize=1024)
def get_zone(name: str) -> ZoneInfo:
    """Cached ``ZoneInfo``; raises ``ZoneInfoNotFoundError`` for unknown names."""
    if not name or "\x00" in name:
        raise ValueError("empty timezone")
    return ZoneInfo(name)


def as_utc(at: datetime) -> datetime:
    """An aware instant in the zoneinfo UTC zone, which the Rust bindings accept."""
    if at.tzinfo is None:
        raise ValueError("naive datetime: give a timezone-aware instant")
    return at.astimezone(dt_timezone.utc).replace(tzinfo=UTC)  # noqa: UP017 - UTC is the ZoneInfo here


@dataclass(frozen=True)
class Schedule:
    """One parsed expression bound to one timezone."""

    expression: str
    tz: str

    @property
    def _parsed(self):
        return _parsed(self.expression, self.tz)

    def instant(self, at: datetime) -> datetime:
        """``at`` as a UTC instant; a naive ``at`` is wall-clock time in this schedule's zone."""
        if at.tzinfo is None:
            at = at.replace(tzinfo=get_zone(self.tz))
        return as_utc(at)

    def is_open(self, at: datetime) -> bool:
        return bool(self._parsed.is_open(self.instant(at)))

    def next_open(self, at: datetime) -> datetime | None:
        """First instant after ``at`` when the store opens (None within a year: never)."""
        start = self.instant(at)
        for begin, _end, state, _c in self._parsed.intervals(start, start + _LOOKAHEAD):
            if state == _oh.State.OPEN and begin > start:
                return begin
        return None

    def next_close(self, at: datetime) -> datetime | None:
        """End of the current or next open period (None: open all the next year, or never)."""
        start = self.instant(at)
        horizon = start + _LOOKAHEAD
        for _begin, end, state, _c in self._parsed.intervals(start, horizon):
            if state == _oh.State.OPEN:
                return end if end < horizon else None
        return None


@lru_cache(maxsize=65536)
def _parsed(expression: str, tz: str):
    return _oh.OpeningHours(expression, timezone=get_zone(tz))


class ScheduleTable:
    """Unique schedules, addressed by small integer codes kept beside the index.

    Code ``-1`` means "no opening hours known"; such a store never counts as open.
    """

    _MEMO_LIMIT = 200_000

    def __init__(self):
        self._codes: dict[tuple[str, str], int] = {}
        self.schedules: list[Schedule] = []
        # OSM hours change state only on whole minutes, so a state holds for the whole
        # minute: remember it per (minute, schedule) across requests.
        self._memo: dict[tuple, Any] = {}
        self._memo_minute: datetime | None = None

    def code_for(self, expression: str | None, tz: str) -> int:
        if expression is None or expression == "":
            return -1
        key = (expression, tz)
        code = self._codes.get(key)
        if code is None:
            code = len(self.schedules)
            self._codes[key] = code
            self.schedules.append(Schedule(expression, tz))
        return code

    def open_mask(self, codes: np.ndarray, at: datetime) -> np.ndarray:
        """For an array of codes, whether each schedule is open at ``at``.

        An aware ``at`` is one instant for all; a naive one is wall-clock time in each
        schedule's own timezone ("open at 20:00 local").
        """
        codes = np.asarray(codes)
        minute = at.replace(second=0, microsecond=0)
        if len(codes) <= 256:
            # A page of results: a memo lookup per row beats np.unique's fixed cost.
            return np.array([c >= 0 and self._is_open(c, minute) for c in codes.tolist()], dtype=bool)
        out = np.zeros(codes.shape, dtype=bool)
        known = codes >= 0
        if not known.any():
            return out
        uniq, inverse = np.unique(codes[known], return_inverse=True)
        state = np.fromiter((self._is_open(int(c), minute) for c in uniq), dtype=bool, count=len(uniq))
        out[known] = state[inverse]
        return out

    def is_open(self, code: int, at: datetime) -> bool:
        """Whether schedule ``code`` is open at ``at`` (memoised per minute); False for -1."""
        return code >= 0 and self._is_open(code, at.replace(second=0, microsecond=0))

    def next_open(self, code: int, at: datetime) -> datetime | None:
        """The schedule's next opening after ``at``'s minute (memoised per minute)."""
        if code < 0:
            return None
        minute = at.replace(second=0, microsecond=0)
        key = (minute, code, "next_open")
        if key not in self._memo:
            self._roll(minute)
            self._memo[key] = self.schedules[code].next_open(minute)
        return self._memo[key]

    def _is_open(self, code: int, minute: datetime) -> bool:
        key = (minute, code)
        hit = self._memo.get(key)
        if hit is None:
            self._roll(minute)
            hit = self._memo[key] = self.schedules[code].is_open(minute)
        return hit

    def _roll(self, minute: datetime) -> None:
        # Keep only the current minute's answers: memory stays at about two entries per schedule.
        if minute != self._memo_minute or len(self._memo) >= self._MEMO_LIMIT:
            self._memo.clear()
            self._memo_minute = minute
