"""Every Lua script of the service, for loading them on a Redis Cluster up front.

redis-py reloads a script that a server does not know (NOSCRIPT) for plain calls and for
pipelines on one server, but a cluster pipeline sends ``EVALSHA`` as it is; so on a cluster
every script is loaded on every primary when the client is made (``SCRIPT LOAD`` reaches
all primaries and is replicated to their replicas).
"""

from __future__ import annotations

from redis.cluster import ClusterPipeline


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


def queue(pipe, script, keys: list, args: list):
    """Queue one script call on ``pipe``. A cluster pipeline refuses redis-py's ``evalsha``
    method, so there the command goes as it is (routed by its first key; the script is
    loaded on every primary by ``preload``)."""
    if isinstance(pipe, ClusterPipeline):
        return pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
    return script(keys=keys, args=args, client=pipe)
