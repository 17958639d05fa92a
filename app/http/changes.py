"""Recording one merchant change: versioned, audited with the key id, capped per day, and
applied in this worker before the answer (the others follow the change log)."""

from __future__ import annotations

from flask import current_app

from app.domain.clock import as_utc
from app.http.auth import caller_key_id
from app.http.errors import Problem, storage_or_503, unavailable
from app.http.etags import stale
from app.storage import merchant_writes


def record(svc, merchant_id: str, entity: str, expected: int, state: dict, action: str, fields: dict) -> int:
    """Write ``state`` as the entity's next version; returns it. 412 when ``expected`` is
    stale, 429 when the merchant's changes for the day are used up, 503 without Redis."""
    if svc.redis is None:
        raise unavailable("Changes need Redis, which is off.")
    now = as_utc(svc.now())
    state = {k: v for k, v in state.items() if k != "version"}
    change = {
        "action": action,
        "at": now.isoformat().replace("+00:00", "Z"),
        "merchant_id": merchant_id,
        "key_id": caller_key_id(),
        "fields": fields,
        "state": state,
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
    svc.apply_edits({entity: {**state, "version": written.version}})  # read-your-writes here
    return written.version
