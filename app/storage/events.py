"""Client events written idempotently, split by Redis Cluster slot (``domain.event_rules``
judges them first).

An event touches keys of three owners: its store (the id claim, the impression-token claim,
the store-day statistics), the shared events stream, and its user (redeemed deals, stores
ordered at). Each write below stays inside one slot, so it runs on a Redis Cluster as on one
server, and the three steps are made idempotent together:

1. In the store's slot, one script claims the event id as ``pending`` (a claimed id is a
   duplicate), claims the impression token for the event type, and counts the event in the
   store-day statistics: the statistics move exactly once per event.
2. The event is appended to the stream and added to the user's sets (``SADD`` is
   idempotent), and then the claim is marked ``done``.
3. A retry that finds its claim still ``pending`` (a crash between 1 and 2) does step 2
   again and reports a duplicate, so nothing acknowledged is lost; the stream may then hold
   the event twice, and readers of the stream (``scripts.export_events``) keep the first.

Redemptions and orders arrive from merchants (``storage.redemptions`` counts the quota,
then writes them here as events).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial

import redis

from app.domain.clock import as_utc, local_day
from app.domain.impression_tokens import VALID_S
from app.http.schemas import EventIn
from app.storage import keys, scripts
from app.storage.client import on_cluster
from app.storage.replicated import Batch

#: A token's claims outlive the token (valid 24 h after issue, events up to 5 minutes late).
TOKEN_CLAIM_TTL_S = VALID_S + 3600

# Step 1, in the store's slot.
# KEYS: 1 event claim, 2 store-day stats hash, 3 people-per-type HLL, 4 token claim (only with a token:
#       an empty key name would hash to another slot on a cluster)
# ARGV: 1 claim ttl, 2 type, 3 amount ('' none), 4 person ('' none), 5 stats ttl, 6 token claim ttl
# Returns 1 new, 0 duplicate (done), 2 duplicate still pending, -1 the token was used for this type.
_CLAIM = """
local claimed = redis.call('GET', KEYS[1])
if claimed == 'pending' then return 2 end
if claimed then return 0 end
if #KEYS >= 4 and not redis.call('SET', KEYS[4], '1', 'NX', 'EX', ARGV[6]) then return -1 end
redis.call('SET', KEYS[1], 'pending', 'EX', ARGV[1])
redis.call('HINCRBY', KEYS[2], 'ev:' .. ARGV[2], 1)
if ARGV[3] ~= '' then redis.call('HINCRBYFLOAT', KEYS[2], 'amount', ARGV[3]) end
redis.call('EXPIRE', KEYS[2], ARGV[5])
if ARGV[4] ~= '' then
  redis.call('PFADD', KEYS[3], ARGV[4])
  redis.call('EXPIRE', KEYS[3], ARGV[5])
