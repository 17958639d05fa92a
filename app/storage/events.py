"""Client events written idempotently, in one round trip (``domain.event_rules`` judges them first).

Each accepted event is written by one Lua script, atomically: claim the ``event_id``
(``SET NX`` with a TTL), append to the events stream, and update the per-user and per-deal
state that the business rules read (redeemed deals, quota used, stores ordered at). A
retried batch finds its ids claimed and changes nothing: it is reported as duplicates.
"""

from __future__ import annotations

import json
from datetime import UTC

import redis

from app.domain.clock import local_day
from app.http.schemas import EventIn
from app.storage import keys

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


def write_events(
    r: redis.Redis, events: list[tuple[int, EventIn]], deal_store, stream_maxlen: int, store_tz=lambda store: "UTC"
) -> dict:
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
        ts = ev.ts if ev.ts.tzinfo else ev.ts.replace(tzinfo=UTC)
        day = local_day(ts, store_tz(store))
        person = f"u:{ev.user_id}" if ev.user_id else (f"a:{ev.anon_id}" if ev.anon_id else "")
        script_keys = [
            keys.event_claim(ev.event_id),
            keys.EVENTS,
            keys.user_redeemed(user) if user else "",
            keys.DEAL_REDEMPTIONS,
            keys.user_stores(user) if user else "",
            keys.sd(store, day),
            keys.up(store, day, ev.type),
        ]
        body = ev.model_dump(mode="json", exclude_none=True)
        body["store_id"] = store
        amount = "" if ev.amount is None or ev.type not in ("order", "redeem") else repr(float(ev.amount))
        script(
            keys=script_keys,
            args=[
                keys.DEDUPE_TTL_S,
                stream_maxlen,
                ev.type,
                store,
                ev.deal_id or "",
                json.dumps(body, separators=(",", ":")),
                amount,
                person,
                keys.ROLLUP_TTL_S,
            ],
            client=pipe,
        )
    results = pipe.execute()
    return {i: bool(res) for (i, _ev), res in zip(events, results)}


def read_user_state(r: redis.Redis, user_id: str | None, deal_ids: list[str]) -> tuple[set, dict, set]:
    """(deals the user redeemed, redemptions per deal, stores the user ordered at), one round trip."""
    pipe = r.pipeline(transaction=False)
    if user_id:
        pipe.smembers(keys.user_redeemed(user_id))
        pipe.smembers(keys.user_stores(user_id))
    if deal_ids:
        pipe.hmget(keys.DEAL_REDEMPTIONS, deal_ids)
    res = pipe.execute()
    used = {d: int(v) for d, v in zip(deal_ids, res[-1]) if v is not None} if deal_ids else {}
    if user_id:
        return {x.decode() for x in res[0]}, used, {x.decode() for x in res[1]}
    return set(), used, set()
