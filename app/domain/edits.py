"""Merchants' edits over the catalogue and the deals file: checked here, applied in every process.

An edited entity's state is whole (every editable field of a store; every field of a
deal), versioned, and kept in Redis (``storage.merchant_writes``). Applying a state is
idempotent and ordered by version, so replaying the log at start-up, after a catalogue
change or twice changes nothing. Store edits change the index in place (a store keeps its
position, so the model's item rows and the deal book stay valid); deal edits build a new
deal book from the file's rows plus every edited deal, swapped in whole.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

import pandas as pd

from app.domain.deal_book import DealBook
from geo_index import StoreIndex
from geo_index.hours import hours_problem

log = logging.getLogger(__name__)

#: Fields a merchant cannot change here, and why (the 400 says how to get them changed).
CATALOGUE_FIELDS = ("store_id", "merchant_id", "name", "category", "lat", "lon", "timezone", "rating", "popularity")
CATALOGUE_HINT = (
    "position, category and name come from the store catalogue (OpenStreetMap); to change them, edit the "
    "store on openstreetmap.org or ask the platform team, and the next catalogue import brings the change"
)


def hours_problems(body: object, fields: tuple[str, ...]) -> list[tuple[str, str]]:
    """(field, message) for the hours fields of a raw request body that do not parse (the
    search's own opening-hours parser): asked even when other fields fail their checks, so
    one answer names every problem."""
    if not isinstance(body, dict):
        return []
    return [(f, p) for f in fields if isinstance(body.get(f), str) for p in [hours_problem(body[f])] if p]


def deal_problems(state: dict) -> list[tuple[str, str]]:
    """(field, message) for the rules across fields of a whole deal state (its hours are
    checked where they arrive: ``hours_problems``)."""
    if _utc(state["ends_at"]) <= _utc(state["starts_at"]):
        return [("ends_at", "must be after starts_at")]
    return []


def store_state(index: StoreIndex, pos: int) -> dict:
    """A store's editable fields as the catalogue gives them (version 0: never edited)."""
    rec = index.record(pos)
    closure = None
    if rec["closed_until"]:
        closure = {"closed_until": rec["closed_until"], "reason": rec["closure_reason"]}
    return {
        "store_id": rec["id"],
        "opening_hours": rec["opening_hours"],
        "price_level": rec["price_level"],
        "tags": rec["tags"],
        "closure": closure,
        "phone": rec["phone"],
        "website": rec["website"],
        "version": 0,
    }


def store_changes(state: dict) -> dict:
    """``StoreIndex.update_attributes`` arguments for a whole store state."""
    closure = state.get("closure") or {}
    until = closure.get("closed_until")
    return {
        "opening_hours": state.get("opening_hours"),
        "price_level": state.get("price_level"),
        "tags": state.get("tags") or [],
        "phone": state.get("phone"),
        "website": state.get("website"),
        "closed_until": _utc(until) if until else None,
        "closure_reason": closure.get("reason") if until else None,
    }


def build_book(base: pd.DataFrame, deals: dict[str, dict], index: StoreIndex) -> DealBook:
    """The deal book of the file's rows with every edited deal's state over them."""
    if not deals:
        return DealBook(base, index, base=base)
    edited = pd.DataFrame(
        [
            {
                **{k: s.get(k) for k in ("deal_id", "store_id", "title", "discount_pct", "quota", "status")},
                "starts_at": _utc(s["starts_at"]),
                "ends_at": _utc(s["ends_at"]),
                "tags": "|".join(s.get("tags") or []),
                "per_user_limit": s.get("per_user_limit"),
                "valid_hours": s.get("valid_hours"),
                "version": s["version"],
            }
            for s in deals.values()
        ]
    )
    edited["quota"] = pd.to_numeric(edited["quota"], errors="coerce").astype(float)
    kept = base.loc[~base["deal_id"].astype(str).isin(deals.keys())]
    frame = pd.concat([kept, edited], ignore_index=True) if len(kept) else edited
    return DealBook(frame, index, base=base)


class CatalogueEdits:
    """The edits this process has applied: the index changed in place, and the deal book."""

    def __init__(self, index: StoreIndex, book: DealBook):
        self.index = index
        self.book = book
        self.versions: dict[str, int] = {}  # entity -> version applied
        self._deals: dict[str, dict] = {}
        self._lock = threading.Lock()

    def apply(self, states: dict[str, dict]) -> int:
        """Apply entity states newer than what this process has; returns how many were."""
        with self._lock:
            applied, deals_changed = 0, False
            for entity, state in states.items():
                if state["version"] <= self.versions.get(entity, 0):
                    continue
                kind, _, ident = entity.partition(":")
                if kind == "store":
                    if not self.index.update_attributes(ident, store_changes(state)):
                        log.warning("an edit names store %r, which the catalogue no longer has", ident)
                elif kind == "deal":
                    self._deals[ident] = state
                    deals_changed = True
                self.versions[entity] = state["version"]
                applied += 1
            if deals_changed:
                self.book = build_book(self.book.base, self._deals, self.index)
            return applied

    def version(self, entity: str) -> int:
        return self.versions.get(entity, 0)


def _utc(value) -> datetime:
    t = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=UTC)