end
return 1
"""

NEW, DUPLICATE, TOKEN_USED = 1, 0, -1
_PENDING = 2


def write_events(
    r: redis.Redis,
    events: list[tuple[int, EventIn]],
    deal_store,
    stream_maxlen: int,
    store_tz=lambda store: "UTC",
    impressions: dict | None = None,
    replicas: int = 0,
    wait_ms: int = 1000,
) -> dict:
    """Write accepted events; returns {index: NEW | DUPLICATE | TOKEN_USED}.

    ``impressions``: {index: Impression} of the events that proved one; each token counts
    once per event type, and its viewer is the person behind the event. Two rounds, each
    command inside one slot; with ``replicas``, each round returns only once that many
    replicas of every primary written to hold it (``storage.replicated``).
    """
    impressions = impressions or {}
    if not events:
        return {}
    claim = r.register_script(_CLAIM)
    batch = Batch(r, replicas, wait_ms)
    prepared = []
    for i, ev in events:
        store = ev.store_id or deal_store(ev.deal_id) or ""
        day = local_day(as_utc(ev.ts), store_tz(store))
        imp = impressions.get(i)
        if imp is not None:  # who the service showed it to, not who the client says it is
            person = f"v:{imp.viewer}"
        else:
            person = f"u:{ev.user_id}" if ev.user_id else (f"a:{ev.anon_id}" if ev.anon_id else "")
        amount = "" if ev.amount is None or ev.type not in ("order", "redeem") else repr(float(ev.amount))
        claim_keys = [
            keys.event_claim(store, ev.event_id),
            keys.sd(store, day),
            keys.up(store, day, ev.type),
            *([keys.token_claim(store, imp.mac, ev.type)] if imp is not None else []),
        ]
        claim_args = [keys.DEDUPE_TTL_S, ev.type, amount, person, keys.ROLLUP_TTL_S, TOKEN_CLAIM_TTL_S]
        batch.add(claim_keys[0], partial(scripts.queue, script=claim, keys=claim_keys, args=claim_args))
        prepared.append((i, ev, store, imp))
    claimed = [int(x) for x in batch.execute()]
    batch = Batch(r, replicas, wait_ms)
    for (_i, ev, store, imp), state in zip(prepared, claimed):
        if state not in (NEW, _PENDING):
            continue
        body = ev.model_dump(mode="json", exclude_none=True, exclude={"impression_token"})
        body["store_id"] = store
        if imp is not None:
            body["viewer"] = imp.viewer
        fields = {
            "type": ev.type,
            "store_id": store,
            "deal_id": ev.deal_id or "",
            "body": json.dumps(body, separators=(",", ":")),
        }
        batch.add(keys.EVENTS, lambda p, f=fields: p.xadd(keys.EVENTS, f, maxlen=stream_maxlen, approximate=True))
        if ev.user_id and ev.type in ("order", "redeem"):
            if ev.type == "redeem" and ev.deal_id:
                redeemed = keys.user_redeemed(ev.user_id)
                batch.add(redeemed, lambda p, k=redeemed, d=ev.deal_id: p.sadd(k, d))
                batch.add(redeemed, lambda p, k=redeemed: p.expire(k, keys.USER_TTL_S))
            visited = keys.user_stores(ev.user_id)
            batch.add(visited, lambda p, k=visited, s=store: p.sadd(k, s))
            batch.add(visited, lambda p, k=visited: p.expire(k, keys.USER_TTL_S))
        claimed_key = keys.event_claim(store, ev.event_id)
        batch.add(claimed_key, lambda p, k=claimed_key: p.set(k, "done", ex=keys.DEDUPE_TTL_S, xx=True))
    batch.execute()
    return {i: (DUPLICATE if state == _PENDING else state) for (i, _ev, _s, _imp), state in zip(prepared, claimed)}


def read_user_state(
    r: redis.Redis, user_id: str | None, deal_ids: list[str], also: Callable | None = None
) -> tuple[set, dict, set]:
    """(deals the user redeemed, redemptions per deal, stores the user ordered at), one round trip.

    ``also(pipe)`` queues other commands on the same round trip (the request's rate-limit hit)
    and returns what to run on the results; it runs first, and may raise.
    """
    pipe = r.pipeline(transaction=False)
    settle = also(pipe) if also is not None else None
    base = len(pipe)
    if user_id:
        pipe.smembers(keys.user_redeemed(user_id))
        pipe.smembers(keys.user_stores(user_id))
    counters = [keys.deal_used(deal) for deal in deal_ids]
    cluster = on_cluster(r)
    if cluster:  # one key per deal, each in its own slot: one GET each, pipelined
        for key in counters:
            pipe.get(key)
    elif counters:  # one MGET: a request asks about ~90 deals, and each command costs ~40 us in redis-py
        pipe.mget(counters)
    res = pipe.execute()
    if settle is not None:
        settle(res)
    res = res[base:]
    counts = res[len(res) - len(deal_ids) :] if cluster else (res[-1] if counters else [])
    used = {d: int(v) for d, v in zip(deal_ids, counts) if v is not None}
    if user_id:
        return {x.decode() for x in res[0]}, used, {x.decode() for x in res[1]}
    return set(), used, set()


def read_user_stores(r: redis.Redis, user_id: str) -> set[str]:
    """Stores where the user ordered or redeemed, as merchants recorded them."""
    return {x.decode() for x in r.smembers(keys.user_stores(user_id))}
