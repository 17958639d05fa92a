"""Every Redis key this service reads or writes, and nothing else builds one.

All keys start with ``PREFIX``; bump its version to change a layout. ``day`` is always the
store's local date (ISO), ``surface`` one of ``SURFACES`` or ``all``.

==========================================  ======  ================================================
key                                         type    content
==========================================  ======  ================================================
``events``                                  stream  accepted client events (export reads it)
``impressions``                             stream  served impressions
``{store:S}:event:{event_id}``              string  idempotency claim of an event of store S (14 days):
                                                    ``pending`` until its stream and user writes are
                                                    done, then ``done``
``{store:S}:tok:{mac}:{type}``             string  an impression token used for one event type (25 h)
``{deal:D}:used``                          string  redemptions of deal D so far (its quota)
``{deal:D}:rid:{redemption_id}``            string  idempotency claim of a merchant's redemption
``{deal:D}:user:{user}``                    string  one customer's redemptions of deal D (its per-user limit)
``{store:S}:rid:{redemption_id}``           string  the same for an order without a deal
``user:{user}:redeemed``                    set     deals the user redeemed (``USER_TTL_S`` after the last)
``user:{user}:stores``                      set     stores the user ordered or redeemed at (same TTL)
``{store:S}:sd:{day}``                      hash    ``imp``, ``imp:{surface}``, ``rk:{rank}`` (rank
                                                    histogram, 101 = beyond 100), ``rank_sum``,
                                                    ``rank_n``, ``loc`` (local searches it appeared
                                                    in), ``ev:{type}`` per event type, ``amount``
``{store:S}:uv:{day}:{surface}``            HLL     viewers who saw the store
``{store:S}:up:{day}:{type}``               HLL     people behind each event type (funnel in people)
``{store:S}:vc:{day}``                      hash    impressions by viewer cell (``domain.grid``) within
                                                    10 km (``impressions.VIEWER_CELL_RADIUS_KM``);
                                                    ``far`` for the rest
``{store:S}:vp:{day}``                      hash    people by viewer cell (the privacy threshold's count)
``{store:S}:vs:{day}``                      set     ``cell|viewer`` pairs already in ``vp`` (49 hours)
``lreq:{day}``                              hash    local searches (nearby, recommended) by fine grid
                                                    cell (``domain.grid.FINE_DEG``): the share-of-search
                                                    denominator, summed around a store when read
``prevcache:{from}:{to}:{surface}:{ids}``   string  previous-period totals, JSON (10 minutes)
``peercache:{store}:{from}:{to}:{surface}`` string  peer medians, JSON (10 minutes)
``{catalog}:changes``                       stream  merchants' deal and store changes, in order (every
                                                    worker replays and tails it; never trimmed)
``{catalog}:current``                       hash    ``deal:{id}`` / ``store:{id}`` -> the current state,
                                                    JSON with its ``version`` (the ETag)
``{catalog}:audit:{merchant}``              stream  one merchant's changes: who (key id), what, when
``{catalog}:writes:{merchant}:{day}``        string  changes the merchant made that UTC day (its cap; 2 days)
``apikeys``                                 hash    sha256(merchant key) -> merchant_id
``{model}:current``                         string  the model version every worker serves
``{model}:history``                         list    activations, newest last (rollback pops)
``rl:{caller}:{second}``                    string  requests in that one-second window
==========================================  ======  ================================================

Rollups (``sd``, ``uv``, ``up``, ``vc``, ``vp``) live ``ROLLUP_TTL_S`` (410 days); the streams
are trimmed to ``O2O_STREAM_MAXLEN`` entries.

Keys in braces carry a Redis Cluster hash tag, so the keys of one deal or store share a
slot. The redemption claim script touches only one deal's (or store's) tagged keys, and the
impression rollup script one slot's stores (``storage.impressions`` groups its calls by
slot), so both run on a cluster as they are; the event script still spans several
entities' keys, and splitting it by slot is issue 14's work. Stores' rollups were untagged
(``sd:{store}:{day}``...) before; ``python -m scripts.migrate_keys`` renames them.
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
#: One slot for both, so an activation or a rollback changes them in one MULTI.
MODEL_CURRENT = PREFIX + "{model}:current"
MODEL_HISTORY = PREFIX + "{model}:history"
#: Their names before they were tagged (``scripts.migrate_keys`` renames them).
LEGACY_MODEL_KEYS = {PREFIX + "model:current": MODEL_CURRENT, PREFIX + "model:history": MODEL_HISTORY}


#: Merchants' writes share one slot (``{catalog}``): a write checks the version, keeps the
#: state and appends to both logs atomically, and merchant edits are few.
CHANGES = PREFIX + "{catalog}:changes"
CURRENT = PREFIX + "{catalog}:current"


def audit(merchant: str) -> str:
    return f"{PREFIX}{{catalog}}:audit:{merchant}"


def merchant_writes_on(merchant: str, day: str) -> str:
    return f"{PREFIX}{{catalog}}:writes:{merchant}:{day}"


def event_claim(store: str, event_id: str) -> str:
    return f"{PREFIX}{{store:{store}}}:event:{event_id}"


def token_claim(store: str, mac: str, kind: str) -> str:
    return f"{PREFIX}{{store:{store}}}:tok:{mac}:{kind}"


def deal_used(deal: str) -> str:
    return f"{PREFIX}{{deal:{deal}}}:used"


def deal_user_redemptions(deal: str, user: str) -> str:
    return f"{PREFIX}{{deal:{deal}}}:user:{user}"


def redemption_claim(deal: str | None, store: str, redemption_id: str) -> str:
    """In the slot of what the redemption counts against: the deal's quota, else the store."""
    tag = f"{{deal:{deal}}}" if deal else f"{{store:{store}}}"
    return f"{PREFIX}{tag}:rid:{redemption_id}"


