"""Recording one merchant change: versioned, audited with the key id, capped per day, and
applied in this worker before the answer (the others follow the change log)."""

from __future__ import annotations

from flask import current_app, request

from app.domain.clock import as_utc, iso_z
from app.domain.edits import hours_problems
from app.http.auth import caller_key_id
from app.http.errors import Problem, field_error, storage_or_503, unavailable
from app.http.etags import stale
from app.http.params import parse_body
from app.storage import merchant_writes


def parse_change(model, what: str, hours_field: str, hint: str):
    """The JSON body checked against ``model``, and the errors of its opening-hours field
    (parsed by the search's own parser). When the fields fail their checks, the 400 names
    unparseable hours too, so one answer names every problem."""
    body = request.get_json(silent=True)
    hours = [field_error(f, m, hint) for f, m in hours_problems(body, (hours_field,))]
    try:
        parsed = parse_body(model, what)
    except Problem as problem:
        named = {e["field"] for e in problem.errors}
        problem.errors += [e for e in hours if e["field"] not in named]
        raise
    return parsed, hours


def record(svc, merchant_id: str, entity: str, expected: int, state: dict, action: str, fields: dict) -> int:
    """Write ``state`` as the entity's next version; returns it. 412 when ``expected`` is
    stale, 429 when the merchant's changes for the day are used up, 503 without Redis."""
    if svc.redis is None:
        raise unavailable("Changes need Redis, which is off.")
    now = as_utc(svc.now())
    state = {k: v for k, v in state.items() if k != "version"}
    change = {
        "action": action,
        "at": iso_z(now),
        "merchant_id": merchant_id,
        "key_id": caller_key_id(),
        "fields": fields,
    }
    per_day = current_app.config["MERCHANT_WRITES_PER_DAY"]
    with storage_or_503("The change cannot be saved right now; retry with the same If-Match."):
        written = merchant_writes.write(
            svc.redis, entity, expected, state, change, merchant_id, now.date().isoformat(), per_day
        )
    if written.capped:
        raise Problem(
            429,
            f"Merchant {merchant_id!r} has made {per_day} changes today (UTC), the daily limit; more can be made "
            "after 00:00 UTC, or ask the platform team for a higher limit.",
            headers={"Retry-After": str(int(86400 - now.timestamp() % 86400))},
        )
    if not written.ok:
        raise stale(written.version)
    svc.edits.apply({entity: {**state, "version": written.version}})  # read-your-writes here
    return written.version
