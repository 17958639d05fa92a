"""Client events: clicks, redemptions, orders, reviews and the rest."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request
from pydantic import ValidationError

from app.domain.event_rules import REVIEW_NEEDS_PURCHASE, validate_batch
from app.http.errors import Problem, unavailable
from app.http.openapi import USER_OPTIONAL, documented
from app.http.params import validation_errors
from app.http.schemas import EventBatch, EventsResponse, ProblemBody, RawEventBatch
from app.http.users import request_user
from app.services import Services, services
from app.storage.client import STORAGE_ERRORS
from app.storage.events import read_user_stores, write_events

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
    batch = _parse_batch()
    svc = services()
    index, deals = svc.index, svc.deals
    user = request_user(svc.now())
    checked = validate_batch(
        batch.events,
        lambda s: index.position(s) is not None,
        deals.store_of,
        svc.now(),
        current_app.config["EVENT_MAX_AGE_DAYS"],
        user,
    )
    checked = _reviews_need_a_purchase(svc, user, checked)
    good = [(i, ev) for i, ev, _err in checked if ev is not None]
    written = _write(svc, good) if good else {}
    results = [_result(batch.events[i], i, ev, err, written) for i, ev, err in checked]
    count = {s: sum(r["status"] == s for r in results) for s in ("accepted", "duplicate", "rejected")}
    return jsonify(
        accepted=count["accepted"], duplicates=count["duplicate"], rejected=count["rejected"], results=results
    )


def _reviews_need_a_purchase(svc: Services, user: str | None, checked: list) -> list:
    """Reject reviews of stores where the signed-in user never ordered or redeemed (the
    base order history, and what merchants recorded since)."""
    if user is None or not any(ev is not None and ev.type == "review" for _i, ev, _e in checked):
        return checked
    if svc.redis is None:
        raise unavailable("Reviews cannot be checked right now (Redis is off); retry later.")
    try:
        bought = set(svc.history.get(user, ())) | read_user_stores(svc.redis, user)
    except STORAGE_ERRORS as exc:
        svc.breaker.failed(exc, "events")
        raise unavailable("Reviews cannot be checked right now; retry the same batch later.") from None
    out = []
    for i, ev, err in checked:
        if ev is not None and ev.type == "review" and ev.store_id not in bought:
            out.append((i, None, [{"field": "store_id", "message": REVIEW_NEEDS_PURCHASE}]))
        else:
            out.append((i, ev, err))
    return out


def _parse_batch() -> RawEventBatch:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise Problem(400, 'Body must be a JSON object: {"events": [...]} (Content-Type: application/json).')
    try:
        return RawEventBatch.model_validate(body)
    except ValidationError as exc:
        raise Problem(400, "Invalid event batch.", validation_errors(RawEventBatch, exc)) from None


def _write(svc: Services, good: list) -> dict:
    """{index: True (new) | False (duplicate)}; a 503 acknowledges nothing, so a retry is safe."""
    if svc.redis is None:
        raise unavailable("Events cannot be stored right now (Redis is off); retry later.")
    tz, index = svc.index.column("timezone"), svc.index
    try:
        return write_events(
            svc.redis, good, svc.deals.store_of, current_app.config["STREAM_MAXLEN"], lambda s: tz[index.position(s)]
        )
    except STORAGE_ERRORS as exc:
        svc.breaker.failed(exc, "events")
        # Nothing was acknowledged: the client keeps the batch and retries; event_ids make that safe.
        raise unavailable("Events cannot be stored right now; retry the same batch later.") from None


def _result(raw, i: int, ev, errors, written: dict) -> dict:
    if ev is None:
        raw_id = raw.get("event_id") if isinstance(raw, dict) else None
        return {
            "index": i,
            "event_id": raw_id if isinstance(raw_id, str) else None,
            "status": "rejected",
            "errors": errors,
        }
    return {"index": i, "event_id": ev.event_id, "status": "accepted" if written[i] else "duplicate"}
