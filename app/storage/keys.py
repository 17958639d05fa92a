"""Every Redis key this service reads or writes, and nothing else builds one.

All keys start with ``PREFIX``; bump its version to change a layout. ``day`` is always the
store's local date (ISO), ``surface`` one of ``SURFACES`` or ``all``.

==========================================  ======  ================================================
key                                         type    content
==========================================  ======  ================================================
``events``                                  stream  accepted client events (export reads it)
``impressions``                             stream  served impressions
``event:{event_id}``                        string  idempotency claim of an event id (14 days)
``{store:S}:tok:{mac}:{type}``             string  an impression token used for one event type (25 h)
``{deal:D}:used``                          string  redemptions of deal D so far (its quota)
``{deal:D}:rid:{redemption_id}``            string  idempotency claim of a merchant's redemption
``{store:S}:rid:{redemption_id}``           string  the same for an order without a deal
``user:{user}:redeemed``                    set     deals the user redeemed (``USER_TTL_S`` after the last)
``user:{user}:stores``                      set     stores the user ordered or redeemed at (same TTL)
``sd:{store}:{day}``                        hash    ``imp``, ``imp:{surface}``, ``rk:{rank}`` (rank
                                                    histogram, 101 = beyond 100), ``rank_sum``,
                                                    ``rank_n``, ``loc`` (local searches it appeared
                                                    in), ``ev:{type}`` per event type, ``amount``
``uv:{store}:{day}:{surface}``              HLL     viewers who saw the store
``up:{store}:{day}:{type}``                 HLL     people behind each event type (funnel in people)
``lreq:{day}``                              hash    local searches (nearby, recommended) by fine grid
                                                    cell (``domain.grid.FINE_DEG``): the share-of-search
                                                    denominator, summed around a store when read
``vc:{store}:{day}``                        hash    impressions by viewer cell (``domain.grid``) within
                                                    10 km (``impressions.VIEWER_CELL_RADIUS_KM``);
                                                    ``far`` for the rest
``prevcache:{from}:{to}:{surface}:{ids}``   string  previous-period totals, JSON (10 minutes)
``peercache:{store}:{from}:{to}:{surface}`` string  peer medians, JSON (10 minutes)
``apikeys``                                 hash    sha256(merchant key) -> merchant_id
``model:current``                           string  the model version every worker serves
``model:history``                           list    activations, newest last (rollback pops)
``rl:{caller}:{second}``                    string  requests in that one-second window
==========================================  ======  ================================================

Rollups (``sd``, ``uv``, ``up``, ``vc``) live ``ROLLUP_TTL_S`` (410 days); the streams are
trimmed to ``O2O_STREAM_MAXLEN`` entries.

Keys in braces carry a Redis Cluster hash tag, so the keys of one deal or store share a
slot. The redemption claim script touches only one deal's (or store's) tagged keys and runs
on a cluster as is; the event and rollup scripts still span several entities' keys, and
splitting them by slot is issue 14's work.
"""

from __future__ import annotations

PREFIX = "o2o:v1:"
ROLLUP_TTL_S = 410 * 86400
DEDUPE_TTL_S = 14 * 86400
STATS_CACHE_TTL_S = 600
#: A user's redeemed deals and stores live this long after their last order or redemption.
USER_TTL_S = 400 * 86400

EVENTS = PREFIX + "events"
IMPRESSIONS = PREFIX + "impressions"
API_KEYS = PREFIX + "apikeys"
MODEL_CURRENT = PREFIX + "model:current"
MODEL_HISTORY = PREFIX + "model:history"


def event_claim(event_id: str) -> str:
    return f"{PREFIX}event:{event_id}"


def token_claim(store: str, mac: str, kind: str) -> str:
    return f"{PREFIX}{{store:{store}}}:tok:{mac}:{kind}"


def deal_used(deal: str) -> str:
    return f"{PREFIX}{{deal:{deal}}}:used"


def redemption_claim(deal: str | None, store: str, redemption_id: str) -> str:
    """In the slot of what the redemption counts against: the deal's quota, else the store."""
    tag = f"{{deal:{deal}}}" if deal else f"{{store:{store}}}"
    return f"{PREFIX}{tag}:rid:{redemption_id}"


def user_redeemed(user: str) -> str:
    return f"{PREFIX}user:{user}:redeemed"


def user_stores(user: str) -> str:
    return f"{PREFIX}user:{user}:stores"


def sd(store: str, day: str) -> str:
    return f"{PREFIX}sd:{store}:{day}"


def uv(store: str, day: str, surface: str = "all") -> str:
    return f"{PREFIX}uv:{store}:{day}:{surface}"


def up(store: str, day: str, kind: str) -> str:
    return f"{PREFIX}up:{store}:{day}:{kind}"


def lreq_cells(day: str) -> str:
    return f"{PREFIX}lreq:{day}"


def vc(store: str, day: str) -> str:
    return f"{PREFIX}vc:{store}:{day}"


def previous_cache(days: list[str], surface: str | None, store_ids: list[str]) -> str:
    return f"{PREFIX}prevcache:{days[0]}:{days[-1]}:{surface or 'all'}:" + ",".join(store_ids)


def peer_cache(store: str, days: list[str], surface: str | None) -> str:
    return f"{PREFIX}peercache:{store}:{days[0]}:{days[-1]}:{surface or 'all'}"


def rate_window(caller: str, second: int) -> str:
    return f"{PREFIX}rl:{caller}:{second}"
