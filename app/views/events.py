"""Client events: clicks, redemptions, orders, reviews and the rest."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from app.domain import impression_tokens
from app.domain.event_rules import REVIEW_NEEDS_PURCHASE, Checked, validate_batch
from app.http import ratelimit
from app.http.errors import unavailable
from app.http.openapi import USER_OPTIONAL, documented
from app.http.params import parse_body
from app.http.schemas import EventBatch, EventsResponse, ProblemBody, RawEventBatch
from app.http.users import request_user
from app.services import Services, services
from app.storage.client import STORAGE_ERRORS
from app.storage.events import TOKEN_USED, read_user_stores, write_events

bp = Blueprint("events", __name__, url_prefix="/v1")


@bp.post("/events")
@documented(
    summary="Record a batch of up to 500 events, idempotently",
    security=USER_OPTIONAL,
    body=EventBatch,
    tags=["events"],
    responses={200: EventsResponse, 400: ProblemBody, 401: ProblemBody, 413: ProblemBody, 503: ProblemBody},
)
def post_events():
    """Each event is validated and reported on its own; a retried event_id is counted once."""
    batch = parse_body(RawEventBatch, "event batch", ': {"events": [...]}')
    ratelimit.charge(len(batch.events) - 1)  # events count one by one (the request counted one)
    svc = services()
    index, deals = svc.index, svc.deals
    now = svc.now()
    user = request_user(now)
    secret = current_app.config["SECRET_KEY"]
    checked = validate_batch(
        batch.events,
        lambda s: index.position(s) is not None,
        deals.store_of,
        now,
        current_app.config["EVENT_MAX_AGE_DAYS"],
        user,
        lambda token: impression_tokens.verify(secret, token, now.timestamp()),
    )
    checked = _reviews_need_a_purchase(svc, user, checked)
    good = [c for c in checked if c.event is not None]
    written = _write(svc, good) if good else {}
    results = [_result(batch.events[c.index], c, written) for c in checked]
    count = {s: sum(r["status"] == s for r in results) for s in ("accepted", "duplicate", "rejected")}
    return jsonify(
        accepted=count["accepted"], duplicates=count["duplicate"], rejected=count["rejected"], results=results
    )


def _reviews_need_a_purchase(svc: Services, user: str | None, checked: list[Checked]) -> list[Checked]:
    """Reject reviews of stores where the signed-in user never ordered or redeemed (the
    base order history, and what merchants recorded since)."""
    if user is None or not any(c.event is not None and c.event.type == "review" for c in checked):
        return checked
    if svc.redis is None:
        raise unavailable("Reviews cannot be checked right now (Redis is off); retry later.")
    try:
        bought = set(svc.history.get(user, ())) | read_user_stores(svc.redis, user)
    except STORAGE_ERRORS as exc:
        svc.breaker.failed(exc, "events")
        raise unavailable("Reviews cannot be checked right now; retry the same batch later.") from None

    def unearned(ev) -> bool:  # a review may name its store through a deal
        return ev.type == "review" and (ev.store_id or svc.deals.store_of(ev.deal_id)) not in bought

    return [
        Checked(c.index, None, [{"field": "store_id", "message": REVIEW_NEEDS_PURCHASE}])
        if c.event is not None and unearned(c.event)
        else c
        for c in checked
    ]


def _write(svc: Services, good: list[Checked]) -> dict:
    """{index: NEW | DUPLICATE | TOKEN_USED}; a 503 acknowledges nothing, so a retry is safe."""
    if svc.redis is None:
        raise unavailable("Events cannot be stored right now (Redis is off); retry later.")
    tz, index = svc.index.column("timezone"), svc.index
    try:
        return write_events(
            svc.redis,
            [(c.index, c.event) for c in good],
            svc.deals.store_of,
            current_app.config["STREAM_MAXLEN"],
            lambda s: tz[index.position(s)],
            impressions={c.index: c.impression for c in good if c.impression is not None},
            replicas=current_app.config["REDIS_WAIT_REPLICAS"],
            wait_ms=current_app.config["REDIS_WAIT_MS"],
        )
    except STORAGE_ERRORS as exc:
        svc.breaker.failed(exc, "events")
        # Nothing was acknowledged: the client keeps the batch and retries; event_ids make that safe.
        raise unavailable("Events cannot be stored right now; retry the same batch later.") from None


def _result(raw, c: Checked, written: dict) -> dict:
    if c.event is None or written[c.index] == TOKEN_USED:
        raw_id = raw.get("event_id") if isinstance(raw, dict) else None
        errors = c.errors
        if c.event is not None:
            errors = [{"field": "impression_token", "message": f"already used for a {c.event.type}"}]
        return {
            "index": c.index,
            # A rejected id is echoed only as far as a valid one may be long.
            "event_id": raw_id[:128] if isinstance(raw_id, str) else None,
            "status": "rejected",
            "errors": errors,
        }
    return {"index": c.index, "event_id": c.event.event_id, "status": "accepted" if written[c.index] else "duplicate"}
