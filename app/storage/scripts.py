"""Every Lua script of the service, for loading them on a Redis Cluster up front.

redis-py reloads a script that a server does not know (NOSCRIPT) for plain calls and for
pipelines on one server, but a cluster pipeline sends ``EVALSHA`` as it is; so on a cluster
every script is loaded on every primary when the client is made (``SCRIPT LOAD`` reaches
all primaries and is replicated to their replicas).
"""

from __future__ import annotations


def all_scripts() -> list[str]:
    from app.storage import events, impressions, merchant_writes, redemptions, stats

    return [
        events._CLAIM,
        impressions._APPEND,
        impressions._ROLLUP,
        impressions._COUNT_CELLS,
        merchant_writes._WRITE,
        redemptions._CLAIM,
        stats._READ,
    ]


def preload(r) -> None:
    for text in all_scripts():
        r.script_load(text)
