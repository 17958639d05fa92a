"""Client events: validated one by one, written idempotently, in one round trip.

Each accepted event is written by one Lua script, atomically: claim the ``event_id``
(``SET NX`` with a TTL), append to the events stream, and update the per-user and per-deal
state that the business rules read (redeemed deals, quota used, stores ordered at). A
retried batch finds its ids claimed and changes nothing: it is reported as duplicates.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import redis
from pydantic import ValidationError

from app.storage.client import PREFIX
from app.http.schemas import EventIn
from app.storage.keys import ROLLUP_TTL_S, local_day, sd, up

STREAM = PREFIX + "events"
DEAL_REDEMPTIONS = PREFIX + "deal_redemptions"
DEDUPE_TTL_S = 14 * 86400

# KEYS: 1 dedupe key, 2 stream, 3 user redeemed set, 4 redemptions per deal (hash), 5 user stores set,
#       6 store-day stats hash, 7 people-per-type HLL
# ARGV: 1 ttl, 2 stream maxlen, 3 type, 4 store_id, 5 deal_id, 6 json fields, 7 amount, 8 person, 9 stats ttl
_WRITE = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'type', ARGV[3], 'store_id', ARGV[4],
           'deal_id', ARGV[5], 'body', ARGV[6])
if ARGV[3] == 'redeem' and ARGV[5] ~= '' then
  redis.call('HINCRBY', KEYS[4], ARGV[5], 1)
  if KEYS[3] ~= '' then redis.call('SADD', KEYS[3], ARGV[5]) end
end
if (ARGV[3] == 'order' or ARGV[3] == 'redeem') and KEYS[5] ~= '' then redis.call('SADD', KEYS[5], ARGV[4]) end
redis.call('HINCRBY', KEYS[6], 'ev:' .. ARGV[3], 1)
if ARGV[7] ~= '' then redis.call('HINCRBYFLOAT', KEYS[6], 'amount', ARGV[7]) end
redis.call('EXPIRE', KEYS[6], ARGV[9])
if ARGV[8] ~= '' then
  redis.call('PFADD', KEYS[7], ARGV[8])
  redis.call('EXPIRE', KEYS[7], ARGV[9])
end
return 1
"""


@dataclass(frozen=True)
class Verdict:
    index: int
    event_id: str | None
    status: str  # accepted | duplicate | rejected
    errors: list


def validate_batch(items: list, known_store, deal_store, now: datetime, max_age_days: int) -> list:
    """Each item as (index, EventIn, None) or (index, None, errors). Pure: no Redis."""
    out = []
    seen_ids = set()
    for i, raw in enumerate(items):
        try:
            ev = EventIn.model_validate(raw)
        except ValidationError as exc:
            out.append((i, None, [{"field": ".".join(map(str, e["loc"])) or "event", "message": e["msg"]}
                                  for e in exc.errors(include_url=False)]))
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
    ts = ev.ts if ev.ts.tzinfo else ev.ts.replace(tzinfo=timezone.utc)
    if ts > now + timedelta(minutes=5):
        errors.append({"field": "ts", "message": "in the future (more than 5 minutes ahead of the server)"})
    elif ts < now - timedelta(days=max_age_days):
        errors.append({"field": "ts", "message": f"older than {max_age_days} days"})
    return errors


def write_events(r: redis.Redis, events: list[tuple[int, EventIn]], deal_store, stream_maxlen: int,
                 store_tz=lambda store: "UTC") -> dict:
    """Write accepted events in one pipeline; returns {index: True (new) | False (duplicate)}.

    The same script updates the merchant statistics of the store's local day.
    """
    if not events:
        return {}
    script = r.register_script(_WRITE)
    pipe = r.pipeline(transaction=False)
    for _i, ev in events:
        store = ev.store_id or deal_store(ev.deal_id) or ""
        user = ev.user_id or ""
        ts = ev.ts if ev.ts.tzinfo else ev.ts.replace(tzinfo=timezone.utc)
        day = local_day(ts, store_tz(store))
        person = f"u:{ev.user_id}" if ev.user_id else (f"a:{ev.anon_id}" if ev.anon_id else "")
        keys = [PREFIX + "event:" + ev.event_id, STREAM,
                PREFIX + f"user:{user}:redeemed" if user else "",
                DEAL_REDEMPTIONS,
                PREFIX + f"user:{user}:stores" if user else "",
                sd(store, day), up(store, day, ev.type)]
        body = ev.model_dump(mode="json", exclude_none=True)
        body["store_id"] = store
        amount = "" if ev.amount is None or ev.type not in ("order", "redeem") else repr(float(ev.amount))
        script(keys=keys, args=[DEDUPE_TTL_S, stream_maxlen, ev.type, store, ev.deal_id or "",
                                json.dumps(body, separators=(",", ":")), amount, person, ROLLUP_TTL_S],
               client=pipe)
    results = pipe.execute()
    return {i: bool(res) for (i, _ev), res in zip(events, results)}
