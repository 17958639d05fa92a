"""Merchants' deal and store changes: versioned, logged, and readable by every worker.

A write is one Lua script in the ``{catalog}`` slot: it checks the version the writer last
saw (``If-Match``), stores the entity's new state with the next version, and appends the
change to the shared change log and to the merchant's audit log, all or nothing. The change
log is append-only and never trimmed (merchant edits are few): it is what every worker
replays over the catalogue and deal files at start-up (through ``current``, the latest state
of each edited entity) and tails to apply edits within a second.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import redis

from app.storage import keys

#: Entries kept per merchant in the audit log.
AUDIT_MAXLEN = 10_000

# KEYS: 1 current hash, 2 change log, 3 the merchant's audit log, 4 the merchant's writes today
# ARGV: 1 entity ("deal:ID" / "store:ID"), 2 expected version ('' = any, '0' = must be new),
#       3 new state JSON, 4 change JSON (who, when, what), 5 audit maxlen, 6 writes allowed per day
# The state is kept as "<version>|<json>" (the JSON untouched: Lua's cjson turns [] into {}); the
# change log carries it for the followers, the audit log only the change.
# Returns {1, version, id} written, {0, current version} when the expected version is stale,
# {-1, writes today} when the merchant's daily cap is reached.
_WRITE = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
local current = 0
if raw then current = tonumber(string.match(raw, '^(%d+)|')) end
if ARGV[2] ~= '' and tonumber(ARGV[2]) ~= current then return {0, current} end
local today = tonumber(redis.call('GET', KEYS[4]) or '0')
if today >= tonumber(ARGV[6]) then return {-1, today} end
redis.call('INCR', KEYS[4])
redis.call('EXPIRE', KEYS[4], 172800)
local version = current + 1
redis.call('HSET', KEYS[1], ARGV[1], version .. '|' .. ARGV[3])
local id = redis.call('XADD', KEYS[2], '*', 'entity', ARGV[1], 'version', version, 'change', ARGV[4],
                     'state', ARGV[3])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], id, 'entity', ARGV[1], 'version', version, 'change', ARGV[4])
return {1, version, id}
"""


@dataclass(frozen=True)
class Written:
    ok: bool
    version: int  # the new version, or the current one when the expected version was stale
    capped: bool = False  # the merchant's writes for the day are used up (``version``: how many)


def write(
    r: redis.Redis,
    entity: str,
    expected: int | None,
    state: dict,
    change: dict,
    merchant: str,
    day: str,
    per_day: int,
) -> Written:
    """Store ``state`` as the entity's next version if ``expected`` (None: any) is current
    and the merchant has writes left on UTC ``day`` (``per_day``)."""
    res = r.register_script(_WRITE)(
        keys=[keys.CURRENT, keys.CHANGES, keys.audit(merchant), keys.merchant_writes_on(merchant, day)],
        args=[
            entity,
            "" if expected is None else expected,
            json.dumps(state, separators=(",", ":")),
            json.dumps(change, separators=(",", ":")),
            AUDIT_MAXLEN,
            per_day,
        ],
    )
    if int(res[0]) == 1:
        return Written(True, int(res[1]))
    return Written(False, int(res[1]), capped=int(res[0]) == -1)


def _state(raw: bytes) -> dict:
    version, _, text = raw.decode().partition("|")
    return {**json.loads(text), "version": int(version)}


def current(r: redis.Redis, entity: str) -> dict | None:
    """The entity's latest state with its ``version``; None if no merchant changed it."""
    raw = r.hget(keys.CURRENT, entity)
    return _state(raw) if raw else None


def snapshot(r: redis.Redis) -> tuple[str, dict[str, dict]]:
    """(the change log's last id, every edited entity's current state), consistent: the
    state includes every change up to that id, so tailing from it misses nothing."""
    last = r.xrevrange(keys.CHANGES, count=1)  # first the id, then the states (at least as new)
    states = r.hgetall(keys.CURRENT)
    last_id = last[0][0].decode() if last else "0-0"
    return last_id, {k.decode(): _state(v) for k, v in states.items()}


def read_changes(r: redis.Redis, after: str, count: int = 1000) -> list[tuple[str, str, dict]]:
    """(id, entity, state with its version) of each change after id ``after``, oldest first."""
    got = r.xread({keys.CHANGES: after}, count=count)
    return [
        (
            entry_id.decode(),
            fields[b"entity"].decode(),
            {**json.loads(fields[b"state"]), "version": int(fields[b"version"])},
        )
        for _stream, entries in got or []
        for entry_id, fields in entries
    ]


def audit_page(r: redis.Redis, merchant: str, before: str | None, limit: int) -> tuple[list[dict], str | None]:
    """A merchant's changes, newest first; the id to pass as ``before`` for the next page."""
    entries = r.xrevrange(keys.audit(merchant), max=f"({before}" if before else "+", count=limit + 1)
    out = []
    for entry_id, fields in entries[:limit]:
        change = json.loads(fields[b"change"])
        entity = fields[b"entity"].decode()
        out.append({"change_id": entry_id.decode(), "entity": entity, "version": int(fields[b"version"]), **change})
    more = len(entries) > limit
    return out, (out[-1]["change_id"] if more and out else None)
