"""A merchant's redemptions and orders: the quota moves atomically, once per redemption id.

Two steps, each idempotent, so a retry of the same ``redemption_id`` finishes whatever a
crash left undone and never counts twice:

1. In the slot of what the redemption counts against (the deal, else the store), one script
   claims the redemption id and, when the deal has a quota, takes one unit of it, or refuses
   when none is left (and claims nothing, so every retry is refused alike).
2. The redemption is written as an event (``storage.events``) under an event id derived from
   (merchant, redemption id): stream, the user's state, the store's statistics.

Step 1 touches one slot and runs on a Redis Cluster as is; step 2 is the event script,
which still spans several entities' keys (issue 14 splits it by slot).
"""

from __future__ import annotations

import hashlib
import math

import redis

from app.storage import keys

# KEYS: 1 claim, 2 deal's used counter (only with a deal), 3 the customer's redemptions of the deal
#       (only with a known customer and a per-user limit). Absent keys are left out, not sent as ''
#       (an empty name hashes to another slot on a cluster).
# ARGV: 1 quota (-1: unlimited), 2 claim ttl, 3 per-user limit (-1: none), 4 per-user counter ttl
# Returns {state, used}: state 1 new, 0 already recorded, -1 no quota left, -2 the customer's limit reached.
_CLAIM = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  local used = 0
  if #KEYS >= 2 then used = tonumber(redis.call('GET', KEYS[2]) or '0') end
  return {0, used}
end
if #KEYS < 2 then
  redis.call('SET', KEYS[1], '1', 'EX', ARGV[2])
  return {1, 0}
end
local used = tonumber(redis.call('GET', KEYS[2]) or '0')
local quota = tonumber(ARGV[1])
if quota >= 0 and used >= quota then return {-1, used} end
if #KEYS >= 3 and tonumber(redis.call('GET', KEYS[3]) or '0') >= tonumber(ARGV[3]) then return {-2, used} end
redis.call('SET', KEYS[1], '1', 'EX', ARGV[2])
if #KEYS >= 3 then
  redis.call('INCR', KEYS[3])
  redis.call('EXPIRE', KEYS[3], ARGV[4])
end
return {1, redis.call('INCR', KEYS[2])}
"""
#: How long a redemption id is remembered: longer than any point-of-sale retry.
CLAIM_TTL_S = 30 * 86400

NEW, DUPLICATE, NO_QUOTA, USER_LIMIT = 1, 0, -1, -2


def claim(
    r: redis.Redis,
    merchant: str,
    redemption_id: str,
    store: str,
    deal: str | None,
    quota: float,
    user: str | None = None,
    per_user_limit: float = math.nan,
):
    """(state, used): NEW, DUPLICATE, NO_QUOTA or USER_LIMIT, and the deal's redemptions after it.

    A deal's ``per_user_limit`` holds for redemptions that name their customer (``user``)."""
    script = r.register_script(_CLAIM)
    q = -1 if deal is None or quota is None or math.isnan(quota) else int(quota)
    limited = deal is not None and user is not None and not math.isnan(per_user_limit)
    state, used = script(
        keys=[
            keys.redemption_claim(deal, store, f"{merchant}:{redemption_id}"),
            *([keys.deal_used(deal)] if deal else []),
            *([keys.deal_user_redemptions(deal, user)] if limited and deal and user else []),
        ],
        args=[q, CLAIM_TTL_S, int(per_user_limit) if limited else -1, keys.USER_TTL_S],
    )
    return int(state), int(used)


def event_id_of(merchant: str, redemption_id: str) -> str:
    """The event id a redemption is written under: the same for every retry."""
    return "r:" + hashlib.sha256(f"{merchant}\x00{redemption_id}".encode()).hexdigest()[:40]
