"""Client events: clicks, redemptions, orders, reviews and the rest."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request
from pydantic import ValidationError

from app.domain.event_rules import validate_batch
from app.http.errors import Problem, unavailable
from app.http.openapi import documented
from app.http.params import validation_errors
from app.http.schemas import EventBatch, EventsResponse, ProblemBody, RawEventBatch
from app.services import Services, services
from app.storage.client import STORAGE_ERRORS
from app.storage.events import write_events

bp = Blueprint("events", __name__, url_prefix="/v1")


@bp.post("/events")
@documented(
    summary="Record a batch of up to 500 events, idempotently",
    body=EventBatch,
    tags=["events"],
    responses={200: EventsResponse, 400: ProblemBody, 413: ProblemBody, 503: ProblemBody},
)
def post_events():
    """Each event is validated and reported on its own; a retried event_id is counted once."""
    batch = _parse_batch()
    svc = services()
    index, deals = svc.index, svc.deals
    checked = validate_batch(
        batch.events,
        lambda s: index.position(s) is not None,
        deals.store_of,
        svc.now(),
        current_app.config["EVENT_MAX_AGE_DAYS"],
    )
    good = [(i, ev) for i, ev, _err in checked if ev is not None]
    written = _write(svc, good) if good else {}
    results = [_result(batch.events[i], i, ev, err, written) for i, ev, err in checked]
    count = {s: sum(r["status"] == s for r in results) for s in ("accepted", "duplicate", "rejected")}
    return jsonify(
        accepted=count["accepted"], duplicates=count["duplicate"], rejected=count["rejected"], results=results
    )


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
