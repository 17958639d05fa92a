"""Client events written idempotently, in one round trip (``domain.event_rules`` judges them first).

Each accepted event is written by one Lua script, atomically: claim the ``event_id``
(``SET NX`` with a TTL), append to the events stream, and update the per-user state that
the business rules read (redeemed deals, stores ordered at) and the store's statistics. A
retried batch finds its ids claimed and changes nothing: it is reported as duplicates.
Redemptions and orders arrive from merchants (``storage.redemptions`` counts the quota,
then writes them here as events).
"""

from __future__ import annotations

import json

import redis

from app.domain.clock import as_utc, local_day
from app.domain.impression_tokens import VALID_S
from app.http.schemas import EventIn
from app.storage import keys

#: A token's claims outlive the token (valid 24 h after issue, events up to 5 minutes late).
TOKEN_CLAIM_TTL_S = VALID_S + 3600

# KEYS: 1 dedupe key, 2 stream, 3 user redeemed set, 4 user stores set, 5 store-day stats hash,
#       6 people-per-type HLL, 7 impression-token claim for this event type ('' without a token)
#       (a deal's quota is counted by storage.redemptions, in the deal's slot)
# ARGV: 1 ttl, 2 stream maxlen, 3 type, 4 store_id, 5 deal_id, 6 json fields, 7 amount, 8 person, 9 stats ttl,
#       10 token claim ttl, 11 user state ttl (refreshed by each of the user's orders)
# Returns 1 new, 0 duplicate event id, -1 the impression token was used for this type already.
_WRITE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if KEYS[7] ~= '' and not redis.call('SET', KEYS[7], '1', 'NX', 'EX', ARGV[10]) then return -1 end
redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'type', ARGV[3], 'store_id', ARGV[4],
           'deal_id', ARGV[5], 'body', ARGV[6])
if ARGV[3] == 'redeem' and ARGV[5] ~= '' and KEYS[3] ~= '' then
  redis.call('SADD', KEYS[3], ARGV[5])
  redis.call('EXPIRE', KEYS[3], ARGV[11])
end
if (ARGV[3] == 'order' or ARGV[3] == 'redeem') and KEYS[4] ~= '' then
  redis.call('SADD', KEYS[4], ARGV[4])
  redis.call('EXPIRE', KEYS[4], ARGV[11])
end
redis.call('HINCRBY', KEYS[5], 'ev:' .. ARGV[3], 1)
if ARGV[7] ~= '' then redis.call('HINCRBYFLOAT', KEYS[5], 'amount', ARGV[7]) end
redis.call('EXPIRE', KEYS[5], ARGV[9])
if ARGV[8] ~= '' then
  redis.call('PFADD', KEYS[6], ARGV[8])
  redis.call('EXPIRE', KEYS[6], ARGV[9])
end
return 1
"""


NEW, DUPLICATE, TOKEN_USED = 1, 0, -1


def write_events(
    r: redis.Redis,
    events: list[tuple[int, EventIn]],
    deal_store,
    stream_maxlen: int,
    store_tz=lambda store: "UTC",
    impressions: dict | None = None,
) -> dict:
    """Write accepted events in one pipeline; returns {index: NEW | DUPLICATE | TOKEN_USED}.

    ``impressions``: {index: Impression} of the events that proved one; each token counts
    once per event type, and its viewer is the person behind the event. The same script
    updates the merchant statistics of the store's local day.
    """
    impressions = impressions or {}
    if not events:
        return {}
    script = r.register_script(_WRITE)
    pipe = r.pipeline(transaction=False)
    for i, ev in events:
        store = ev.store_id or deal_store(ev.deal_id) or ""
        user = ev.user_id or ""
        day = local_day(as_utc(ev.ts), store_tz(store))
        imp = impressions.get(i)
        if imp is not None:  # who the service showed it to, not who the client says it is
            person = f"v:{imp.viewer}"
        else:
            person = f"u:{ev.user_id}" if ev.user_id else (f"a:{ev.anon_id}" if ev.anon_id else "")
        script_keys = [
            keys.event_claim(ev.event_id),
            keys.EVENTS,
            keys.user_redeemed(user) if user else "",
            keys.user_stores(user) if user else "",
            keys.sd(store, day),
            keys.up(store, day, ev.type),
            keys.token_claim(store, imp.mac, ev.type) if imp is not None else "",
        ]
        body = ev.model_dump(mode="json", exclude_none=True, exclude={"impression_token"})
        body["store_id"] = store
        if imp is not None:
            body["viewer"] = imp.viewer
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
                TOKEN_CLAIM_TTL_S,
                keys.USER_TTL_S,
            ],
            client=pipe,
        )
    results = pipe.execute()
    return {i: int(res) for (i, _ev), res in zip(events, results)}


def read_user_state(r: redis.Redis, user_id: str | None, deal_ids: list[str]) -> tuple[set, dict, set]:
    """(deals the user redeemed, redemptions per deal, stores the user ordered at), one round trip."""
    pipe = r.pipeline(transaction=False)
    if user_id:
        pipe.smembers(keys.user_redeemed(user_id))
        pipe.smembers(keys.user_stores(user_id))
    for deal in deal_ids:  # one key per deal (its own slot): pipelined, one round trip
        pipe.get(keys.deal_used(deal))
    res = pipe.execute()
    counts = res[len(res) - len(deal_ids) :]
    used = {d: int(v) for d, v in zip(deal_ids, counts) if v is not None}
    if user_id:
        return {x.decode() for x in res[0]}, used, {x.decode() for x in res[1]}
    return set(), used, set()


def read_user_stores(r: redis.Redis, user_id: str) -> set[str]:
    """Stores where the user ordered or redeemed, as merchants recorded them."""
    return {x.decode() for x in r.smembers(keys.user_stores(user_id))}
