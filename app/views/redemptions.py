"""Redemptions and orders, from the merchant's point of sale (its key), never from clients."""

from __future__ import annotations

import math

from flask import Blueprint, current_app, jsonify

from app.domain import impression_tokens
from app.domain.clock import as_utc
from app.domain.event_rules import ts_error
from app.http.auth import require_merchant
from app.http.errors import Problem, field_error, storage_or_503, unavailable
from app.http.openapi import documented
from app.http.params import parse_body
from app.http.schemas import EventIn, ProblemBody, RedemptionIn, RedemptionOut
from app.http.users import BadUserToken, user_of_token
from app.services import services
from app.storage import redemptions
from app.storage.events import write_events

bp = Blueprint("redemptions", __name__, url_prefix="/v1/merchants")
_PATH = {
    "merchant_id": {
        "description": "The merchant whose store redeemed; a key records only for its own stores.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 128},
    }
}
_UNAVAILABLE = "Redemptions cannot be recorded right now; retry with the same redemption_id."


@bp.post("/<merchant_id>/redemptions")
@documented(
    summary="Record a redemption or an order at one of the merchant's stores, idempotently",
    body=RedemptionIn,
    path=_PATH,
    tags=["merchants"],
    security=[{"bearer": []}],
    responses={
        200: RedemptionOut,
        201: RedemptionOut,
        400: ProblemBody,
        401: ProblemBody,
        403: ProblemBody,
        409: ProblemBody,
        503: ProblemBody,
    },
)
def record_redemption(merchant_id: str):
    """201 for a new redemption, 200 for a redemption_id already recorded (nothing moves
    twice), 409 when the deal's quota is used up. With ``deal_id`` it is a redemption and
    takes one unit of the deal's quota; without, an order."""
    svc = services()
    require_merchant(svc, merchant_id)
    red = parse_body(RedemptionIn, "redemption")
    now = svc.now()
    pos = svc.index.position(red.store_id)
    if pos is None or svc.index.column("merchant_id")[pos] != merchant_id:
        # Another merchant's store looks exactly like a missing one: nothing leaks.
        raise Problem(403, f"Store {red.store_id!r} is not one of merchant {merchant_id!r}'s stores.")
    errors = []
    quota, per_user = None, math.nan
    if red.deal_id is not None:
        book = svc.deals
        row = book.by_id.get(red.deal_id)
        if row is None or book.store_ids[row] != red.store_id:
            errors.append(field_error("deal_id", f"no deal {red.deal_id!r} at store {red.store_id!r}"))
        elif book.status[row] == "ended":
            raise Problem(409, f"Deal {red.deal_id!r} has ended; it takes no more redemptions.")
        else:
            quota, per_user = float(book.quota[row]), float(book.per_user_limit[row])
    ts = as_utc(red.ts)
    late = ts_error(ts, now, current_app.config["EVENT_MAX_AGE_DAYS"])
    if late:
        errors.append(field_error("ts", late))
    user = None
    if red.user_token is not None:
        try:
            user = user_of_token(red.user_token, now)
        except BadUserToken as exc:
            errors.append(field_error("user_token", str(exc), "the customer's current user token, or leave it out"))
    shown = None
    if red.impression_token is not None:
        shown = impression_tokens.verify(current_app.config["SECRET_KEY"], red.impression_token, now.timestamp())
        if isinstance(shown, str) or shown.store_id != red.store_id:
            message = shown if isinstance(shown, str) else f"names another store than {red.store_id!r}"
            errors.append(field_error("impression_token", message, "the token of the item redeemed, or leave it out"))
    if errors:
        raise Problem(400, "Invalid redemption.", errors)
    if svc.redis is None:
        raise unavailable("Redemptions need Redis, which is off.")
    with storage_or_503(_UNAVAILABLE):
        state, used = redemptions.claim(
            svc.redis, merchant_id, red.redemption_id, red.store_id, red.deal_id, quota, user, per_user
        )
        if state == redemptions.NO_QUOTA:
            raise Problem(409, f"Deal {red.deal_id!r} has no quota left ({used} redeemed).")
        if state == redemptions.USER_LIMIT:
            raise Problem(409, f"This customer has redeemed deal {red.deal_id!r} {int(per_user)} times, its limit.")
        _write_event(svc, merchant_id, red, ts, user, shown)
    left = None if quota is None or math.isnan(quota) else max(int(quota) - used, 0)
    body = {
        "redemption_id": red.redemption_id,
        "status": "recorded" if state == redemptions.NEW else "duplicate",
        "store_id": red.store_id,
        "deal_id": red.deal_id,
        "quota_left": left,
    }
    return jsonify(body), 201 if state == redemptions.NEW else 200


def _write_event(svc, merchant_id: str, red: RedemptionIn, ts, user: str | None, shown) -> None:
    """The redemption as an event (stream, statistics, the user's state); every retry writes
    under the same event id, so a retry completes a write a crash cut short, once."""
    event = EventIn(
        event_id=redemptions.event_id_of(merchant_id, red.redemption_id),
        type="redeem" if red.deal_id else "order",
        ts=ts,
        store_id=red.store_id,
        deal_id=red.deal_id,
        user_id=user,
        amount=red.amount,
        surface=shown.surface if shown else None,
        rank=min(shown.rank, 10_000) if shown else None,
    )
    tz = svc.index.column("timezone")[svc.index.position(red.store_id)]
    cfg = current_app.config
    write_events(
        svc.redis,
        [(0, event)],
        svc.deals.store_of,
        cfg["STREAM_MAXLEN"],
        lambda s: tz,
        replicas=cfg["REDIS_WAIT_REPLICAS"],
        wait_ms=cfg["REDIS_WAIT_MS"],
    )