def user_redeemed(user: str) -> str:
    return f"{PREFIX}user:{user}:redeemed"


def user_stores(user: str) -> str:
    return f"{PREFIX}user:{user}:stores"


#: Rollup families of a store-day, in its slot; ``migrate_keys`` renames the untagged ones.
STORE_DAY_FAMILIES = ("sd", "uv", "up", "vc", "vp", "vs")
#: A ``vs`` set only dedupes while its day still receives impressions.
PAIR_TTL_S = 49 * 3600


def sd(store: str, day: str) -> str:
    return f"{PREFIX}{{store:{store}}}:sd:{day}"


def uv(store: str, day: str, surface: str = "all") -> str:
    return f"{PREFIX}{{store:{store}}}:uv:{day}:{surface}"


def up(store: str, day: str, kind: str) -> str:
    return f"{PREFIX}{{store:{store}}}:up:{day}:{kind}"


def lreq_cells(day: str) -> str:
    return f"{PREFIX}lreq:{day}"


def vc(store: str, day: str) -> str:
    return f"{PREFIX}{{store:{store}}}:vc:{day}"


def vp(store: str, day: str) -> str:
    return f"{PREFIX}{{store:{store}}}:vp:{day}"


def vs(store: str, day: str) -> str:
    return f"{PREFIX}{{store:{store}}}:vs:{day}"


def previous_cache(days: list[str], surface: str | None, store_ids: list[str]) -> str:
    return f"{PREFIX}prevcache:{days[0]}:{days[-1]}:{surface or 'all'}:" + ",".join(store_ids)


def peer_cache(store: str, days: list[str], surface: str | None) -> str:
    return f"{PREFIX}peercache:{store}:{days[0]}:{days[-1]}:{surface or 'all'}"


def rate_window(caller: str, second: int) -> str:
    return f"{PREFIX}rl:{caller}:{second}"


# ------------------------------------------------ names before the store hash tags (migrate_keys)
#: Parts after the store id in each family's old name: the day, then a surface or event type.
LEGACY_TAILS = {"sd": 1, "vc": 1, "uv": 2, "up": 2}


def legacy_store_day(family: str, store: str, *rest: str) -> str:
    """A store-day rollup's name before it was tagged (``sd:{store}:{day}``)."""
    return f"{PREFIX}{family}:{store}:" + ":".join(rest)


def retagged(old: str) -> str | None:
    """The tagged name of an untagged store-day key; None if ``old`` is not one."""
    family, _, rest = old.removeprefix(PREFIX).partition(":")
    if not old.startswith(PREFIX) or family not in LEGACY_TAILS or rest.startswith("{"):
        return None
    parts = rest.rsplit(":", LEGACY_TAILS[family])
    if len(parts) != LEGACY_TAILS[family] + 1 or not all(parts):
        return None
    return {"sd": sd, "vc": vc, "uv": uv, "up": up}[family](*parts)
