"""Which client events are accepted: each judged on its own, with reasons. Pure: no Redis."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import ValidationError

from app.domain.clock import as_utc
from app.domain.impression_tokens import Impression
from app.http.schemas import EventIn

#: Engagement with a shown item: each must bring back that item's impression token.
NEEDS_IMPRESSION = ("click", "detail_view", "directions", "call", "website")


@dataclass
class Checked:
    """One item of a batch: the accepted event (and the impression it proves), or errors."""

    index: int
    event: EventIn | None
    errors: list[dict] | None = None
    impression: Impression | None = None


def validate_batch(
    items: list, known_store, deal_store, now: datetime, max_age_days: int, user: str | None, verify_token
) -> list[Checked]:
    """Judge each item on its own. Pure: no Redis.

    ``user``: the verified user of the request (None: anonymous). Events are that user's:
    an event naming another user is rejected, one naming none is the user's.
    ``verify_token(token) -> Impression | message`` checks impression tokens; an event that
    needs one takes its store (when it names none), surface and rank from it.
    """
    out: list[Checked] = []
    seen_ids: set[str] = set()
    for i, raw in enumerate(items):
        try:
            ev = EventIn.model_validate(raw)
        except ValidationError as exc:
            invalid = [
                {"field": ".".join(map(str, e["loc"])) or "event", "message": e["msg"]}
                for e in exc.errors(include_url=False)
            ]
            out.append(Checked(i, None, invalid))
            continue
        errors: list[dict] = []
        ev, impression = _impression(ev, verify_token, deal_store, errors)
        errors += _semantic_errors(ev, known_store, deal_store, now, max_age_days)
        if ev.user_id is not None and ev.user_id != user:
            errors.append({"field": "user_id", "message": _NOT_YOURS if user else _NO_TOKEN})
        elif user is not None and ev.user_id is None:
            ev = ev.model_copy(update={"user_id": user})
        if ev.type == "review" and user is None:
            errors.append({"field": "type", "message": REVIEW_NEEDS_PURCHASE})
        if ev.event_id in seen_ids:
            errors.append({"field": "event_id", "message": "repeated within this batch"})
        seen_ids.add(ev.event_id)
        out.append(Checked(i, None, errors) if errors else Checked(i, ev, None, impression))
    return out


def _impression(ev: EventIn, verify_token, deal_store, errors: list) -> tuple[EventIn, Impression | None]:
    """The event completed from its impression token, and the impression (None: no token)."""
    if ev.impression_token is None:
        if ev.type in NEEDS_IMPRESSION:
            errors.append(
                {"field": "impression_token", "message": f"a {ev.type} needs the impression_token of the item"}
            )
        return ev, None
    imp = verify_token(ev.impression_token)
    if isinstance(imp, str):
        errors.append({"field": "impression_token", "message": imp})
        return ev, None
    store = ev.store_id or (deal_store(ev.deal_id) if ev.deal_id else None)
    if store is not None and store != imp.store_id:
        errors.append({"field": "impression_token", "message": f"names another store than {store!r}"})
    if ev.deal_id is not None and imp.deal_id is not None and ev.deal_id != imp.deal_id:
        errors.append({"field": "impression_token", "message": f"names another deal than {ev.deal_id!r}"})
    if as_utc(ev.ts).timestamp() < imp.issued - _CLOCK_SKEW_S:
        errors.append({"field": "ts", "message": "before the item was shown"})
    update = {"surface": imp.surface, "rank": imp.rank}
    if ev.store_id is None and ev.deal_id is None:
        update["store_id"] = imp.store_id
    return ev.model_copy(update=update), imp


_FROM_MERCHANTS = (
    "redemptions and orders come from the merchant's point of sale: "
    "POST /v1/merchants/{merchant_id}/redemptions with the merchant's key"
)
REVIEW_NEEDS_PURCHASE = "a review needs a signed-in user who ordered or redeemed at this store"
_CLOCK_SKEW_S = 300
_NO_TOKEN = "an event of a user needs that user's token: send 'Authorization: Bearer <user token>'"
_NOT_YOURS = "must be the user of the token (or left out)"


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
    if ev.type in ("redeem", "order"):
        errors.append({"field": "type", "message": _FROM_MERCHANTS})
    if ev.type == "review" and ev.rating is None:
        errors.append({"field": "rating", "message": "a review needs a rating from 1 to 5"})
    late = ts_error(ev.ts, now, max_age_days)
    if late:
        errors.append({"field": "ts", "message": late})
    return errors


def ts_error(ts: datetime, now: datetime, max_age_days: int) -> str | None:
    """What is wrong with an event's time, or None: the window events and redemptions share."""
    ts = as_utc(ts)
    if ts > now + timedelta(seconds=_CLOCK_SKEW_S):
        return "in the future (more than 5 minutes ahead of the server)"
    if ts < now - timedelta(days=max_age_days):
        return f"older than {max_age_days} days"
    return None
