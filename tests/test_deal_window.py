"""The deal book's ``DealWindow`` answers, at every instant, what computing the deals on offer
at that instant answers: the cached span must end at each deal start and end, each closure
end, each minute (opening hours), and at an edit of the index."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from app.domain.deal_book import DealBook, _opens_in_window
from geo_index import StoreIndex, validate_stores
from geo_index.report import LoadReport
from tests.support.stores import HELSINKI, M_PER_DEG, store

# 16:58:40 in Helsinki: n-evening opens at 17:00 local, so the sweep crosses an opening.
T0 = datetime(2026, 11, 25, 14, 58, 40, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def _catalogue() -> pd.DataFrame:
    lat0, lon0 = HELSINKI
    rows = [
        store("n-day", lat0 + 100 / M_PER_DEG, lon0, opening_hours="Mo-Su 08:00-20:00"),
        store("n-evening", lat0 + 200 / M_PER_DEG, lon0, opening_hours="Mo-Su 17:00-23:00"),
        store("n-off", lat0 + 300 / M_PER_DEG, lon0, opening_hours="off"),
        store("n-unknown", lat0 + 400 / M_PER_DEG, lon0),
        # Closed until an instant that is not on a minute, then open by its hours.
        store("n-closed", lat0 + 500 / M_PER_DEG, lon0, opening_hours="24/7"),
    ]
    frame = pd.DataFrame(rows).fillna({"opening_hours": ""})
    return validate_stores(frame, LoadReport("t"))


def _deals() -> pd.DataFrame:
    def iso(t):
        return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    spec = [
        # deal_id, store, starts, ends, extra
        ("a-runs", "n-day", T0 - timedelta(days=1), T0 + timedelta(days=1), {}),
        ("b-starts-odd", "n-day", T0 + 37.25 * SECOND, T0 + timedelta(days=1), {}),
        ("c-ends-odd", "n-day", T0 - timedelta(days=1), T0 + 95.5 * SECOND, {}),
        # Ends at 17:00:30 local: usable only once the evening store opens before that, which it does.
        ("d-evening-short", "n-evening", T0 - timedelta(days=1), T0 + 110 * SECOND, {}),
        ("e-evening", "n-evening", T0 - timedelta(days=1), T0 + timedelta(days=1), {}),
        ("f-off", "n-off", T0 - timedelta(days=1), T0 + timedelta(days=1), {}),
        ("g-unknown", "n-unknown", T0 - timedelta(days=1), T0 + timedelta(days=1), {}),
        # The closure ends 150.3 s in: this deal ends before that, so it is never usable; the
        # next one is usable throughout (the store reopens in time).
        ("h-closed-short", "n-closed", T0 - timedelta(days=1), T0 + 130.3 * SECOND, {}),
        ("i-closed", "n-closed", T0 - timedelta(days=1), T0 + timedelta(days=1), {}),
        # Valid 17:00-17:01 local only: runs for one minute of the sweep.
        ("j-lunch", "n-day", T0 - timedelta(days=1), T0 + timedelta(days=1), {"valid_hours": "Mo-Su 17:00-17:01"}),
        ("k-paused", "n-day", T0 - timedelta(days=1), T0 + timedelta(days=1), {"status": "paused"}),
    ]
    return pd.DataFrame(
        [
            {
                "deal_id": i,
                "store_id": s,
                "title": i,
                "discount_pct": 10.0,
                "starts_at": pd.Timestamp(iso(a)),
                "ends_at": pd.Timestamp(iso(b)),
                "quota": np.nan,
                "valid_hours": extra.get("valid_hours"),
                "status": extra.get("status", "active"),
            }
            for i, s, a, b, extra in spec
        ]
    )


@pytest.fixture
def world():
    index = StoreIndex(_catalogue())
    index.update_attributes("n-closed", {"closed_until": T0 + 150.3 * SECOND})
    return index, DealBook(_deals(), index)


def _reference(index, book, at) -> dict:
    """The answer computed from scratch at ``at``: usable deal ids per store, and the
    stores with a running deal."""
    active = book.active(at)
    usable = active[_opens_in_window(index, book, active, at)]
    by_store: dict[str, set] = {}
    for r in usable:
        by_store.setdefault(book.store_ids[r], set()).add(book.ids[r])
    return {"usable": by_store, "has_deal": {book.store_ids[r] for r in active}}


def _window_answer(index, book, at) -> dict:
    w = book.window(index, at)
    positions = np.arange(index.size)
    rows, which = w.usable_at(positions)
    assert (np.diff(which) >= 0).all()  # a store's rows together, in positions order (ranking relies on it)
    by_store: dict[str, set] = {}
    for r, i in zip(rows, which):
        sid = index.column("store_id")[int(positions[i])]
        assert book.store_ids[r] == sid
        by_store.setdefault(sid, set()).add(book.ids[r])
    has = {index.column("store_id")[int(p)] for p in np.flatnonzero(w.has_deal[: index.size])}
    return {"usable": by_store, "has_deal": has}


def _sweep(book) -> list[datetime]:
    """Every second of four minutes, and a microsecond either side of every boundary."""
    instants = [T0 + k * SECOND for k in range(240)]
    edges = [T0 + s * SECOND for s in (37.25, 95.5, 110, 130.3, 150.3)]
    edges += [T0.replace(second=0) + timedelta(minutes=m) for m in range(1, 5)]
    for e in edges:
        instants += [e - timedelta(microseconds=1), e, e + timedelta(microseconds=1)]
    return sorted(instants)


def test_the_window_answers_as_a_fresh_computation_at_every_instant(world):
    index, book = world
    changes = 0
    previous = None
    for at in _sweep(book):
        want = _reference(index, book, at)
        assert _window_answer(index, book, at) == want, at
        changes += want != previous
        previous = want
    # The sweep crosses starts, ends, an opening, a one-minute deal and a closure's end.
    assert changes >= 6
    reused = book.window(index, T0 + 10.2 * SECOND) is book.window(index, T0 + 10.9 * SECOND)
    assert reused, "one span is computed once"


def test_the_sweep_finds_a_window_that_outlives_its_answer(world, monkeypatch):
    """The check above can fail: a window that never ends disagrees within the sweep."""
    index, book = world
    from app.domain import deal_book

    real = deal_book.DealWindow.build

    def forever(cls, b, i, now):
        w = real(b, i, now)
        object.__setattr__(w, "until", float("inf"))
        return w

    monkeypatch.setattr(deal_book.DealWindow, "build", classmethod(forever))
    assert any(_window_answer(index, book, at) != _reference(index, book, at) for at in _sweep(book))


def test_an_edit_of_the_index_ends_the_window_at_once(world):
    index, book = world
    at = T0 + 20 * SECOND
    before = _window_answer(index, book, at)
    assert before["usable"]["n-day"] >= {"a-runs"}
    index.update_attributes("n-day", {"opening_hours": "off"})
    after = _window_answer(index, book, at + timedelta(microseconds=1))
    assert "n-day" not in after["usable"]
    assert after == _reference(index, book, at + timedelta(microseconds=1))
