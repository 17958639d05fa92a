"""Which client events are accepted: each judged on its own, with reasons. Pure: no Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import ValidationError

from app.http.schemas import EventIn


def validate_batch(items: list, known_store, deal_store, now: datetime, max_age_days: int) -> list:
    """Each item as (index, EventIn, None) or (index, None, errors). Pure: no Redis."""
    out: list[tuple[int, EventIn | None, list[dict] | None]] = []
    seen_ids: set[str] = set()
    for i, raw in enumerate(items):
        try:
            ev = EventIn.model_validate(raw)
        except ValidationError as exc:
            out.append(
                (
                    i,
                    None,
                    [
                        {"field": ".".join(map(str, e["loc"])) or "event", "message": e["msg"]}
                        for e in exc.errors(include_url=False)
                    ],
                )
            )
            continue
        errors = _semantic_errors(ev, known_store, deal_store, now, max_age_days)
        if ev.event_id in seen_ids:
            errors.append({"field": "event_id", "message": "repeated within this batch"})
        seen_ids.add(ev.event_id)
        out.append((i, None, errors) if errors else (i, ev, None))
    return out


def _semantic_errors(ev: EventIn, known_store, deal_store, now, max_age_days) -> list:
    errors = []
    if ev.deal_id is not None:
        store_of_deal = deal_store(ev.deal_id)
        if store_of_deal is None:
            errors.append({"field": "deal_id", "message": f"unknown deal {ev.deal_id!r}"})
        elif ev.store_id is not None and ev.store_id != store_of_deal:
            errors.append({"field": "store_id", "message": f"deal {ev.deal_id!r} belongs to store {store_of_deal!r}"})
    if ev.store_id is not None and not known_store(ev.store_id):
        errors.append({"field": "store_id", "message": f"unknown store {ev.store_id!r}"})
    if ev.store_id is None and ev.deal_id is None:
        errors.append({"field": "store_id", "message": "give store_id or deal_id"})
    if ev.type == "redeem" and ev.deal_id is None:
        errors.append({"field": "deal_id", "message": "a redeem event needs the deal_id"})
    if ev.type == "review" and ev.rating is None:
        errors.append({"field": "rating", "message": "a review needs a rating from 1 to 5"})
    ts = ev.ts if ev.ts.tzinfo else ev.ts.replace(tzinfo=UTC)
    if ts > now + timedelta(minutes=5):
        errors.append({"field": "ts", "message": "in the future (more than 5 minutes ahead of the server)"})
    elif ts < now - timedelta(days=max_age_days):
        errors.append({"field": "ts", "message": f"older than {max_age_days} days"})
    return errors
